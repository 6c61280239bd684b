// An i386 kernel's structures (4-byte pointers and unsigned longs) in
// synthetic memory, "located" with no paging: the task list (forward and,
// past a broken link, backward through the prev pointers one pointer on),
// pgds normalised as PAE CR3 values, and a process's VMAs from a 32-bit
// maple tree (31 pivots, 32 slots, node metadata in the last slot).
#include <gtest/gtest.h>

#include <string>

#include "fake_ram.h"
#include "vmi/isf.h"
#include "vmi/linux/linux_kernel.h"

namespace {

using pyrebox::testing::FakeRam;
using pyrebox::vmi::PagingMode;
using pyrebox::vmi::SymbolTable;
using pyrebox::vmi::linux_guest::KernelLocation;
using pyrebox::vmi::linux_guest::LinuxKernel;

// task_struct: tasks@8, pid@20, tgid@24, real_parent@28, mm@32, comm@40;
// mm_struct: mm_mt@0 (ma_root@4), pgd@40; vm_area_struct: vm_start@0,
// vm_end@4, vm_mm@8, vm_file@60.
std::string isf32() {
    auto ptr = [](const char* to) {
        return std::string(R"({"kind": "pointer", "subtype": {"kind": "struct", "name": ")") + to +
               "\"}}";
    };
    const std::string ulong = R"({"kind": "base", "name": "unsigned long"})";
    auto array = [](int count, const std::string& of) {
        return R"({"kind": "array", "count": )" + std::to_string(count) + R"(, "subtype": )" + of +
               "}";
    };
    return R"({"metadata": {"format": "6.2.0"},
      "base_types": {"pointer": {"size": 4, "signed": false, "kind": "int", "endian": "little"},
                     "int": {"size": 4, "signed": true, "kind": "int", "endian": "little"},
                     "unsigned long": {"size": 4, "signed": false, "kind": "int", "endian": "little"},
                     "unsigned char": {"size": 1, "signed": false, "kind": "int", "endian": "little"},
                     "char": {"size": 1, "signed": true, "kind": "char", "endian": "little"}},
      "enums": {},
      "symbols": {"init_task": {"address": 4096}, "_text": {"address": 65536},
                  "_end": {"address": 131072}},
      "user_types": {
        "list_head": {"kind": "struct", "size": 8, "fields": {
          "next": {"offset": 0, "type": )" + ptr("list_head") + R"(},
          "prev": {"offset": 4, "type": )" + ptr("list_head") + R"(}}},
        "task_struct": {"kind": "struct", "size": 64, "fields": {
          "tasks": {"offset": 8, "type": {"kind": "struct", "name": "list_head"}},
          "pid": {"offset": 20, "type": {"kind": "base", "name": "int"}},
          "tgid": {"offset": 24, "type": {"kind": "base", "name": "int"}},
          "real_parent": {"offset": 28, "type": )" + ptr("task_struct") + R"(},
          "mm": {"offset": 32, "type": )" + ptr("mm_struct") + R"(},
          "comm": {"offset": 40, "type": )" + array(16, R"({"kind": "base", "name": "char"})") + R"(}}},
        "mm_struct": {"kind": "struct", "size": 64, "fields": {
          "mm_mt": {"offset": 0, "type": {"kind": "struct", "name": "maple_tree"}},
          "pgd": {"offset": 40, "type": )" + ptr("pgd_t") + R"(}}},
        "maple_tree": {"kind": "struct", "size": 12, "fields": {
          "ma_root": {"offset": 4, "type": )" + ptr("maple_node") + R"(}}},
        "maple_node": {"kind": "struct", "size": 256, "fields": {
          "slot": {"offset": 4, "type": )" + array(63, ptr("void")) + R"(}}},
        "maple_range_64": {"kind": "struct", "size": 256, "fields": {
          "pivot": {"offset": 4, "type": )" + array(31, ulong) + R"(},
          "slot": {"offset": 128, "type": )" + array(32, ptr("void")) + R"(},
          "meta": {"offset": 252, "type": {"kind": "struct", "name": "maple_metadata"}}}},
        "maple_arange_64": {"kind": "struct", "size": 256, "fields": {
          "pivot": {"offset": 4, "type": )" + array(20, ulong) + R"(},
          "slot": {"offset": 84, "type": )" + array(21, ptr("void")) + R"(},
          "meta": {"offset": 252, "type": {"kind": "struct", "name": "maple_metadata"}}}},
        "maple_metadata": {"kind": "struct", "size": 2, "fields": {
          "end": {"offset": 0, "type": {"kind": "base", "name": "unsigned char"}}}},
        "vm_area_struct": {"kind": "struct", "size": 76, "fields": {
          "vm_start": {"offset": 0, "type": )" + ulong + R"(},
          "vm_end": {"offset": 4, "type": )" + ulong + R"(},
          "vm_mm": {"offset": 8, "type": )" + ptr("mm_struct") + R"(},
          "vm_file": {"offset": 60, "type": )" + ptr("file") + R"(}}},
        "file": {"kind": "struct", "size": 64, "fields": {
          "f_path": {"offset": 8, "type": {"kind": "struct", "name": "path"}}}},
        "path": {"kind": "struct", "size": 8, "fields": {
          "mnt": {"offset": 0, "type": )" + ptr("vfsmount") + R"(},
          "dentry": {"offset": 4, "type": )" + ptr("dentry") + R"(}}},
        "dentry": {"kind": "struct", "size": 64, "fields": {
          "d_parent": {"offset": 12, "type": )" + ptr("dentry") + R"(},
          "d_name": {"offset": 16, "type": {"kind": "struct", "name": "qstr"}}}},
        "qstr": {"kind": "struct", "size": 12, "fields": {
          "name": {"offset": 8, "type": {"kind": "pointer", "subtype": {"kind": "base", "name": "char"}}}}}
      }})";
}

