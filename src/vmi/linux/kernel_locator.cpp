#include "vmi/linux/kernel_locator.h"

#include <cinttypes>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "base/hex.h"

namespace pyrebox::vmi::linux_guest {

namespace {

constexpr uint64_t k2M = 2ull << 20;
constexpr uint64_t k4K = 4096;
constexpr uint64_t kKernelImageSize = 1ull << 30;  // KERNEL_IMAGE_SIZE with KASLR
constexpr uint64_t k2G = 2ull << 30;
const std::string kBannerPrefix = "Linux version ";

// The text of a banner-like string for a message: up to the first NUL or
// newline, non-printable bytes escaped, at most `max` bytes.
std::string printable(const std::string& bytes, size_t max = 256) {
    std::string out;
    for (char c : bytes) {
        if (c == '\0' || c == '\n' || out.size() >= max) {
            break;
        }
        if (c >= 0x20 && c < 0x7f) {
            out.push_back(c);
        } else {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\x%02x", static_cast<unsigned char>(c));
            out += esc;
        }
    }
    return out;
}

bool read_string(PhysicalMemory& mem, uint64_t paddr, size_t len, std::string& out) {
    out.resize(len);
    return mem.read(paddr, out.data(), len);
}

struct Symbols {
    uint64_t banner;
    uint64_t pgd;
    const char* pgd_name;
    uint64_t text;  // _text, or linux_banner when the ISF has no _text
    bool has_text;
    // Where the image is linked: a symbol at `a` is at physical
    // a - link_base (plus the physical slide). __START_KERNEL_map on
    // x86-64; PAGE_OFFSET on i386, where the image lies in the direct map.
    uint64_t link_base;
    uint64_t kernel_space;  // the lowest kernel address
    unsigned pointer;       // 8 or 4 bytes
};

constexpr uint64_t kKernelHalf = 0xffff800000000000ull;
// i386's PAGE_OFFSET when the table cannot tell it (CONFIG_VMSPLIT_3G).
constexpr uint64_t kDefaultPageOffset32 = 0xc0000000ull;

// Addresses computed from a 32-bit kernel's symbols wrap at 4 GiB.
uint64_t mask(const Symbols& s) { return s.pointer == 4 ? 0xffffffffull : ~0ull; }

bool is_32bit(PagingMode mode) { return mode == PagingMode::Pae || mode == PagingMode::Legacy32; }

// A pointer (s.pointer bytes) in kernel virtual memory.
Expected<uint64_t> read_ptr(PhysicalMemory& mem, PagingMode mode, uint64_t pgd, uint64_t va,
                            unsigned pointer, const std::string& what) {
    uint64_t value = 0;
    auto r = read_virtual(mem, mode, pgd, va, &value, pointer);
    if (!r) {
        return Error{"cannot read " + what + ": " + r.error()};
    }
    return value;
}

// The checks of verify_location past the banner, with the symbols already
// looked up: init_mm.pgd and init_task, each when the table describes it.
Expected<bool> verify_kernel_data(const SymbolTable& symbols, PhysicalMemory& mem,
                                  PagingMode mode, const Symbols& s, uint64_t pgd_pa,
                                  uint64_t vs) {
    // init_mm.pgd is swapper_pg_dir (init_top_pgt) at its run-time address,
    // written there by the kernel's own relocation: a virtual slide that
    // does not give that value is not the kernel's.
    const auto init_mm = symbols.symbol_address("init_mm");
    const auto mm_pgd = symbols.member_offset("mm_struct", "pgd");
    if (init_mm && mm_pgd) {
        auto pgd = read_ptr(mem, mode, pgd_pa, *init_mm + vs + *mm_pgd, s.pointer, "init_mm.pgd");
        if (!pgd) {
            return Error{pgd.error()};
        }
        if (*pgd != ((s.pgd + vs) & mask(s))) {
            return Error{"init_mm.pgd holds " + hex(*pgd) + ", not " + s.pgd_name + " at " +
                         hex(s.pgd + vs) + " (virtual slide " + hex(vs) + ")"};
        }
    }
    // init_task (the idle task of CPU 0): its task list comes back to it,
    // it is a kernel thread (no mm) and it is called swapper.
    const auto init_task = symbols.symbol_address("init_task");
    const auto tasks = symbols.member_offset("task_struct", "tasks");
    const auto comm = symbols.member_offset("task_struct", "comm");
    const auto mm = symbols.member_offset("task_struct", "mm");
    if (init_task && tasks && comm && mm) {
        const uint64_t task = (*init_task + vs) & mask(s);
        const uint64_t head = task + *tasks;
        const uint64_t ptr = s.pointer;
        for (auto [offset, name, back] :
             {std::tuple<uint64_t, const char*, uint64_t>{0, "next", ptr}, {ptr, "prev", 0}}) {
            const std::string field = std::string("init_task.tasks.") + name;
            auto entry = read_ptr(mem, mode, pgd_pa, head + offset, s.pointer, field);
            if (!entry) {
                return Error{entry.error()};
            }
            if (*entry < s.kernel_space) {
                return Error{field + " is " + hex(*entry) + ", not a kernel address"};
            }
            const std::string other = back ? "prev" : "next";
            auto returned = read_ptr(mem, mode, pgd_pa, *entry + back, s.pointer,
                                     field + "->" + other + " (at " + hex(*entry + back) + ")");
            if (!returned) {
                return Error{returned.error()};
            }
            if (*returned != head) {
                return Error{field + "->" + other + " is " + hex(*returned) +
                             ", not init_task.tasks at " + hex(head)};
            }
        }
        auto task_mm = read_ptr(mem, mode, pgd_pa, task + *mm, s.pointer, "init_task.mm");
        if (!task_mm) {
            return Error{task_mm.error()};
        }
        if (*task_mm != 0) {
            return Error{"init_task.mm is " + hex(*task_mm) + ", not NULL"};
        }
        char name[16] = {};
        if (auto r = read_virtual(mem, mode, pgd_pa, task + *comm, name, sizeof name); !r) {
            return Error{"cannot read init_task.comm: " + r.error()};
        }
        const std::string text = printable(std::string(name, sizeof name));
        if (text.rfind("swapper", 0) != 0) {
            return Error{"init_task.comm is '" + text + "', not 'swapper'"};
        }
    }
    return true;
}

// Whether the kernel page tables, found from the physical slide that a
// banner at `banner_pa` implies, map linux_banner (and _text) there for some
// virtual slide. `why` gets the walk's error for the unslid address.
// A slide the tables map the banner for must also pass verify_kernel_data;
// `rejected` gets the first one that did not, with the reason.
bool confirm(const SymbolTable& symbols, PhysicalMemory& mem, PagingMode mode, const Symbols& s,
             uint64_t banner_pa, uint64_t& virt_slide, std::string& why,
             std::string& rejected) {
    const uint64_t phys_slide = banner_pa - (s.banner - s.link_base);
    const uint64_t pgd_pa = s.pgd - s.link_base + phys_slide;
    const uint64_t text_pa = s.text - s.link_base + phys_slide;
    std::vector<uint64_t> slides{0};
    if (s.pointer == 4) {
        // i386: the image lies in the direct map (virtual = PAGE_OFFSET +
        // physical), so KASLR moves both addresses by the same amount.
        if (phys_slide != 0) {
            slides = {phys_slide};
        }
    } else {
        // Virtual slides that keep _text inside [__START_KERNEL_map,
        // __START_KERNEL_map + 1 GiB), 2 MiB apart; 0 (no KASLR) first.
        const uint64_t text_offset = s.text - kStartKernelMap;
        const uint64_t lowest = 0 - (text_offset / k2M) * k2M;  // the slide that puts _text lowest
        for (uint64_t vs = lowest; s.text + vs >= kStartKernelMap &&
                                   s.text + vs < kStartKernelMap + kKernelImageSize;
             vs += k2M) {
            if (vs != 0) {
                slides.push_back(vs);
            }
        }
    }
    for (uint64_t vs : slides) {
        auto t = translate(mem, mode, pgd_pa, (s.banner + vs) & mask(s));
        if (!t) {
            if (vs == 0) {
                why = t.error();
            }
            continue;
        }
        if (t->paddr != banner_pa) {
            if (vs == 0) {
                why = hex(s.banner) + " maps to physical " + hex(t->paddr);
            }
            continue;
        }
        if (s.has_text) {
            auto tt = translate(mem, mode, pgd_pa, (s.text + vs) & mask(s));
            if (!tt || tt->paddr != text_pa) {
                continue;
            }
        }
        if (auto data = verify_kernel_data(symbols, mem, mode, s, pgd_pa, vs); !data) {
            if (rejected.empty()) {
                rejected = "virtual slide " + hex(vs) + ": " + data.error();
            }
            continue;
        }
        virt_slide = vs;
        return true;
    }
    return false;
}

// linux_banner, the pgd symbol and _text, checked as locate_kernel needs them.
Expected<Symbols> kernel_symbols(const SymbolTable& symbols) {
    const std::string& isf = symbols.origin();
    Symbols s{};
    const auto banner = symbols.symbol_address("linux_banner");
    if (!banner) {
        return Error{isf + " has no linux_banner symbol, which locating the kernel needs"};
    }
    s.banner = *banner;
    s.pointer = symbols.pointer_size().value_or(8) == 4 ? 4 : 8;
    if (s.pointer == 4) {
        // i386: swapper_pg_dir is init_mm's page directory; the image is
        // linked at PAGE_OFFSET + its physical address (startup_32 and the
        // linker's phys_startup_32 tell PAGE_OFFSET).
        auto pgd = symbols.symbol_address("swapper_pg_dir");
        if (!pgd) {
            return Error{"unsupported kernel layout: " + isf +
                         " describes a 32-bit kernel without swapper_pg_dir (expected an i386 "
                         "kernel)"};
        }
        s.pgd = *pgd;
        s.pgd_name = "swapper_pg_dir";
        s.link_base = kDefaultPageOffset32;
        const auto startup = symbols.symbol_address("startup_32");
        const auto phys = symbols.symbol_address("phys_startup_32");
        if (startup && phys && *startup > *phys) {
            s.link_base = *startup - *phys;
        }
        s.kernel_space = s.link_base;
    } else {
        if (auto pgd = symbols.symbol_address("init_top_pgt")) {
            s.pgd = *pgd;
            s.pgd_name = "init_top_pgt";
        } else if (auto old = symbols.symbol_address("init_level4_pgt")) {
            s.pgd = *old;
            s.pgd_name = "init_level4_pgt";
        } else {
            return Error{"unsupported kernel layout: " + isf +
                         " has neither init_top_pgt nor init_level4_pgt (expected an x86-64 "
                         "kernel)"};
        }
        s.link_base = kStartKernelMap;
        s.kernel_space = kKernelHalf;
    }
    const auto text = symbols.symbol_address("_text");
    s.has_text = text.has_value();
    s.text = text ? *text : s.banner;
    for (auto [name, va] : {std::pair<const char*, uint64_t>{"linux_banner", s.banner},
                            {s.pgd_name, s.pgd},
                            {"_text", s.text}}) {
        if (va < s.link_base || (s.pointer == 4 && va > 0xffffffffull)) {
            return Error{"unsupported kernel layout: " + std::string(name) + " is linked at " +
                         hex(va) + ", expected an address in the " +
                         (s.pointer == 4 ? "i386" : "x86-64") + " kernel image (from " +
                         hex(s.link_base) + ")"};
        }
    }

    return s;
}


// What linux_banner holds: the banner with its terminating NUL, or only the
// prefix every Linux banner has when the ISF does not carry the text.
std::string banner_pattern(const SymbolTable& symbols) {
    const std::optional<std::string> expected = symbols.banner();
    return expected ? *expected + std::string(1, '\0') : kBannerPrefix;
}

}  // namespace

Expected<bool> verify_location(const SymbolTable& symbols, PhysicalMemory& mem, PagingMode mode,
                               const KernelLocation& loc) {
    auto found = kernel_symbols(symbols);
    if (!found) {
        return Error{found.error()};
    }
    const Symbols& s = *found;
    const std::string pattern = banner_pattern(symbols);
    std::string bytes;
    if (!read_string(mem, loc.banner_paddr, pattern.size(), bytes) || bytes != pattern) {
        return Error{"linux_banner is no longer at physical " + hex(loc.banner_paddr)};
    }
    auto t = translate(mem, mode, loc.pgd_paddr, s.banner + loc.virt_slide);
    if (!t) {
        return Error{"linux_banner is not mapped through " + std::string(s.pgd_name) + ": " +
                     t.error()};
    }
    if (t->paddr != loc.banner_paddr) {
        return Error{"linux_banner (" + hex(s.banner + loc.virt_slide) + ") maps to physical " +
                     hex(t->paddr) + ", not " + hex(loc.banner_paddr)};
    }
    return verify_kernel_data(symbols, mem, mode, s, loc.pgd_paddr, loc.virt_slide);
}

Expected<uint64_t> read_page_offset_base(const SymbolTable& symbols, PhysicalMemory& mem,
                                         uint64_t phys_slide, PagingMode mode) {
    if (symbols.pointer_size().value_or(8) == 4) {
        auto s = kernel_symbols(symbols);
        if (!s) {
            return Error{s.error()};
        }
        return s->link_base;  // i386: PAGE_OFFSET, where the image is linked
    }
    const auto va = symbols.symbol_address("page_offset_base");
    if (!va) {
        return mode == PagingMode::Long5 ? kDefaultPageOffset5 : kDefaultPageOffset4;
    }
    const uint64_t pa = *va - kStartKernelMap + phys_slide;
    uint8_t bytes[8];
    if (!mem.read(pa, bytes, sizeof bytes)) {
        return Error{"page_offset_base (physical " + hex(pa) + ") is not in RAM"};
    }
    uint64_t value = 0;
    for (int i = 7; i >= 0; --i) {
        value = (value << 8) | bytes[i];
    }
    if (!(value >> 63)) {
        return Error{"page_offset_base (physical " + hex(pa) + ") holds " + hex(value) +
                     ", not a kernel address"};
    }
    return value;
}

Expected<KernelLocation> locate_kernel(const SymbolTable& symbols, PhysicalMemory& mem,
                                       uint64_t ram_size, PagingMode mode) {
    const std::string& isf = symbols.origin();
    const auto pointer = symbols.pointer_size().value_or(8);
    if (pointer != 8 && pointer != 4) {
        return Error{"unsupported kernel layout: " + isf + " describes a kernel with " +
                     std::to_string(pointer) + "-byte pointers, expected an x86 kernel"};
    }
    if (mode == PagingMode::None) {
        return Error{"the guest has not turned paging on yet (the kernel is still starting)"};
    }
    if (pointer == 4 && !is_32bit(mode)) {
        // A 32-bit kernel never runs in long mode: this does not change.
        return Error{"unsupported kernel layout: " + isf +
                     " describes a 32-bit (i386) kernel, but the guest runs in 64-bit long mode "
                     "(the table is for another kernel)"};
    }
    if (pointer == 8 && is_32bit(mode)) {
        return Error{"the guest is not in 64-bit long mode (yet): " + isf +
                     " describes an x86-64 kernel (the kernel is still starting, or the guest "
                     "runs a 32-bit kernel and needs its own table)"};
    }
    auto found_symbols = kernel_symbols(symbols);
    if (!found_symbols) {
        return Error{found_symbols.error()};
    }
    const Symbols s = *found_symbols;

    const std::optional<std::string> expected = symbols.banner();
    const std::string pattern = banner_pattern(symbols);
    // linux_banner's physical address without KASLR.
    const uint64_t linked = s.banner - s.link_base;
    // PC machines with more than 2 GiB put part of it from 4 GiB up; the hole
    // below 4 GiB is skipped by failed reads, which cost little.
    const uint64_t limit = ram_size > k2G ? ram_size + k2G : ram_size;

    std::vector<uint64_t> tried;
    std::string foreign;  // another kernel's banner where this one should be
    uint64_t foreign_pa = 0;
    std::string why;
    std::string rejected;  // a slide the tables map but the kernel's data refute
    std::string bytes;
    auto check = [&](uint64_t pa) -> std::optional<KernelLocation> {
        if (!read_string(mem, pa, pattern.size(), bytes)) {
            return std::nullopt;
        }
        if (bytes != pattern) {
            if (expected && foreign.empty() &&
                bytes.compare(0, kBannerPrefix.size(), kBannerPrefix) == 0) {
                std::string more;
                if (!read_string(mem, pa, 256, more)) {
                    more = bytes;
                }
                // A copy of this kernel's banner without its NUL (the log
                // buffer has one) is not another kernel's.
                if (printable(more) != printable(*expected)) {
                    foreign = printable(more);
                    foreign_pa = pa;
                }
            }
            return std::nullopt;
        }
        tried.push_back(pa);
        uint64_t vs = 0;
        std::string reason;
        if (!confirm(symbols, mem, mode, s, pa, vs, reason, rejected)) {
            if (why.empty()) {
                why = reason;
            }
            return std::nullopt;
        }
        KernelLocation loc;
        loc.phys_slide = pa - linked;
        loc.virt_slide = vs;
        loc.pgd_paddr = (s.pgd - s.link_base + loc.phys_slide) & mask(s);
        loc.banner_paddr = pa;
        return loc;
    };

    std::optional<KernelLocation> found;
    // The kernel is loaded 2 MiB aligned: linux_banner keeps its offset
    // within 2 MiB.
    const uint64_t first2m = linked & (k2M - 1);
    for (uint64_t pa = first2m; pa + pattern.size() <= limit && !found; pa += k2M) {
        found = check(pa);
    }
    // Any page-aligned load address.
    const uint64_t first4k = linked & (k4K - 1);
    for (uint64_t pa = first4k; pa + pattern.size() <= limit && !found; pa += k4K) {
        if ((pa & (k2M - 1)) != first2m) {
            found = check(pa);
        }
    }
    if (found) {
        auto pob = read_page_offset_base(symbols, mem, found->phys_slide, mode);
        if (!pob) {
            return Error{pob.error()};
        }
        found->page_offset_base = *pob;
        return *found;
    }

    const std::string wanted =
        expected ? "'" + printable(*expected) + "'"
                 : "a string starting with '" + kBannerPrefix + "'";
    if (!tried.empty()) {
        std::string places;
        if (!rejected.empty()) {
            return Error{"found the kernel banner " + wanted + " at physical " + hex(tried[0]) +
                         " but the kernel's page tables and data do not agree yet (the kernel "
                         "is still setting them up, or the ISF is for another build): " +
                         rejected};
        }
        for (size_t i = 0; i < tried.size() && i < 4; ++i) {
            places += (i ? ", " : "") + hex(tried[i]);
        }
        if (tried.size() > 4) {
            places += ", ...";
        }
        return Error{"found the kernel banner " + wanted + " at physical " + places +
                     " but no virtual slide maps linux_banner (" + hex(s.banner) +
                     ") there through " + s.pgd_name + " (" + why + ")"};
    }
    if (!foreign.empty()) {
        return Error{"kernel banner mismatch: found '" + foreign + "' at physical " +
                     hex(foreign_pa) + " where " + isf + " expects " + wanted +
                     " (the ISF is for another kernel)"};
    }
    return Error{"kernel banner not found in physical memory below " + hex(limit) + ": expected " +
                 wanted + " where linux_banner (linked at " + hex(s.banner) +
                 ") can be loaded, at physical addresses ending in " + hex(first4k)};
}

}  // namespace pyrebox::vmi::linux_guest
