#include "vmi/linux/linux_kernel.h"

#include <gtest/gtest.h>

#include "fake_ram.h"

#include <array>
#include <map>
#include <string>

namespace {

using pyrebox::vmi::PagingMode;
using pyrebox::vmi::PhysicalMemory;
using pyrebox::vmi::SymbolTable;
using pyrebox::vmi::linux_guest::KernelLocation;
using pyrebox::vmi::linux_guest::LinuxKernel;

using pyrebox::testing::FakeRam;

// task_struct: tasks@16 (list_head), pid@28 (int), tgid@32 (int), real_parent@40, mm@48,
// comm@64 (char[16]); mm_struct: mm_mt@0 (in an anonymous struct), pgd@80.
std::string isf(const std::string& task_fields = R"("tasks": {"offset": 16, "type": {"kind": "struct", "name": "list_head"}},)") {
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
          "pid": {"offset": 28, "type": {"kind": "base", "name": "int"}},
          "tgid": {"offset": 32, "type": {"kind": "base", "name": "int"}},
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

LinuxKernel kernel(const std::string& text = isf()) {
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
void put_tasks(FakeRam& ram, const std::vector<Task>& tasks) {
    std::vector<Task> all = {{kInitTask, 0, kInitTask, 0, "swapper/0"}};
    all.insert(all.end(), tasks.begin(), tasks.end());
    for (size_t i = 0; i < all.size(); ++i) {
        const auto& t = all[i];
        ram.put(t.addr + 16, all[(i + 1) % all.size()].addr + 16);
        ram.put(t.addr + 24, all[(i + all.size() - 1) % all.size()].addr + 16);
        ram.put(t.addr + 32, static_cast<uint32_t>(t.tgid), 4);
        ram.put(t.addr + 40, t.parent);
        ram.put(t.addr + 48, t.mm);
        ram.put_string(t.addr + 64, t.comm);
    }
}

TEST(LinuxKernel, ListsThreadGroupLeadersWithParentsAndPgds) {
    FakeRam ram;
    // Two user processes: mm pgd fields hold direct-map addresses.
    ram.put(0x5000 + 80, kPageOffset + 0x7a000);
    ram.put(0x6000 + 80, kPageOffset + 0x7b000);
    put_tasks(ram, {{0x2000, 1, kInitTask, 0x5000, "init"},
                    {0x3000, 2, kInitTask, 0, "kthreadd"},
                    {0x4000, 77, 0x2000, 0x6000, "static_loop"}});
    auto procs = kernel().processes(ram, /*kpti=*/false);
    ASSERT_TRUE(procs.ok()) << procs.error();
    ASSERT_EQ(procs->size(), 3u);
    EXPECT_EQ((*procs)[0].pid, 1u);
    EXPECT_EQ((*procs)[0].name, "init");
    EXPECT_EQ((*procs)[0].ppid, 0u);
    EXPECT_EQ((*procs)[0].pgd, 0x7a000u);
    EXPECT_EQ((*procs)[0].kaddr, 0x2000u);
    EXPECT_EQ((*procs)[1].name, "kthreadd");
    EXPECT_EQ((*procs)[1].pgd, 0u);
    EXPECT_EQ((*procs)[2].pid, 77u);
    EXPECT_EQ((*procs)[2].ppid, 1u);
    EXPECT_EQ((*procs)[2].pgd, 0x7b000u);
    // With KPTI the user half's bit is not part of the identity.
    ram.put(0x6000 + 80, kPageOffset + 0x7d000);
    EXPECT_EQ((*kernel().processes(ram, true))[2].pgd, 0x7c000u);
}

TEST(LinuxKernel, ACycleInTheTaskListIsAnError) {
    FakeRam ram;
    put_tasks(ram, {{0x2000, 1, kInitTask, 0, "a"}, {0x3000, 2, kInitTask, 0, "b"}});
    ram.put(0x3000 + 16, 0x2000 + 16);  // b -> a instead of back to init_task
    auto procs = kernel().processes(ram, false);
    ASSERT_FALSE(procs.ok());
    EXPECT_NE(procs.error().find("task list (init_task.tasks) is broken"), std::string::npos)
        << procs.error();
}

TEST(LinuxKernel, UnreadableTaskAndMissingMemberAreNamed) {
    FakeRam ram;
    put_tasks(ram, {{0x2000, 1, kInitTask, 0, "a"}});
    ram.put(0x2000 + 16, 0x90000 + 16);  // into memory that is not there
    auto procs = kernel().processes(ram, false);
    ASSERT_FALSE(procs.ok());
    EXPECT_NE(procs.error().find("task_struct at 0x90000: cannot read task_struct.tgid"),
              std::string::npos)
        << procs.error();

    auto no_tasks = kernel(isf("")).processes(ram, false);
    ASSERT_FALSE(no_tasks.ok());
    EXPECT_NE(no_tasks.error().find("no member 'tasks' in struct task_struct"),
              std::string::npos)
        << no_tasks.error();
}

TEST(LinuxKernel, NotLocatedYet) {
    auto table = SymbolTable::parse(isf(), "test.isf");
    ASSERT_TRUE(table.ok());
    FakeRam ram;
    auto procs = LinuxKernel(*table).processes(ram, false);
    ASSERT_FALSE(procs.ok());
    EXPECT_NE(procs.error().find("not been located"), std::string::npos);
}

TEST(LinuxKernel, DentryPathGoesUpToTheRoot) {
    FakeRam ram;
    // "/" <- "usr" <- "lib" <- "libc.so.6"; names in a string area.
    const std::vector<std::pair<uint64_t, std::string>> chain = {
        {0x8000, ""}, {0x8100, "usr"}, {0x8200, "lib"}, {0x8300, "libc.so.6"}};
    for (size_t i = 0; i < chain.size(); ++i) {
        const auto [d, name] = chain[i];
        ram.put(d + 24, i == 0 ? d : chain[i - 1].first);
        ram.put(d + 32 + 8, 0x9000 + 64 * i);
        ram.put_string(0x9000 + 64 * i, name);
    }
    auto path = kernel().dentry_path(ram, 0x8300, 0);
    ASSERT_TRUE(path.ok()) << path.error();
    EXPECT_EQ(*path, "/usr/lib/libc.so.6");
    EXPECT_EQ(*kernel().dentry_path(ram, 0x8000, 0), "/");
}

}  // namespace