constexpr uint64_t kInitTask = 0x1000;
constexpr uint64_t kPageOffset = 0xc0000000;

LinuxKernel kernel() {
    auto table = SymbolTable::parse(isf32(), "test32.isf");
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
    uint64_t mm;
    std::string comm;
};

void put_tasks(FakeRam& ram, const std::vector<Task>& tasks) {
    std::vector<Task> all = {{kInitTask, 0, kInitTask, 0, "swapper/0"}};
    all.insert(all.end(), tasks.begin(), tasks.end());
    for (size_t i = 0; i < all.size(); ++i) {
        const auto& t = all[i];
        ram.put(t.addr + 8, all[(i + 1) % all.size()].addr + 8, 4);
        ram.put(t.addr + 12, all[(i + all.size() - 1) % all.size()].addr + 8, 4);
        ram.put(t.addr + 20, static_cast<uint32_t>(t.tgid), 4);
        ram.put(t.addr + 24, static_cast<uint32_t>(t.tgid), 4);
        ram.put(t.addr + 28, t.parent, 4);
        ram.put(t.addr + 32, t.mm, 4);
        ram.put_string(t.addr + 40, t.comm);
        ram.put(t.addr + 56, 0xdeadbeef, 4);  // what follows comm: never read as a pointer
    }
}

TEST(LinuxKernel32, ListsProcessesWithFourBytePointers) {
    FakeRam ram;
    const uint64_t mm1 = 0x9000, mm2 = 0x9100;
    put_tasks(ram, {{0x2000, 1, kInitTask, mm1, "init"},
                    {0x3000, 2, kInitTask, 0, "kthreadd"},
                    {0x4000, 77, 0x2000, mm2, "sh"}});
    ram.put(mm1 + 40, kPageOffset + 0x1e5a000, 4);  // mm->pgd: a kernel virtual address
    ram.put(mm2 + 40, kPageOffset + 0x1e5a020, 4);  // PAE pgds are 32-byte blocks
    auto k = kernel();
    EXPECT_EQ(k.pointer_bytes(), 4u);
    EXPECT_EQ(k.kernel_space(), kPageOffset);
    auto procs = k.processes(ram, false);
    ASSERT_TRUE(procs.ok()) << procs.error();
    ASSERT_EQ(procs->size(), 3u);
    EXPECT_EQ((*procs)[0].pid, 1u);
    EXPECT_EQ((*procs)[0].ppid, 0u);
    EXPECT_EQ((*procs)[0].name, "init");
    EXPECT_EQ((*procs)[0].pgd, 0x1e5a000u);
    EXPECT_EQ((*procs)[1].name, "kthreadd");
    EXPECT_EQ((*procs)[1].pgd, 0u);
    EXPECT_EQ((*procs)[2].pid, 77u);
    EXPECT_EQ((*procs)[2].ppid, 1u);
    EXPECT_EQ((*procs)[2].pgd, 0x1e5a020u);
    EXPECT_EQ((*procs)[2].partial, "");
}

