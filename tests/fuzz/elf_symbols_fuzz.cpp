// The ELF dynamic-symbol reader (vmi/elf_symbols) over a hostile image.
//
// Input: the image as mapped in a process, at kBase (the bytes of the input,
// zero-padded to a whole page; nothing else reads). Then the SymbolSet
// lookups on what was parsed.
// Checked besides memory safety: symbols are named and sorted by value, and
// find/containing/preceding answer within what they promise.
#include <cstdint>
#include <string>

#include "fuzz_memory.h"
#include "vmi/elf_symbols.h"

using pyrebox::fuzz::FlatRam;
using namespace pyrebox::vmi;

namespace {

constexpr uint64_t kBase = 0x7f0000400000ull;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FlatRam ram(data, size, kBase);
    const ReadVirtualFn read = [&](uint64_t va, void* buf, size_t len) {
        return ram.read(va, buf, len);
    };
    auto image = read_elf_dynamic_symbols(read, kBase, ram.size());
    if (!image) {
        return 0;
    }
    const auto& syms = image->symbols.symbols();
    FUZZ_CHECK(syms.size() <= kMaxElfSymbols);
    for (size_t i = 0; i < syms.size(); ++i) {
        FUZZ_CHECK(!syms[i].name.empty());
        if (i > 0) {
            FUZZ_CHECK(syms[i - 1].value <= syms[i].value);
        }
    }
    (void)image->bias(kBase);
    // A few lookups: by the names and values found, and around them.
    for (size_t i = 0; i < syms.size() && i < 64; ++i) {
        const ElfSymbol* by_name = image->symbols.find(syms[i].name);
        FUZZ_CHECK(by_name != nullptr && by_name->name == syms[i].name);
        for (uint64_t v : {syms[i].value, syms[i].value + 1, syms[i].value - 1}) {
            if (const ElfSymbol* c = image->symbols.containing(v)) {
                FUZZ_CHECK(c->value == v || (c->value < v && v - c->value < c->size));
            }
            if (const ElfSymbol* p = image->symbols.preceding(v)) {
                FUZZ_CHECK(p->value <= v);
            }
        }
    }
    return 0;
}
