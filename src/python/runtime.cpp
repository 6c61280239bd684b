#include "python/runtime.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <pybind11/embed.h>

#include "base/console.h"
#include "python/gil.h"
#include "python/module.h"
#include "triggers/trigger_handler.h"

namespace py = pybind11;

namespace pyrebox::python {

namespace {

bool g_started = false;

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

// QEMU loads the plugin with RTLD_LOCAL, so libpython's symbols are not
// visible to extension modules (they are not linked against libpython and
// expect its symbols in the global scope). Re-open it RTLD_GLOBAL.
Expected<bool> promote_libpython() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&Py_InitializeFromConfig), &info) == 0 ||
        info.dli_fname == nullptr) {
        return Error{"cannot locate libpython in this process"};
    }
    if (dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) == nullptr) {
        return Error{std::string("cannot make libpython global: ") + dlerror()};
    }
    return true;
}

std::string status_message(const PyStatus& status) {
    std::string msg = status.err_msg != nullptr ? status.err_msg : "unknown error";
    if (status.func != nullptr) {
        msg = std::string(status.func) + ": " + msg;
    }
    return msg;
}

Expected<bool> init_interpreter(const RuntimeConfig& cfg) {
    const std::string python = cfg.venv + "/bin/python3";
    if (!exists(cfg.venv + "/pyvenv.cfg") || !exists(python)) {
        return Error{"no Python virtual environment at " + cfg.venv +
                     " (run `make bootstrap` in the PyREBox checkout, or pass venv=DIR)"};
    }
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    // QEMU owns the process's signals (SIGINT, SIGTERM) and its stdio.
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    config.configure_c_stdio = 0;
    // With the venv's interpreter as the program, getpath finds pyvenv.cfg:
    // sys.prefix is the venv and its site-packages are on sys.path.
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, python.c_str());
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        return Error{"cannot start Python: " + status_message(status)};
    }
    set_main_interpreter(PyThreadState_Get()->interp);
    return true;
}

std::string format_exception(py::error_already_set& e) {
    try {
        auto traceback = py::module_::import("traceback");
        auto lines = traceback.attr("format_exception")(e.type(), e.value(), e.trace());
        return py::str("").attr("join")(lines).cast<std::string>();
    } catch (...) {
        return e.what();
    }
}

bool is_config_error(py::error_already_set& e) {
    try {
        return e.matches(py::module_::import("pyrebox.config").attr("ConfigError"));
    } catch (py::error_already_set&) {
        return false;
    }
}

}  // namespace

Expected<bool> start(const RuntimeConfig& cfg, Session& session) {
    bind_module_session(session);
    if (auto promoted = promote_libpython(); !promoted) {
        return promoted;
    }
    if (auto ready = init_interpreter(cfg); !ready) {
        return ready;
    }
    g_started = true;
    pyrebox::triggers::set_gil_hooks(
        {[]() -> void* { return new GilScope; },
         [](void* scope) { delete static_cast<GilScope*>(scope); }});
    std::string error;
    try {
        py::module_::import("sys").attr("path").attr("insert")(0, cfg.pythonpath);
        auto runtime = py::module_::import("pyrebox.runtime");
        runtime.attr("boot")(cfg.conf, cfg.target, cfg.qemu_plugin_api);
    } catch (py::error_already_set& e) {
        // A ConfigError carries a complete message; anything else is a bug
        // worth its traceback.
        if (is_config_error(e)) {
            error = py::str(e.value()).cast<std::string>();
        } else {
            error = "PyREBox failed to start:\n" + format_exception(e);
        }
    } catch (std::exception& e) {
        error = std::string("PyREBox failed to start: ") + e.what();
    }
    // From here on every entry into Python goes through GilScope.
    PyEval_SaveThread();
    if (!error.empty()) {
        return Error{error};
    }
    return true;
}

bool guarded(std::string_view what, const std::function<void()>& fn) {
    GilScope gil;
    try {
        fn();
        return true;
    } catch (py::error_already_set& e) {
        console().error(std::string(what) + ":\n" + format_exception(e));
    } catch (std::exception& e) {
        console().error(std::string(what) + ": " + e.what());
    }
    return false;
}

void shutdown() {
    if (!g_started) {
        return;
    }
    guarded("while unloading scripts",
            [] { py::module_::import("pyrebox.runtime").attr("shutdown")(); });
}

bool started() { return g_started; }

}  // namespace pyrebox::python