TEST(LinuxKernel32, ABrokenNextLinkIsReadBackwardsThroughPrev) {
    FakeRam ram;
    put_tasks(ram, {{0x2000, 1, kInitTask, 0, "init"},
                    {0x3000, 2, kInitTask, 0, "kthreadd"},
                    {0x4000, 3, kInitTask, 0, "rcu_gp"}});
    ram.put(0x2000 + 8, 0, 4);  // init's next is NULL
    auto procs = kernel().processes(ram, false);
    ASSERT_TRUE(procs.ok()) << procs.error();
    ASSERT_EQ(procs->size(), 3u);
    EXPECT_EQ((*procs)[1].name, "kthreadd");
    EXPECT_EQ((*procs)[2].name, "rcu_gp");
}

TEST(LinuxKernel32, PgdsOfAKptiKernelNameTheKernelHalfOfThePair) {
    FakeRam ram;
    const uint64_t mm = 0x9000;
    put_tasks(ram, {{0x2000, 1, kInitTask, mm, "init"}});
    ram.put(mm + 40, kPageOffset + 0x1e5b000, 4);
    auto pgd = kernel().mm_pgd(ram, mm, true);
    ASSERT_TRUE(pgd.ok()) << pgd.error();
    EXPECT_EQ(*pgd, 0x1e5a000u);
}

TEST(LinuxKernel32, VmasFromAThirtyTwoBitMapleLeaf) {
    FakeRam ram;
    const uint64_t mm = 0x9000, node = 0xa000, vma1 = 0xb000, vma2 = 0xb100;
    // ma_root: a maple_leaf_64 node (type 1 in bits 3..6), root bit 1 set.
    ram.put(mm + 4, node | (1u << 3) | 2, 4);
    // Slots: [0, 0x8047fff] gap, vma1 [0x8048000, 0x8049fff], gap up to
    // 0xb7000fff, vma2 [0xb7001000, 0xb7002fff], then a gap to ULONG_MAX.
    const uint32_t pivots[] = {0x8047fff, 0x8049fff, 0xb7000fff, 0xb7002fff};
    for (int i = 0; i < 4; ++i) {
        ram.put(node + 4 + 4 * i, pivots[i], 4);
    }
    ram.put(node + 128 + 4 * 1, vma1, 4);
    ram.put(node + 128 + 4 * 3, vma2, 4);
    ram.put(node + 252, 4, 1);  // meta.end: slot 4 is the last in use
    ram.put(vma1 + 0, 0x8048000, 4);
    ram.put(vma1 + 4, 0x804a000, 4);
    ram.put(vma1 + 8, mm, 4);
    ram.put(vma2 + 0, 0xb7001000, 4);
    ram.put(vma2 + 4, 0xb7003000, 4);
    ram.put(vma2 + 8, mm, 4);
    auto k = kernel();
    auto vmas = k.mm_vmas(ram, mm);
    ASSERT_TRUE(vmas.ok()) << vmas.error();
    EXPECT_EQ(*vmas, (std::vector<uint64_t>{vma1, vma2}));
    auto v = k.vma(ram, vma2);
    ASSERT_TRUE(v.ok()) << v.error();
    EXPECT_EQ(v->start, 0xb7001000u);
    EXPECT_EQ(v->end, 0xb7003000u);
    EXPECT_EQ(v->mm, mm);
    EXPECT_EQ(v->file, 0u);
}

}  // namespace
