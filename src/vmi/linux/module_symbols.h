// Symbols of the modules of an address space, and the lookups the scripting
// API offers on them: by module and name, by address, and whole lists.
//
// User modules (the files a process maps) have their ELF dynamic symbols
// (UserSymbolCache); the kernel ("vmlinux") has its ISF symbol table, slid;
// each kernel module its kallsyms. Module lists are read afresh on every
// call, so answers follow the guest; a module whose symbols cannot be read
// now has none (it is not resolved), never guessed ones.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.h"
#include "vmi/elf_symbols.h"
#include "vmi/linux/linux_kernel.h"
#include "vmi/linux/user_symbols.h"

namespace pyrebox::vmi::linux_guest {

// A module with its symbols, when they can be read now.
struct ModuleSymbols {
    Module module;
    std::shared_ptr<const SymbolSet> symbols;  // null: not resolved (yet)
    uint64_t bias = 0;                         // address = bias + symbol value
    bool kernel = false;

    // The symbol at `addr`: for an ELF file, the one whose [value, value +
    // size) holds it; for the kernel, the nearest preceding one inside the
    // module. Null outside the module or when none applies.
    const ElfSymbol* at(uint64_t addr) const;
};

// Why a symbol lookup found no address: no process has the pgd; no module
// of that name is there; the module's symbols cannot be read now (its pages
// are in neither the process nor the page cache: try again later); or it
// has no such symbol.
enum class SymbolProblem { UnknownProcess, UnknownModule, UnknownSymbol, NotReadableYet };
const char* describe(SymbolProblem problem);  // "unknown module", ...

class ModuleSymbolResolver {
public:
    ModuleSymbolResolver(const LinuxKernel& kernel, PhysicalMemory& mem, bool kpti,
                         UserSymbolCache& cache)
        : kernel_(kernel), mem_(mem), kpti_(kpti), cache_(cache) {}

    ModuleSymbols kernel_module(const Module& m) const;
    ModuleSymbols user_module(uint64_t pgd, const Module& m) const;

    // The modules of `pgd` (0: the kernel's) with whether their symbols are
    // resolved.
    Expected<std::vector<std::pair<Module, bool>>> modules(uint64_t pgd) const;

    // The symbols of pgd 0 (the kernel and its modules), of one process, or
    // (nullopt) of the kernel and then each file any process maps, once by
    // path, from the first process that has it resolved. Only resolved
    // modules are given. A pgd no process has is an error.
    Expected<std::vector<ModuleSymbols>> symbols(std::optional<uint64_t> pgd) const;

    // The address of `name` in the module named `mod` (name or full path)
    // of `pgd`; kernel modules are found from any pgd, after the process's
    // own files. nullopt: no such process, module or symbol, or not
    // resolved; `why` (when given) then says which.
    Expected<std::optional<uint64_t>> sym_to_va(uint64_t pgd, const std::string& mod,
                                                const std::string& name,
                                                SymbolProblem* why = nullptr) const;

    // (module name, symbol name) at `addr` of `pgd` (kernel addresses in
    // any pgd); nullopt when nothing holds it.
    Expected<std::optional<std::pair<std::string, std::string>>> va_to_sym(uint64_t pgd,
                                                                           uint64_t addr) const;

private:
    // The task_struct of the process with that pgd; nullopt when none has it.
    Expected<std::optional<uint64_t>> task_of(uint64_t pgd) const;

    const LinuxKernel& kernel_;
    PhysicalMemory& mem_;
    bool kpti_;
    UserSymbolCache& cache_;
};

}  // namespace pyrebox::vmi::linux_guest
