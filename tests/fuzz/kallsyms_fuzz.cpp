// The kernel-module readers: a module's kallsyms (kernel_symbols.cpp) and
// the symbol lookups over the kernel and its modules (module_symbols), over
// hostile memory laid out as linux_layout.h describes.
//
// Input: physical memory from address 0 = kernel virtual memory (FlatRam).
//   [0]      the layout variant (linux_layout.h)
//   [8..15]  a struct module address for module_kallsyms
//   [16..23] an address for va_to_sym
//   [24..39] a symbol name for sym_to_va (NUL-terminated or 16 bytes)
// The modules list is at 0x40, so a whole kernel fits in the input.
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_memory.h"
#include "linux_layout.h"
#include "vmi/linux/module_symbols.h"
#include "vmi/linux/user_symbols.h"

using pyrebox::fuzz::FlatRam;
using namespace pyrebox::vmi;
using namespace pyrebox::vmi::linux_guest;
namespace layout = pyrebox::fuzz::linux_layout;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FlatRam ram(data, size);
    const auto kernel = layout::kernel(static_cast<unsigned>(ram.get(0, 1)));

    if (auto set = kernel.module_kallsyms(ram, ram.get(8))) {
        for (const auto& s : (*set)->symbols()) {
            FUZZ_CHECK(!s.name.empty() && s.value != 0);
        }
    }

    char name_bytes[17] = {};
    for (size_t i = 0; i < 16; ++i) {
        name_bytes[i] = static_cast<char>(ram.get(24 + i, 1));
    }
    const std::string name(name_bytes, strnlen(name_bytes, 16));

    UserSymbolCache cache;
    ModuleSymbolResolver resolver(kernel, ram, /*kpti=*/false, cache);
    std::string first_module = "vmlinux";
    if (auto mods = resolver.modules(0); mods && mods->size() > 1) {
        first_module = (*mods)[1].first.name;
    }
    (void)resolver.symbols(0);
    (void)resolver.va_to_sym(0, ram.get(16));
    (void)resolver.sym_to_va(0, "vmlinux", name);
    (void)resolver.sym_to_va(0, first_module, name);
    return 0;
}
