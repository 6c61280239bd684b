// A synthetic x86-64 Linux layout for unit tests: a small ISF, a kernel
// "located" with no paging (virtual = physical), and task lists in a FakeRam.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fake_ram.h"
#include "vmi/isf.h"
#include "vmi/linux/linux_kernel.h"

namespace pyrebox::testing::linux_fixture {

using pyrebox::vmi::PagingMode;
using pyrebox::vmi::SymbolTable;
using pyrebox::vmi::linux_guest::KernelLocation;
using pyrebox::vmi::linux_guest::LinuxKernel;

// task_struct: tasks@16 (list_head), pid@32 (int), tgid@36 (int), real_parent@40, mm@48,
// comm@64 (char[16]); mm_struct: mm_mt@0 (in an anonymous struct), pgd@80.
inline std::string isf(const std::string& task_fields = R"("tasks": {"offset": 16, "type": {"kind": "struct", "name": "list_head"}},)") {
    auto ptr = [](const char* to) {
        return std::string(R"({"kind": "pointer", "subtype": {"kind": "struct", "name": ")") + to +
               "\"}}";
    };
    auto ulong = R"({"kind": "base", "name": "unsigned long"})";
    return std::string(R"({"metadata": {"format": "6.2.0"},
      "base_types": {"pointer": {"size": 8, "signed": false, "kind": "int", "endian": "little"},
                     "int": {"size": 4, "signed": true, "kind": "int", "endian": "little"},
                     "unsigned long": {"size": 8, "signed": false, "kind": "int", "endian": "little"},
                     "char": {"size": 1, "signed": true, "kind": "char", "endian": "little"}},
      "enums": {},
      "symbols": {"init_task": {"address": 4096}, "_text": {"address": 65536},
                  "_end": {"address": 131072}},
      "user_types": {
        "list_head": {"kind": "struct", "size": 16, "fields": {
          "next": {"offset": 0, "type": )") + ptr("list_head") + R"(},
          "prev": {"offset": 8, "type": )" + ptr("list_head") + R"(}}},
        "task_struct": {"kind": "struct", "size": 128, "fields": {)" + task_fields + R"(
          "pid": {"offset": 32, "type": {"kind": "base", "name": "int"}},
          "tgid": {"offset": 36, "type": {"kind": "base", "name": "int"}},
          "real_parent": {"offset": 40, "type": )" + ptr("task_struct") + R"(},
          "mm": {"offset": 48, "type": )" + ptr("mm_struct") + R"(},
          "comm": {"offset": 64, "type": {"kind": "array", "count": 16, "subtype": {"kind": "base", "name": "char"}}}}},
        "anon_mm": {"kind": "struct", "size": 96, "fields": {
          "mm_mt": {"offset": 0, "type": {"kind": "struct", "name": "maple_tree"}},
          "pgd": {"offset": 80, "type": )" + ptr("pgd_t") + R"(}}},
        "mm_struct": {"kind": "struct", "size": 96, "fields": {
          "unnamed_field_0": {"offset": 0, "anonymous": true, "type": {"kind": "struct", "name": "anon_mm"}}}},
        "maple_tree": {"kind": "struct", "size": 16, "fields": {
          "ma_root": {"offset": 8, "type": )" + ptr("maple_node") + R"(}}},
        "vm_area_struct": {"kind": "struct", "size": 152, "fields": {
          "vm_start": {"offset": 0, "type": )" + ulong + R"(},
          "vm_end": {"offset": 8, "type": )" + ulong + R"(},
          "vm_mm": {"offset": 16, "type": )" + ptr("mm_struct") + R"(},
          "vm_file": {"offset": 112, "type": )" + ptr("file") + R"(}}},
        "file": {"kind": "struct", "size": 64, "fields": {
          "f_path": {"offset": 16, "type": {"kind": "struct", "name": "path"}}}},
        "path": {"kind": "struct", "size": 16, "fields": {
          "mnt": {"offset": 0, "type": )" + ptr("vfsmount") + R"(},
          "dentry": {"offset": 8, "type": )" + ptr("dentry") + R"(}}},
        "dentry": {"kind": "struct", "size": 64, "fields": {
          "d_parent": {"offset": 24, "type": )" + ptr("dentry") + R"(},
          "d_name": {"offset": 32, "type": {"kind": "struct", "name": "qstr"}}}},
        "qstr": {"kind": "struct", "size": 16, "fields": {
          "name": {"offset": 8, "type": {"kind": "pointer", "subtype": {"kind": "base", "name": "char"}}}}}
      }})";
}

constexpr uint64_t kInitTask = 0x1000;
constexpr uint64_t kPageOffset = 0x100000;

inline LinuxKernel kernel(const std::string& text = isf()) {
    auto table = SymbolTable::parse(text, "test.isf");
    EXPECT_TRUE(table.ok()) << table.error();
    LinuxKernel k(*table);
    KernelLocation loc;
    loc.page_offset_base = kPageOffset;
    k.set_location(loc, PagingMode::None);
    return k;
}

struct Task {
    uint64_t addr;
    int tgid;
    uint64_t parent;
    uint64_t mm;  // 0: kernel thread
    std::string comm;
};

// init_task then `tasks`, linked in order on init_task.tasks.
inline void put_tasks(FakeRam& ram, const std::vector<Task>& tasks) {
    std::vector<Task> all = {{kInitTask, 0, kInitTask, 0, "swapper/0"}};
    all.insert(all.end(), tasks.begin(), tasks.end());
    for (size_t i = 0; i < all.size(); ++i) {
        const auto& t = all[i];
        ram.put(t.addr + 16, all[(i + 1) % all.size()].addr + 16);
        ram.put(t.addr + 24, all[(i + all.size() - 1) % all.size()].addr + 16);
        ram.put(t.addr + 32, static_cast<uint32_t>(t.tgid), 4);  // pid: the leader's
        ram.put(t.addr + 36, static_cast<uint32_t>(t.tgid), 4);
        ram.put(t.addr + 40, t.parent);
        ram.put(t.addr + 48, t.mm);
        ram.put_string(t.addr + 64, t.comm);
    }
}

}  // namespace pyrebox::testing::linux_fixture
