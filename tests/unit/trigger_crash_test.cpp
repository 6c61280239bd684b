#include "triggers/trigger_crash.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string>

using pyrebox::CallbackType;
using pyrebox::Event;
using pyrebox::triggers::format_crash_report;
using pyrebox::triggers::g_trigger_thread;
using pyrebox::triggers::trigger_name;
using pyrebox::triggers::TriggerCall;
using pyrebox::triggers::TriggerCallScope;
using pyrebox::triggers::TriggerLibrary;

TEST(TriggerCrash, NameDropsTheFolderAndTheBuildEnding) {
    EXPECT_EQ(trigger_name("/x/triggers/trigger_block_counter-x86_64-softmmu.so"),
              "trigger_block_counter");
    EXPECT_EQ(trigger_name("t/crasher-i386-softmmu.so"), "crasher");
    EXPECT_EQ(trigger_name("plain.so"), "plain");
    EXPECT_EQ(trigger_name("noext"), "noext");
}

TEST(TriggerCrash, ReportNamesTriggerSignalEventAndVcpu) {
    TriggerLibrary library;
    library.path = "/w/crasher-x86_64-softmmu.so";
    library.name = "crasher";
    Event event;
    event.type = CallbackType::MemWrite;
    event.cpu_index = 3;
    char text[256];
    const int len = format_crash_report(TriggerCall{&library, &event}, SIGBUS, text, sizeof text);
    EXPECT_EQ(std::string(text, static_cast<size_t>(len)),
              "[pyrebox] fatal: trigger 'crasher' (/w/crasher-x86_64-softmmu.so) crashed with "
              "SIGBUS while handling MEM_WRITE_CB (vCPU 3); QEMU stops");
    // A short buffer is cut, still terminated.
    char small[20];
    EXPECT_EQ(format_crash_report(TriggerCall{&library, &event}, SIGSEGV, small, sizeof small),
              19);
    EXPECT_EQ(std::string(small), "[pyrebox] fatal: tr");
    library.name = "x";
    event.cpu_index = -1;
    event.type = CallbackType::NicSend;
    format_crash_report(TriggerCall{&library, &event}, SIGFPE, text, sizeof text);
    EXPECT_EQ(std::string(text), "[pyrebox] fatal: trigger 'x' (/w/crasher-x86_64-softmmu.so) "
                                 "crashed with SIGFPE while handling NIC_SEND_CB; QEMU stops");
}

TEST(TriggerCrash, ScopeMarksTheCallAndRestoresThePreviousOne) {
    TriggerLibrary library;
    Event event;
    const TriggerCall outer{&library, &event}, inner{&library, &event};
    EXPECT_EQ(g_trigger_thread.call, nullptr);
    {
        const TriggerCallScope a(outer);
        EXPECT_EQ(g_trigger_thread.call, &outer);
        EXPECT_TRUE(g_trigger_thread.alt_stack_ready);
        {
            const TriggerCallScope b(inner);
            EXPECT_EQ(g_trigger_thread.call, &inner);
        }
        EXPECT_EQ(g_trigger_thread.call, &outer);
    }
    EXPECT_EQ(g_trigger_thread.call, nullptr);
}

// The real handler, in a child process (gtest death tests): the line, then
// the signal kills the process as it would have without the handler.
namespace {

[[noreturn]] void crash_in_a_trigger_call(bool fault) {
    static TriggerLibrary library;
    library.path = "/w/crasher-x86_64-softmmu.so";
    library.name = "crasher";
    static Event event;
    event.cpu_index = 0;
    pyrebox::triggers::install_crash_reporter(2);
    const TriggerCall call{&library, &event};
    const TriggerCallScope scope(call);
    if (fault) {
        *static_cast<volatile int*>(nullptr) = 1;
    }
    std::abort();
}

void previous_handler(int) { _exit(7); }

}  // namespace

TEST(TriggerCrashDeathTest, FaultInATriggerCallIsReportedThenKills) {
    EXPECT_EXIT(crash_in_a_trigger_call(true), testing::KilledBySignal(SIGSEGV),
                "\\[pyrebox\\] fatal: trigger 'crasher' \\(/w/crasher-x86_64-softmmu.so\\) "
                "crashed with SIGSEGV while handling BLOCK_BEGIN_CB \\(vCPU 0\\); QEMU stops\n");
    EXPECT_EXIT(crash_in_a_trigger_call(false), testing::KilledBySignal(SIGABRT),
                "crashed with SIGABRT while handling BLOCK_BEGIN_CB");
}

TEST(TriggerCrashDeathTest, OutsideTriggerCallsThePreviousDispositionActs) {
    EXPECT_EXIT((pyrebox::triggers::install_crash_reporter(2), std::abort()),
                testing::KilledBySignal(SIGABRT), "^$");
    EXPECT_EXIT((signal(SIGFPE, previous_handler), pyrebox::triggers::install_crash_reporter(2),
                 raise(SIGFPE)),
                testing::ExitedWithCode(7), "^$");
}
