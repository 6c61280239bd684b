// The plugin's entry points: what QEMU calls when it loads libpyrebox.so.
//
// Install order: options (so errors reach the chosen console), host check,
// internals self-check, Python. Any failure is one clear message and a
// non-zero return, which makes QEMU refuse to start rather than run without
// the analysis the user asked for.
#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "base/console.h"
#include "base/plugin_options.h"
#include "app/session.h"
#include "python/runtime.h"
#include "qemu/host_check.h"
#include "qemu/contained.h"
#include "qemu/instrumentation.h"
#include "qemu/internals.h"
#include "qemu/net_mirror.h"
#include "qemu/plugin_api.h"
#include "triggers/sdk_session.h"

#ifndef PYREBOX_SOURCE_DIR
#error "PYREBOX_SOURCE_DIR must name the checkout (set by CMake)"
#endif

#define PYREBOX_EXPORT extern "C" __attribute__((visibility("default")))

PYREBOX_EXPORT int qemu_plugin_version;

int qemu_plugin_version = pyrebox::qemu::kPluginApiVersion;

namespace {

using pyrebox::console;

// Names of required internals to treat as missing (comma-separated); lets
// tests exercise the start-up self-check against a real QEMU.
constexpr const char* kPretendMissingEnv = "PYREBOX_PRETEND_MISSING_SYMBOLS";

void on_exit(qemu_plugin_id_t /*id*/, void* /*udata*/) {
    pyrebox::qemu::stop_instrumentation();
    pyrebox::qemu::contained("QEMU's exit", [] {
        pyrebox::qemu::stop_net_mirror();
        pyrebox::python::shutdown();
    });
}

// Triggers (loaded later with dlopen) link against the SDK functions this
// plugin exports; QEMU loaded the plugin RTLD_LOCAL, which hides them.
bool make_exports_global() {
    Dl_info info{};
    return dladdr(reinterpret_cast<void*>(&make_exports_global), &info) != 0 &&
           dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) != nullptr;
}

int fail(const std::string& message) {
    console().error(message);
    return -1;
}

}  // namespace

PYREBOX_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                       char** argv) {
    const auto options =
        pyrebox::parse_plugin_options(std::vector<std::string>(argv, argv + argc),
                                      PYREBOX_SOURCE_DIR);
    if (!options) {
        return fail(options.error());
    }
    console().set_fd(options->out_fd);

    if (auto error = pyrebox::qemu::check_host(info->target_name, info->system_emulation,
                                               info->version.min, info->version.cur)) {
        return fail(*error);
    }

    const char* pretend = std::getenv(kPretendMissingEnv);
    const auto missing = pyrebox::qemu::resolve_internals(
        pyrebox::qemu::process_symbol_resolver(pretend != nullptr ? pretend : ""),
        pyrebox::qemu::internals());
    if (!missing.empty()) {
        std::string message = "this QEMU lacks functions PyREBox needs:";
        for (const auto& name : missing) {
            message += "\n  missing symbol: " + name;
        }
        message +=
            "\nPyREBox needs Debian's qemu-system-x86 >= 10.0 (apt-get install -t "
            "bookworm-backports qemu-system-x86 on Debian 12), which exports them.";
        return fail(message);
    }

    if (!make_exports_global()) {
        return fail(std::string("cannot export the trigger SDK: ") + dlerror());
    }
    // The one session, handed to each part that uses it. Never destroyed:
    // QEMU runs plugin exit callbacks after static destructors.
    auto& session = *new pyrebox::Session;
    const std::string target = info->target_name;
    pyrebox::qemu::install_instrumentation(session, id, info->system.max_vcpus,
                                           target == "x86_64");
    pyrebox::triggers::set_sdk_session(session);

    session.isf_path = options->isf;
    session.ram_bytes = options->ram_bytes;
    session.qmp_path = options->qmp;
    session.console_path = options->console;
    session.console_qmp_path = options->console_qmp;
    if (!options->nic_send.empty()) {
        pyrebox::qemu::start_net_mirror(session, options->nic_send, options->nic_recv);
    }

    pyrebox::python::RuntimeConfig runtime{options->venv, options->pythonpath, options->conf,
                                           info->target_name, info->version.cur};
    if (auto started = pyrebox::python::start(runtime, session); !started) {
        return fail(started.error());
    }
    qemu_plugin_register_atexit_cb(id, on_exit, nullptr);
    return 0;
}
