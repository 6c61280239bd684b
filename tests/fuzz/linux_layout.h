// The synthetic x86-64 Linux the kallsyms and Linux-walker harnesses read:
// an ISF with small structures at low addresses, so that a fuzzer input of a
// few KB (FlatRam: physical = kernel virtual, no paging, page_offset_base 0)
// holds a whole kernel: task list, mm, VMAs, files, dentries, mounts,
// modules with their kallsyms, per-CPU current task.
//
// The layout is what tests/fuzz/make_seeds.py writes seeds for; change both
// together. Offsets (bytes):
//   symbols: modules@0x40 (list_head), __per_cpu_offset@0x60 (ulong[4]),
//            current_task@0x80 (a per-CPU offset), init_task@0x100,
//            _text@0x10000, _end@0x20000
//   task_struct (128): tasks@16 pid@32 tgid@36 real_parent@40 mm@48 comm@64[16]
//   mm_struct (96): mm_mt@0 (maple_tree: ma_root@8) or mmap@0 (kVmaList),
//            pgd@16, arg_start@24 arg_end@32 env_start@40 env_end@48
//   vm_area_struct (64): vm_start@0 vm_end@8 vm_mm@16 vm_next@24 vm_pgoff@32 vm_file@40
//   file (32): f_path@0 (path: mnt@0 dentry@8), f_inode@16
//   inode (48): i_ino@0 i_sb@8 i_size@16 i_mtime@24 (timespec64: tv_sec@0 tv_nsec@8)
//   super_block (8): s_dev@0
//   dentry (32): d_parent@0 d_name@8 (qstr: name@8)
//   vfsmount (8): mnt_root@0; mount (48): mnt_parent@0 mnt_mountpoint@8 mnt@16
//   module (200): list@0 name@16[56] core_layout@72 init_layout@88 (module_layout:
//            base@0 size@8) or (kModuleMem) mem@72[7] (module_memory, 16 bytes:
//            base@0 size@8), kallsyms@192
//   mod_kallsyms (24): symtab@0 num_symtab@8 (u32) strtab@16
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "vmi/isf.h"
#include "vmi/linux/linux_kernel.h"

