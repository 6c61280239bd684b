#include "vmi/linux/module_symbols.h"

#include <set>

namespace pyrebox::vmi::linux_guest {

namespace {

bool matches(const Module& m, const std::string& name) {
    return m.name == name || m.fullname == name;
}

}  // namespace

const ElfSymbol* ModuleSymbols::at(uint64_t addr) const {
    if (!symbols || addr < module.base || addr - module.base >= module.size) {
        return nullptr;
    }
    if (!kernel) {
        return symbols->containing(addr - bias);
    }
    const ElfSymbol* s = symbols->preceding(addr);
    return (s != nullptr && s->value >= module.base) ? s : nullptr;
}

ModuleSymbols ModuleSymbolResolver::kernel_module(const Module& m) const {
    ModuleSymbols out{m, nullptr, 0, true};
    if (!m.partial.empty()) {
        return out;  // an entry that did not read: no symbols to read either
    }
    if (m.kaddr == 0) {
        if (auto set = kernel_.vmlinux_symbols()) {
            out.symbols = *set;
        }
    } else if (auto set = kernel_.module_kallsyms(mem_, m.kaddr)) {
        out.symbols = *set;
    }
    return out;
}

ModuleSymbols ModuleSymbolResolver::user_module(uint64_t pgd, const Module& m) const {
    ModuleSymbols out{m, nullptr, 0, false};
    if (auto image = cache_.get(kernel_, mem_, pgd, m)) {
        out.bias = image->bias(m.base);
        out.symbols = std::shared_ptr<const SymbolSet>(image, &image->symbols);
    }
    return out;
}

Expected<std::optional<uint64_t>> ModuleSymbolResolver::task_of(uint64_t pgd) const {
    auto procs = kernel_.processes(mem_, kpti_);
    if (!procs) {
        return Error{procs.error()};
    }
    for (const auto& p : *procs) {
        if (p.pgd == pgd && pgd != 0) {
            return std::optional<uint64_t>(p.kaddr);
        }
    }
    return std::optional<uint64_t>();
}

Expected<std::vector<std::pair<Module, bool>>> ModuleSymbolResolver::modules(
    uint64_t pgd) const {
    std::vector<std::pair<Module, bool>> out;
    if (pgd == 0) {
        auto mods = kernel_.kernel_modules(mem_);
        if (!mods) {
            return Error{mods.error()};
        }
        for (auto& m : *mods) {
            // vmlinux's symbols are the symbol table's: always there.
            const bool resolved =
                m.partial.empty() && (m.kaddr == 0 || kernel_module(m).symbols != nullptr);
            out.emplace_back(std::move(m), resolved);
        }
        return out;
    }
    auto mods = kernel_.modules(mem_, pgd, kpti_);
    if (!mods) {
        return Error{mods.error()};
    }
    for (auto& m : *mods) {
        const bool resolved = user_module(pgd, m).symbols != nullptr;
        out.emplace_back(std::move(m), resolved);
    }
    return out;
}

Expected<std::vector<ModuleSymbols>> ModuleSymbolResolver::symbols(
    std::optional<uint64_t> pgd) const {
    std::vector<ModuleSymbols> out;
    if (!pgd || *pgd == 0) {
        auto mods = kernel_.kernel_modules(mem_);
        if (!mods) {
            return Error{mods.error()};
        }
        for (const auto& m : *mods) {
            if (auto ms = kernel_module(m); ms.symbols) {
                out.push_back(std::move(ms));
            }
        }
        if (pgd) {
            return out;
        }
        // Every process: each file once, where the first process on the
        // list that has its symbols maps it.
        auto procs = kernel_.processes(mem_, kpti_);
        if (!procs) {
            return Error{procs.error()};
        }
        std::set<std::string> done;
        for (const auto& p : *procs) {
            if (p.pgd == 0) {
                continue;
            }
            auto files = kernel_.task_modules(mem_, p.kaddr);
            if (!files) {
                continue;  // exiting while we look
            }
            for (const auto& m : *files) {
                if (done.count(m.fullname) != 0) {
                    continue;
                }
                if (auto ms = user_module(p.pgd, m); ms.symbols) {
                    done.insert(m.fullname);
                    out.push_back(std::move(ms));
                }
            }
        }
        return out;
    }
    auto task = task_of(*pgd);
    if (!task) {
        return Error{task.error()};
    }
    if (!*task) {
        return Error{"no process has pgd " + std::to_string(*pgd)};
    }
    auto files = kernel_.task_modules(mem_, **task);
    if (!files) {
        return Error{files.error()};
    }
    for (const auto& m : *files) {
        if (auto ms = user_module(*pgd, m); ms.symbols) {
            out.push_back(std::move(ms));
        }
    }
    return out;
}

Expected<std::optional<uint64_t>> ModuleSymbolResolver::sym_to_va(uint64_t pgd,
                                                                  const std::string& mod,
                                                                  const std::string& name,
                                                                  SymbolProblem* why) const {
    using Result = std::optional<uint64_t>;
    SymbolProblem problem = SymbolProblem::UnknownModule;
    auto fail = [&](SymbolProblem p) {
        if (why) {
            *why = p;
        }
        return Result();
    };
    // Among the modules of that name, what the best of them says.
    auto look = [&](const ModuleSymbols& ms) -> Result {
        if (!ms.symbols) {
            if (problem == SymbolProblem::UnknownModule) {
                problem = SymbolProblem::NotReadableYet;
            }
            return Result();
        }
        if (const auto* s = ms.symbols->find(name)) {
            return Result(ms.bias + s->value);
        }
        problem = SymbolProblem::UnknownSymbol;
        return Result();
    };
    if (pgd != 0) {
        auto task = task_of(pgd);
        if (!task) {
            return Error{task.error()};
        }
        if (!*task) {
            return fail(SymbolProblem::UnknownProcess);
        }
        auto files = kernel_.task_modules(mem_, **task);
        if (!files) {
            return Error{files.error()};
        }
        for (const auto& m : *files) {
            if (matches(m, mod)) {
                if (auto found = look(user_module(pgd, m))) {
                    return found;
                }
            }
        }
        if (problem != SymbolProblem::UnknownModule) {
            return fail(problem);
        }
    }
    // The kernel is mapped in every address space.
    auto mods = kernel_.kernel_modules(mem_);
    if (!mods) {
        return Error{mods.error()};
    }
    for (const auto& m : *mods) {
        if (matches(m, mod)) {
            if (auto found = look(kernel_module(m))) {
                return found;
            }
            return fail(problem);
        }
    }
    return fail(problem);
}

const char* describe(SymbolProblem problem) {
    switch (problem) {
        case SymbolProblem::UnknownProcess: return "unknown process";
        case SymbolProblem::UnknownModule: return "unknown module";
        case SymbolProblem::UnknownSymbol: return "unknown symbol";
        case SymbolProblem::NotReadableYet: return "not readable yet";
    }
    return "unknown";
}

Expected<std::optional<std::pair<std::string, std::string>>> ModuleSymbolResolver::va_to_sym(
    uint64_t pgd, uint64_t addr) const {
    using Result = std::optional<std::pair<std::string, std::string>>;
    const bool in_kernel = pgd == 0 || addr >= kernel_.kernel_space();
    std::vector<Module> mods;
    if (in_kernel) {
        auto list = kernel_.kernel_modules(mem_);
        if (!list) {
            return Error{list.error()};
        }
        mods = std::move(*list);
    } else {
        auto task = task_of(pgd);
        if (!task) {
            return Error{task.error()};
        }
        if (!*task) {
            return Result();
        }
        auto files = kernel_.task_modules(mem_, **task);
        if (!files) {
            return Error{files.error()};
        }
        mods = std::move(*files);
    }
    for (const auto& m : mods) {
        if (addr < m.base || addr - m.base >= m.size) {
            continue;
        }
        const auto ms = in_kernel ? kernel_module(m) : user_module(pgd, m);
        if (const auto* s = ms.at(addr)) {
            return Result(std::make_pair(m.name, s->name));
        }
        return Result();
    }
    return Result();
}

}  // namespace pyrebox::vmi::linux_guest
