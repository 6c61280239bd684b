// The `_pyrebox` extension module: what pure Python reaches of the C++ side.
// Thin by design: each function maps a name onto the core; policy lives in
// the `pyrebox` package. Core errors (Expected) become Python exceptions
// here and only here: ValueError for bad arguments, InvalidAddress (a
// ValueError) for memory that cannot be read or written.
#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include <cstdio>
#include <cstring>
#include <future>
#include <optional>
#include <string>

#include "base/console.h"
#include "app/kernel_table.h"
#include "app/session.h"
#include "python/gil.h"
#include "python/guest_text.h"
#include "python/module.h"
#include "python/python_handler.h"
#include "triggers/trigger_crash.h"
#include "triggers/trigger_functions.h"
#include "triggers/trigger_handler.h"
#include "triggers/trigger_library.h"
#include "triggers/trigger_variables.h"
#include "app/linux_introspection.h"
#include "vmi/linux/linux_kernel.h"
#include "vmi/linux/module_symbols.h"
#include "vmi/linux/user_symbols.h"
#include "vmi/paging.h"

namespace py = pybind11;
using pyrebox::python::guest_bytes;
using pyrebox::python::guest_str;

namespace {

using pyrebox::Expected;
// The session the module's functions work on (bind_module_session).
pyrebox::Session* g_session = nullptr;
pyrebox::Session& session() { return *g_session; }

PyObject* g_invalid_address = nullptr;
PyObject* g_introspection_error = nullptr;

[[noreturn]] void raise_introspection(const std::string& message) {
    PyErr_SetString(g_introspection_error, message.c_str());
    throw py::error_already_set();
}

template <typename T>
T value_or_raise(Expected<T> result) {
    if (!result) {
        throw py::value_error(result.error());
    }
    return std::move(result.value());
}

template <typename T>
T address_or_raise(Expected<T> result) {
    if (!result) {
        PyErr_SetString(g_invalid_address, result.error().c_str());
        throw py::error_already_set();
    }
    return std::move(result.value());
}

pyrebox::Machine& machine() {
    if (session().machine == nullptr) {
        throw py::value_error("no machine: PyREBox is not running inside QEMU");
    }
    return *session().machine;
}

pyrebox::Engine& engine() {
    if (!session().engine) {
        throw py::value_error("no engine: PyREBox is not running inside QEMU");
    }
    return *session().engine;
}

void check_cpu(int cpu) {
    if (cpu < 0 || cpu >= machine().num_cpus()) {
        throw py::value_error("no vCPU " + std::to_string(cpu) + " (this VM has " +
                              std::to_string(machine().num_cpus()) + ")");
    }
}

pyrebox::vmi::PagingMode mode_now() { return machine().paging_mode(0); }

// The guest's Linux kernel, located in memory on first use (the page tables
// it is found through exist only once the guest has booted).
// Waits (without the GIL) for a symbol table still loading.
// Callers hold the GIL, which serialises the copy of the future.
void wait_for_symbols() {
    const std::shared_future<void> loading = session().linux_loading;
    if (loading.valid()) {
        py::gil_scoped_release unlocked;
        loading.wait();
    }
}

const pyrebox::vmi::linux_guest::LinuxKernel& linux_kernel() {
    wait_for_symbols();
    auto kernel = pyrebox::located_linux_kernel(session());
    if (!kernel) {
        raise_introspection(kernel.error());
    }
    return **kernel;
}

// An entry's `partial`: None when it read whole, else why not (the reason
// can quote guest names, so it is guest text).
py::object partial_or_none(const std::string& partial) {
    return partial.empty() ? py::object(py::none()) : py::object(guest_str(partial));
}

// One read or write of guest memory moves at most this much: the host
// memory a call takes stays bounded whatever size a script (or a length
// read from the guest) asks for.
constexpr size_t kMaxAccess = 64u << 20;

void check_access_size(size_t length) {
    if (length > kMaxAccess) {
        throw py::value_error("a read of guest memory is at most " +
                              std::to_string(kMaxAccess >> 20) + " MiB (" +
                              std::to_string(length) + " bytes asked for): read it in pieces");
    }
}

template <typename T>
T introspection_or_raise(Expected<T> result) {
    if (!result) {
        raise_introspection(result.error());
    }
    return std::move(result.value());
}

// --- Symbols of modules ---

using pyrebox::vmi::linux_guest::Module;
using pyrebox::vmi::linux_guest::ModuleSymbolResolver;
using pyrebox::vmi::linux_guest::ModuleSymbols;

// Parsed dynamic symbols of user files, shared by every process.
pyrebox::vmi::linux_guest::UserSymbolCache g_user_symbols;

ModuleSymbolResolver resolver() {
    return ModuleSymbolResolver(linux_kernel(), machine().physical_memory(), engine().kpti(),
                                g_user_symbols);
}

py::list module_dicts(const std::vector<std::pair<Module, bool>>& modules) {
    py::list out;
    for (const auto& [m, resolved] : modules) {
        py::dict d;
        d["name"] = guest_str(m.name);
        d["fullname"] = guest_str(m.fullname);
        d["base"] = m.base;
        d["size"] = m.size;
        d["symbols_resolved"] = resolved;
        d["inode"] = m.inode;
        d["dev"] = m.dev;
        d["kaddr"] = m.kaddr;
        d["partial"] = partial_or_none(m.partial);
        py::list regions;
        for (const auto& r : m.regions) {
            py::dict rd;
            rd["name"] = guest_str(r.name);
            rd["base"] = r.base;
            rd["size"] = r.size;
            regions.append(rd);
        }
        d["regions"] = regions;
        out.append(d);
    }
    return out;
}

// Appends {mod, mod_fullname, name, addr} for every symbol of `ms` (kernel
// symbols outside the kernel image's span, the per-CPU offsets, included).
// Dicts are built through the C API with shared key objects: the kernel
// alone has ~90,000 symbols.
void append_symbol_dicts(py::list& out, const ModuleSymbols& ms) {
    if (!ms.symbols) {
        return;
    }
    // Interned once and never released (they outlive the interpreter's
    // last use of this module).
    static PyObject* const k_mod = PyUnicode_InternFromString("mod");
    static PyObject* const k_full = PyUnicode_InternFromString("mod_fullname");
    static PyObject* const k_name = PyUnicode_InternFromString("name");
    static PyObject* const k_addr = PyUnicode_InternFromString("addr");
    static PyObject* const k_size = PyUnicode_InternFromString("size");
    const py::str mod = guest_str(ms.module.name), full = guest_str(ms.module.fullname);
    for (const auto& s : ms.symbols->symbols()) {
        py::dict d;
        py::str name = guest_str(s.name);
        py::int_ addr(ms.bias + s.value);
        py::int_ size(s.size);
        PyDict_SetItem(d.ptr(), k_mod, mod.ptr());
        PyDict_SetItem(d.ptr(), k_full, full.ptr());
        PyDict_SetItem(d.ptr(), k_name, name.ptr());
        PyDict_SetItem(d.ptr(), k_addr, addr.ptr());
        PyDict_SetItem(d.ptr(), k_size, size.ptr());
        if (PyList_Append(out.ptr(), d.ptr()) != 0) {
            throw py::error_already_set();
        }
    }
}

}  // namespace