namespace pyrebox::fuzz::linux_layout {

// Variant bits (the input's first byte selects them).
constexpr unsigned kVmaList = 1;    // mm->mmap list (<= 6.0) instead of the maple tree
constexpr unsigned kModuleMem = 2;  // module.mem[] (6.4+) instead of core/init_layout
constexpr unsigned kVariants = 4;

inline std::string isf(unsigned variant) {
    auto ptr = [](const char* to) {
        return std::string(R"({"kind": "pointer", "subtype": {"kind": "struct", "name": ")") + to +
               "\"}}";
    };
    auto base = [](const char* name) {
        return std::string(R"({"kind": "base", "name": ")") + name + "\"}";
    };
    auto field = [](const char* name, unsigned offset, const std::string& type) {
        return std::string("\"") + name + "\": {\"offset\": " + std::to_string(offset) +
               ", \"type\": " + type + "}";
    };
    auto strct = [](const char* name, unsigned size, const std::string& fields) {
        return std::string("\"") + name + "\": {\"kind\": \"struct\", \"size\": " +
               std::to_string(size) + ", \"fields\": {" + fields + "}}";
    };
    auto chars = [](unsigned n) {
        return R"({"kind": "array", "count": )" + std::to_string(n) +
               R"(, "subtype": {"kind": "base", "name": "char"}})";
    };
    const std::string ulong = base("unsigned long");
    const bool vma_list = variant & kVmaList;
    const bool module_mem = variant & kModuleMem;

    std::string types = strct("list_head", 16,
                              field("next", 0, ptr("list_head")) + ", " +
                                  field("prev", 8, ptr("list_head")));
    types += ", " + strct("task_struct", 128,
                          field("tasks", 16, R"({"kind": "struct", "name": "list_head"})") + ", " +
                              field("pid", 32, base("int")) + ", " +
                              field("tgid", 36, base("int")) + ", " +
                              field("real_parent", 40, ptr("task_struct")) + ", " +
                              field("mm", 48, ptr("mm_struct")) + ", " +
                              field("comm", 64, chars(16)));
    types += ", " + strct("mm_struct", 96,
                          (vma_list ? field("mmap", 0, ptr("vm_area_struct"))
                                    : field("mm_mt", 0, R"({"kind": "struct", "name": "maple_tree"})")) +
                              ", " + field("pgd", 16, ptr("pgd_t")) + ", " +
                              field("arg_start", 24, ulong) + ", " +
                              field("arg_end", 32, ulong) + ", " +
                              field("env_start", 40, ulong) + ", " +
                              field("env_end", 48, ulong));
    types += ", " + strct("maple_tree", 16, field("ma_root", 8, ptr("maple_node")));
    types += ", " + strct("vm_area_struct", 64,
                          field("vm_start", 0, ulong) + ", " + field("vm_end", 8, ulong) + ", " +
                              field("vm_mm", 16, ptr("mm_struct")) + ", " +
                              (vma_list ? field("vm_next", 24, ptr("vm_area_struct")) + ", " : "") +
                              field("vm_pgoff", 32, ulong) + ", " +
                              field("vm_file", 40, ptr("file")));
    types += ", " + strct("file", 32,
                          field("f_path", 0, R"({"kind": "struct", "name": "path"})") + ", " +
                              field("f_inode", 16, ptr("inode")));
    types += ", " + strct("path", 16,
                          field("mnt", 0, ptr("vfsmount")) + ", " + field("dentry", 8, ptr("dentry")));
    types += ", " + strct("inode", 48,
                          field("i_ino", 0, ulong) + ", " + field("i_sb", 8, ptr("super_block")) +
                              ", " + field("i_size", 16, base("long long")) + ", " +
                              field("i_mtime", 24, R"({"kind": "struct", "name": "timespec64"})"));
    types += ", " + strct("timespec64", 16,
                          field("tv_sec", 0, base("long long")) + ", " + field("tv_nsec", 8, base("long")));
    types += ", " + strct("super_block", 8, field("s_dev", 0, base("unsigned int")));
    types += ", " + strct("dentry", 32,
                          field("d_parent", 0, ptr("dentry")) + ", " +
                              field("d_name", 8, R"({"kind": "struct", "name": "qstr"})"));
    types += ", " + strct("qstr", 16,
                          field("name", 8, R"({"kind": "pointer", "subtype": {"kind": "base", "name": "char"}})"));
    types += ", " + strct("vfsmount", 8, field("mnt_root", 0, ptr("dentry")));
    types += ", " + strct("mount", 48,
                          field("mnt_parent", 0, ptr("mount")) + ", " +
                              field("mnt_mountpoint", 8, ptr("dentry")) + ", " +
                              field("mnt", 16, R"({"kind": "struct", "name": "vfsmount"})"));
    const std::string mod_list = field("list", 0, R"({"kind": "struct", "name": "list_head"})") +
                                 ", " + field("name", 16, chars(56)) + ", ";
    const std::string kallsyms = field("kallsyms", 192, ptr("mod_kallsyms"));
    if (module_mem) {
        types += ", " + strct("module", 200,
                              mod_list +
                                  field("mem", 72, R"({"kind": "array", "count": 7, "subtype": {"kind": "struct", "name": "module_memory"}})") +
                                  ", " + kallsyms);
        types += ", " + strct("module_memory", 16,
                              field("base", 0, ptr("void")) + ", " + field("size", 8, base("unsigned int")));
    } else {
        types += ", " + strct("module", 200,
                              mod_list +
                                  field("core_layout", 72, R"({"kind": "struct", "name": "module_layout"})") +
                                  ", " +
                                  field("init_layout", 88, R"({"kind": "struct", "name": "module_layout"})") +
                                  ", " + kallsyms);
        types += ", " + strct("module_layout", 16,
                              field("base", 0, ptr("void")) + ", " + field("size", 8, base("unsigned int")));
    }
    types += ", " + strct("mod_kallsyms", 24,
                          field("symtab", 0, ptr("elf64_sym")) + ", " +
                              field("num_symtab", 8, base("unsigned int")) + ", " +
                              field("strtab", 16, R"({"kind": "pointer", "subtype": {"kind": "base", "name": "char"}})"));

    return std::string(R"({"metadata": {"format": "6.2.0"},
      "base_types": {"pointer": {"size": 8, "signed": false, "kind": "int", "endian": "little"},
                     "int": {"size": 4, "signed": true, "kind": "int", "endian": "little"},
                     "unsigned int": {"size": 4, "signed": false, "kind": "int", "endian": "little"},
                     "long": {"size": 8, "signed": true, "kind": "int", "endian": "little"},
                     "long long": {"size": 8, "signed": true, "kind": "int", "endian": "little"},
                     "unsigned long": {"size": 8, "signed": false, "kind": "int", "endian": "little"},
                     "char": {"size": 1, "signed": true, "kind": "char", "endian": "little"}},
      "enums": {"mod_mem_type": {"size": 4, "base": "unsigned int", "constants": {
          "MOD_TEXT": 0, "MOD_DATA": 1, "MOD_RODATA": 2, "MOD_RO_AFTER_INIT": 3,
          "MOD_INIT_TEXT": 4, "MOD_INIT_DATA": 5, "MOD_INIT_RODATA": 6}}},
      "symbols": {"modules": {"address": 64},
                  "__per_cpu_offset": {"address": 96, "type": {"kind": "array", "count": 4, "subtype": {"kind": "base", "name": "unsigned long"}}},
                  "current_task": {"address": 128},
                  "init_task": {"address": 256},
                  "_text": {"address": 65536}, "_end": {"address": 131072}},
      "user_types": {)") +
           types + "}}";
}

// The symbol table of a variant, parsed once (tables are immutable; copies share it).
inline const vmi::SymbolTable& table(unsigned variant) {
    static std::optional<vmi::SymbolTable> tables[kVariants];
    auto& t = tables[variant % kVariants];
    if (!t) {
        auto parsed = vmi::SymbolTable::parse(isf(variant % kVariants), "fuzz.isf");
        if (!parsed) {
            std::fprintf(stderr, "the harness's ISF does not parse: %s\n", parsed.error().c_str());
            std::abort();
        }
        t = std::move(*parsed);
    }
    return *t;
}

// A kernel of that variant, located with no paging (virtual = physical). A
// new one per input: LinuxKernel caches what it reads (per-CPU offsets).
inline vmi::linux_guest::LinuxKernel kernel(unsigned variant) {
    vmi::linux_guest::LinuxKernel k(table(variant));
    vmi::linux_guest::KernelLocation loc;
    loc.page_offset_base = 0;
    k.set_location(loc, vmi::PagingMode::None);
    return k;
}

}  // namespace pyrebox::fuzz::linux_layout
