// The ISF loader (vmi/isf) over a hostile symbol file, plain JSON or xz.
//
// Input: the file. An input that starts with the xz magic is written to a
// temporary file and loaded with SymbolTable::load (the path xz files take);
// anything else goes to SymbolTable::parse, which load uses for plain JSON.
// A table that loads is then asked what introspection asks: symbols, their
// types and data, sizes and members of the types they and the Linux walkers
// name, the banner; and the layouts the Linux code derives from it
// (MapleLayout, LinuxKernel's, over empty memory).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_memory.h"
#include "vmi/isf.h"
#include "vmi/linux/linux_kernel.h"
#include "vmi/linux/maple_tree.h"

using pyrebox::fuzz::FlatRam;
using namespace pyrebox::vmi;
using namespace pyrebox::vmi::linux_guest;

namespace {

// One temporary file per process, rewritten for every xz input.
const std::string& temp_path() {
    static const std::string path = [] {
        std::string p = "/tmp/pyrebox-fuzz-isf-XXXXXX";
        const int fd = mkstemp(p.data());
        if (fd < 0) {
            std::perror("mkstemp");
            std::abort();
        }
        close(fd);
        std::atexit([] { unlink(temp_path().c_str()); });
        return p;
    }();
    return path;
}

pyrebox::Expected<SymbolTable> load(const uint8_t* data, size_t size) {
    static const uint8_t kXzMagic[] = {0xFD, '7', 'z', 'X', 'Z', 0x00};
    if (size >= sizeof kXzMagic && std::equal(kXzMagic, kXzMagic + sizeof kXzMagic, data)) {
        FILE* f = std::fopen(temp_path().c_str(), "wb");
        FUZZ_CHECK(f != nullptr);
        FUZZ_CHECK(std::fwrite(data, 1, size, f) == size);
        std::fclose(f);
        return SymbolTable::load(temp_path());
    }
    return SymbolTable::parse(std::string_view(reinterpret_cast<const char*>(data), size),
                              "fuzz.isf");
}

const char* const kTypes[] = {"task_struct", "mm_struct", "list_head", "module", "maple_tree",
                              "maple_node", "vm_area_struct", "dentry", "pointer", "int"};
const char* const kMembers[] = {"tasks", "pid", "mm", "comm", "next", "list", "name", "mem",
                                "ma_root", "slot", "d_parent"};

void ask(const SymbolTable& t) {
    std::vector<std::string> names;
    t.for_each_symbol([&](const std::string& name, uint64_t) {
        if (names.size() < 32) {
            names.push_back(name);
        }
    });
    for (const auto& n : names) {
        (void)t.symbol_address(n);
        if (auto type = t.symbol_type(n)) {
            (void)t.type_size(type->name);
        }
        (void)t.symbol_constant_data(n);
        (void)t.type_size(n);
        (void)t.has_user_type(n);
    }
    for (const char* type : kTypes) {
        (void)t.type_size(type);
        for (const char* member : kMembers) {
            if (auto m = t.member(type, member)) {
                FUZZ_CHECK(t.member_offset(type, member) == m->offset);
            }
        }
    }
    (void)t.pointer_size();
    (void)t.enum_value("mod_mem_type", "MOD_TEXT");
    (void)t.banner();
    (void)t.format();
    FUZZ_CHECK(t.symbol_count() >= names.size());
    (void)t.user_type_count();

    (void)MapleLayout::from_symbols(t);
    LinuxKernel k(t);
    k.set_location(KernelLocation{}, PagingMode::None);
    FlatRam none(nullptr, 0);
    (void)k.processes(none, false);
    (void)k.kernel_modules(none);
    (void)k.comm_size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (auto t = load(data, size)) {
        ask(*t);
    }
    return 0;
}