void pyrebox::python::bind_module_session(Session& s) { g_session = &s; }

PYBIND11_EMBEDDED_MODULE(_pyrebox, m) {
    m.doc() = "PyREBox native side (embedded in the QEMU plugin)";
    g_invalid_address =
        PyErr_NewExceptionWithDoc("_pyrebox.InvalidAddress",
                                  "Guest memory that cannot be read or written.",
                                  PyExc_ValueError, nullptr);
    m.attr("InvalidAddress") = py::handle(g_invalid_address);
    g_introspection_error = PyErr_NewExceptionWithDoc(
        "_pyrebox.IntrospectionError",
        "Guest OS introspection is off or failed (the message says why).",
        PyExc_RuntimeError, nullptr);
    m.attr("IntrospectionError") = py::handle(g_introspection_error);

    m.def(
        "write",
        [](const std::string& prefix, const std::string& text) {
            py::gil_scoped_release unlocked;
            pyrebox::console().write_lines(prefix, text);
        },
        py::arg("prefix"), py::arg("text"),
        "Writes text to the PyREBox console, each line starting with prefix.");

    // --- Callbacks ---
    m.def(
        "register_callback",
        [](int type, py::object adapter, std::optional<uint64_t> addr,
           std::optional<uint64_t> pgd, uint16_t start_opcode, uint16_t end_opcode,
           bool all_processes, std::optional<std::string> trigger_path, bool trigger_needs_gil) {
            auto cb_type = pyrebox::callback_type_from_int(type);
            if (!cb_type) {
                throw py::value_error("unknown callback type " + std::to_string(type));
            }
            pyrebox::CallbackSpec spec;
            spec.type = *cb_type;
            spec.addr = addr;
            spec.pgd = pgd;
            spec.opcode_first = start_opcode;
            spec.opcode_last = end_opcode;
            spec.all_processes = all_processes;
            std::shared_ptr<pyrebox::CallbackHandler> handler =
                std::make_shared<pyrebox::python::PythonHandler>(std::move(adapter));
            unsigned trigger_handle = 0;
            if (trigger_path) {
                auto library = value_or_raise(pyrebox::triggers::load_trigger(*trigger_path));
                // A crash in a trigger is then reported on the console.
                pyrebox::triggers::install_crash_reporter(pyrebox::console().fd());
                const int trigger_type = library->get_type();
                if (!library->accepts(type, addr.has_value())) {
                    using pyrebox::triggers::trigger_type_name;
                    std::string why = "trigger " + *trigger_path + " is for " +
                                      trigger_type_name(trigger_type) + " (its get_type()), not " +
                                      trigger_type_name(type) + (addr ? " at an address" : "");
                    if (trigger_type == pyrebox::triggers::kOpBlockBeginType ||
                        trigger_type == pyrebox::triggers::kOpInsnBeginType) {
                        why += "; it attaches to " +
                               trigger_type_name(trigger_type).substr(3) +
                               " callbacks added at an address (add_callback(..., addr=ADDR))";
                    }
                    throw py::value_error(why);
                }
                trigger_handle = pyrebox::triggers::next_trigger_handle();
                handler = std::make_shared<pyrebox::triggers::TriggerHandler>(
                    trigger_handle, std::move(library), std::move(handler), trigger_needs_gil,
                    session().is_64bit);
                // A trigger sees every event, in every process.
                spec.all_processes = true;
            }
            const auto id = value_or_raise(session().registry.add(spec, std::move(handler)));
            return py::make_tuple(id, trigger_handle);
        },
        py::arg("type"), py::arg("adapter"), py::arg("addr") = py::none(),
        py::arg("pgd") = py::none(), py::arg("start_opcode") = 0, py::arg("end_opcode") = 0,
        py::arg("all_processes") = false, py::arg("trigger_path") = py::none(),
        py::arg("trigger_needs_gil") = false);

    // --- Trigger variables and functions ---
    m.def("trigger_set_uint", [](unsigned handle, const std::string& key, uint64_t value) {
        pyrebox::triggers::variables().set_uint(handle, key, value, session().is_64bit ? 8 : 4);
    });
    m.def("trigger_set_str", [](unsigned handle, const std::string& key, const std::string& value) {
        pyrebox::triggers::variables().set_str(handle, key, value);
    });
    m.def("trigger_get", [](unsigned handle, const std::string& key) -> py::object {
        auto var = pyrebox::triggers::variables().lookup(handle, key);
        if (!var || var->value == nullptr) {
            return py::none();
        }
        switch (var->kind) {
            case pyrebox::triggers::VarKind::Uint: {
                uint64_t value = 0;
                std::memcpy(&value, var->value, session().is_64bit ? 8 : 4);
                return py::int_(value);
            }
            case pyrebox::triggers::VarKind::Str:
                return py::str(static_cast<const char*>(var->value));
            case pyrebox::triggers::VarKind::Pointer:
                // PyREBox's convention: the trigger stored a PyObject*.
                return py::reinterpret_borrow<py::object>(static_cast<PyObject*>(var->value));
        }
        return py::none();
    });
    m.def("trigger_call_function", [](unsigned handle, const std::string& name) {
        auto function = pyrebox::triggers::lookup_function(handle, name);
        if (function == nullptr) {
            throw py::value_error("the trigger declared no function '" + name +
                                  "' (declare_function(handle, \"" + name + "\", fn) in the trigger)");
        }
        function(handle);
    });
    // Batches of registrations (CallbackManager.batch()): one plan change.
    m.def("begin_batch", [] { session().registry.begin_batch(); },
          "Opens (or nests) a registration batch: adds and removes publish nothing until the "
          "outermost end_batch().");
    m.def("end_batch", [] {
        if (!session().registry.end_batch()) {
            throw py::value_error("end_batch() without an open batch");
        }
    }, "Closes a registration batch; the outermost publishes the plan once.");
    m.def("registry_stats", [] {
        const auto stats = session().registry.stats();
        py::dict d;
        d["publications"] = stats.publications;
        d["plan_changes"] = stats.plan_changes;
        d["flushes"] = session().flushes_requested.load(std::memory_order_relaxed);
        d["batch_depth"] = session().registry.batch_depth();
        return d;
    }, "Counters since start: plan publications, plan changes, translation-cache flushes "
       "requested, and the open batches' depth.");
    m.def("callback_count", [] { return session().registry.size(); },
          "How many callbacks are registered (every script, every type).");
    m.def("unregister_callback", [](uint64_t id) { return session().registry.remove(id); });
    m.def("callback_exists", [](uint64_t id) { return session().registry.contains(id); });

    // --- Processes and address spaces ---
    m.def("start_monitoring", [](uint64_t pgd) { return engine().start_monitoring(pgd); });
    m.def("stop_monitoring", [](uint64_t pgd) { return engine().stop_monitoring(pgd); });
    m.def("is_monitored", [](uint64_t pgd) { return engine().is_monitored(pgd); });
    m.def("monitored_processes", [] { return session().monitored.list(); });
    m.def("current_pgd", [](int cpu) {
        check_cpu(cpu);
        return engine().current_pgd(cpu);
    });
    m.def("kpti", [] { return engine().kpti(); });
    m.def("normalize_pgd", [](uint64_t cr3) { return engine().normalize(cr3, mode_now()); });

    // --- Devices ---
    m.def("qmp_path", [] { return session().qmp_path; },
          "The QMP socket the plugin was given (qmp=), or an empty string.");
    m.def("nic_observed", [] { return session().nic_observed; },
          "True when the plugin reads a NIC's frames (nic_send= / nic_recv= given).");

    // --- CPU state ---
    m.def("is_64bit", [] { return session().is_64bit; });
    m.def("num_cpus", [] { return machine().num_cpus(); });
    m.def("register_names", [] { return machine().register_names(); });
    m.def("read_register", [](int cpu, const std::string& name) {
        check_cpu(cpu);
        return value_or_raise(machine().read_register(cpu, name));
    });
    m.def("read_register_bytes", [](int cpu, const std::string& name) {
        check_cpu(cpu);
        return py::bytes(value_or_raise(machine().read_register_bytes(cpu, name)));
    });
    m.def("write_register", [](int cpu, const std::string& name, uint64_t value) {
        check_cpu(cpu);
        value_or_raise(machine().write_register(cpu, name, value));
    });
    m.def("dump_state", [](int cpu) {
        check_cpu(cpu);
        return value_or_raise(machine().dump_state(cpu));
    });

    // --- Memory ---
    m.def("read_physical", [](uint64_t paddr, size_t length) {
        check_access_size(length);
        std::string buf(length, '\0');
        if (!machine().physical_memory().read(paddr, buf.data(), length)) {
            char msg[128];
            std::snprintf(msg, sizeof msg, "physical range 0x%llx..0x%llx is not readable memory",
                          static_cast<unsigned long long>(paddr),
                          static_cast<unsigned long long>(paddr + length));
            PyErr_SetString(g_invalid_address, msg);
            throw py::error_already_set();
        }
        return py::bytes(buf);
    });
    m.def("memory_map", [] { return value_or_raise(machine().memory_map()); },
          "The guest-physical [start, end) ranges backed by RAM or ROM, sorted and merged.");
    m.def("write_physical", [](uint64_t paddr, const std::string& data) {
        if (!machine().physical_memory().write(paddr, data.data(), data.size())) {
            char msg[128];
            std::snprintf(msg, sizeof msg, "physical range 0x%llx..0x%llx is not writable memory",
                          static_cast<unsigned long long>(paddr),
                          static_cast<unsigned long long>(paddr + data.size()));
            PyErr_SetString(g_invalid_address, msg);
            throw py::error_already_set();
        }
    });
    m.def("read_virtual", [](uint64_t pgd, uint64_t vaddr, size_t length) {
        check_access_size(length);
        std::string buf(length, '\0');
        address_or_raise(pyrebox::vmi::read_virtual(machine().physical_memory(), mode_now(), pgd,
                                                    vaddr, buf.data(), length));
        return py::bytes(buf);
    });
    m.def("write_virtual", [](uint64_t pgd, uint64_t vaddr, const std::string& data) {
        address_or_raise(pyrebox::vmi::write_virtual(machine().physical_memory(), mode_now(), pgd,
                                                     vaddr, data.data(), data.size()));
    });
    m.def("translate", [](uint64_t pgd, uint64_t vaddr) {
        return address_or_raise(
                   pyrebox::vmi::translate(machine().physical_memory(), mode_now(), pgd, vaddr))
            .paddr;
    });

    // --- I/O ports ---
    m.def("io_read", [](uint32_t port, int size) {
        return value_or_raise(machine().io_read(port, size));
    });
    m.def("io_write", [](uint32_t port, int size, uint64_t value) {
        value_or_raise(machine().io_write(port, size, value));
    });

    // --- Console and shell ---
    m.def("console_argument", [] { return session().console_path; });
    m.def("qmp_argument", [] { return session().console_qmp_path; });
    m.def("callback_vcpu", [] { return session().machine ? machine().callback_vcpu() : -1; },
          "The vCPU whose callback this thread runs, or -1.");
    m.def("freeze_other_vcpus", [] {
        py::gil_scoped_release unlocked;  // other vCPUs may wait for the GIL
        return machine().freeze_other_vcpus();
    });
    m.def("thaw_other_vcpus", [] {
        py::gil_scoped_release unlocked;
        machine().thaw_other_vcpus();
    });
    // The main loop may hold QEMU's lock while it waits for the GIL.
    m.def("stop_guest_clock", [] {
        py::gil_scoped_release unlocked;
        return machine().stop_guest_clock();
    });
    m.def("start_guest_clock", [] {
        py::gil_scoped_release unlocked;
        machine().start_guest_clock();
    });

    // --- Linux introspection ---
    m.def("linux_isf_argument", [] { return session().isf_path; });
    m.def(
        "linux_isf_path",
        []() -> std::optional<std::string> {
            wait_for_symbols();
            const auto& s = session();
            if (!s.linux_kernel) {
                return std::nullopt;
            }
            return s.linux_kernel->symbols().origin();
        },
        "The path of the symbol table Linux introspection uses (from the plugin argument "
        "isf=, [SYMBOLS] isf, or built from guest memory), or None when none is loaded.");
    m.def("in_callback", [] { return machine().in_callback(); });
    m.def("vm_started", [] { return session().vm_started.load(); });
    m.def(
        "linux_load_symbols",
        [](const std::string& path) {
            auto& s = session();
            wait_for_symbols();
            s.linux_kernel.reset();
            s.linux_locate_error.clear();
            s.linux_off_reason = "the symbol table " + path + " is still loading";
            // Loaded off the main thread; the outcome is printed when known.
            s.linux_loading = std::async(std::launch::async,
                                         [path, &s] { (void)pyrebox::load_linux_table(s, path); });
        },
        "Starts loading the guest kernel's ISF in the background; the outcome is printed.");
    m.def(
        "linux_build_table_from_memory",
        [] {
            auto& s = session();
            wait_for_symbols();
            s.linux_kernel.reset();
            s.linux_locate_error.clear();
            s.linux_off_reason =
                "no symbol table given: it is built from guest memory once the kernel runs";
            // The builder runs on a vCPU thread once the kernel is found.
            // Readers of the table wait on linux_loading meanwhile (they
            // copy it under the GIL, as this does).
            s.table_from_memory.arm([](const std::string& banner, uint64_t paddr)
                                        -> pyrebox::Expected<std::string> {
                auto done = std::make_shared<std::promise<void>>();
                std::string path, problem;
                {
                    py::gil_scoped_acquire gil;
                    session().linux_loading = done->get_future().share();
                    try {
                        auto build = py::module_::import("pyrebox.kernel_tables")
                                         .attr("table_for_running_kernel");
                        path = py::cast<std::string>(build(py::bytes(banner), paddr));
                    } catch (py::error_already_set& e) {
                        problem = py::str(e.value());  // the message, no traceback
                    } catch (const std::exception& e) {  // not a str
                        problem = e.what();
                    }
                }
                if (problem.empty()) {
                    if (auto loaded = pyrebox::load_linux_table(session(), path); !loaded) {
                        problem = loaded.error();
                    }
                } else {
                    session().linux_off_reason =
                        "no symbol table given, and none could be built from guest memory: " +
                        problem;
                    pyrebox::console().write_lines("[pyrebox] warning: ",
                                                   session().linux_off_reason);
                }
                done->set_value();
                if (!problem.empty()) {
                    return pyrebox::Error{problem};
                }
                return path;
            });
        },
        "Builds the kernel's ISF from guest memory once the kernel runs, with "
        "pyrebox.kernel_tables.table_for_running_kernel(banner_bytes, banner_paddr), "
        "which returns the table's path.");
    m.def("linux_table_pending", [] { return session().table_from_memory.armed(); },
          "True while the kernel's table waits to be built from guest memory.");
    m.def("linux_set_off", [](const std::string& reason) {
        wait_for_symbols();
        session().linux_kernel.reset();
        session().linux_off_reason = reason;
    });
    m.def("linux_enabled", [] {
        wait_for_symbols();
        return session().linux_kernel != nullptr;
    });
    m.def("linux_off_reason", [] {
        wait_for_symbols();
        const auto& s = session();
        return s.linux_kernel ? std::string()
               : "Linux introspection is off: " +
                     (s.linux_off_reason.empty() ? std::string("no symbol table loaded")
                                                 : s.linux_off_reason);
    });
    m.def("process_events_active", [] { return session().process_events.active(); });
    m.def("os_bits", [] {
        wait_for_symbols();
        if (session().linux_kernel) {
            if (auto size = session().linux_kernel->symbols().pointer_size()) {
                return static_cast<int>(*size * 8);
            }
        }
        return session().is_64bit ? 64 : 32;
    });
    m.def("linux_processes", [] {
        const auto& kernel = linux_kernel();
        const auto procs =
            introspection_or_raise(kernel.processes(machine().physical_memory(), engine().kpti()));
        py::list out;
        for (const auto& p : procs) {
            py::dict d;
            d["pid"] = p.pid;
            d["pgd"] = p.pgd;
            d["name"] = guest_str(p.name);
            d["kaddr"] = p.kaddr;
            d["ppid"] = p.ppid;
            d["partial"] = partial_or_none(p.partial);
            out.append(d);
        }
        return out;
    });
    m.def("linux_exec_arguments", [](uint64_t task) {
        const auto& kernel = linux_kernel();
        const auto args = introspection_or_raise(
            kernel.exec_arguments(machine().physical_memory(), task, engine().kpti()));
        py::dict d;
        py::list argv;
        for (const auto& a : args.argv) {
            argv.append(py::bytes(a));
        }
        d["argv"] = argv;
        d["envc"] = args.envc;
        d["execfn"] = py::bytes(args.execfn);
        return d;
    });
    m.def("linux_modules", [](uint64_t pgd) {
        return module_dicts(introspection_or_raise(resolver().modules(pgd)));
    });
    m.def(
        "linux_symbols",
        [](std::optional<uint64_t> pgd) {
            py::list out;
            for (const auto& ms : introspection_or_raise(resolver().symbols(pgd))) {
                append_symbol_dicts(out, ms);
            }
            return out;
        },
        py::arg("pgd") = py::none());
    m.def("linux_sym_to_va", [](uint64_t pgd, const py::object& mod, const py::object& name) {
        return introspection_or_raise(
            resolver().sym_to_va(pgd, guest_bytes(mod), guest_bytes(name)));
    });
    // (address, None) or (None, why): "unknown process", "unknown module",
    // "unknown symbol" or "not readable yet".
    m.def("linux_symbol_lookup", [](uint64_t pgd, const py::object& mod, const py::object& name) {
        pyrebox::vmi::linux_guest::SymbolProblem why{};
        const auto found = introspection_or_raise(
            resolver().sym_to_va(pgd, guest_bytes(mod), guest_bytes(name), &why));
        if (found) {
            return py::make_tuple(*found, py::none());
        }
        return py::make_tuple(py::none(), pyrebox::vmi::linux_guest::describe(why));
    });
    m.def("linux_va_to_sym", [](uint64_t pgd, uint64_t addr) -> py::object {
        const auto found = introspection_or_raise(resolver().va_to_sym(pgd, addr));
        if (!found) {
            return py::none();
        }
        return py::make_tuple(guest_str(found->first), guest_str(found->second));
    });
    m.def("linux_symbol_cache_size", [] { return g_user_symbols.size(); });
}
