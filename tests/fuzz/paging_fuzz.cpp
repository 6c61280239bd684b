// Page walks (vmi/paging, base/x86_paging) over hostile page tables.
//
// Input: a header that is also the start of physical memory (the whole
// input is RAM from address 0, see FlatRam):
//   [0]      paging mode (mod 5: None, Legacy32, Pae, Long4, Long5)
//   [1]      bit 0: kpti for normalize_pgd
//   [2..3]   length of each virtual read (mod 0x2001)
//   [8..15]  CR3
//   [16..47] four virtual addresses
//   [48..71] CR0, CR4, EFER for paging_mode()
// Checked besides memory safety: a translation keeps the offset in its page,
// and read_virtual gives the bytes of the per-page translations.
#include <cstdint>
#include <vector>

#include "fuzz_memory.h"
#include "vmi/paging.h"

using pyrebox::fuzz::FlatRam;
using namespace pyrebox::vmi;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FlatRam ram(data, size, 0, /*writable=*/true);
    const auto mode = static_cast<PagingMode>(ram.get(0, 1) % 5);
    const bool kpti = ram.get(1, 1) & 1;
    const size_t len = ram.get(2, 2) % 0x2001;
    const uint64_t cr3 = ram.get(8);

    (void)paging_mode(ram.get(48), ram.get(56), ram.get(64));
    (void)normalize_pgd(cr3, mode, kpti);

    std::vector<uint8_t> buf(len), byte_by_byte(len);
    for (int i = 0; i < 4; ++i) {
        const uint64_t va = ram.get(16 + 8 * i);
        auto t = translate(ram, mode, cr3, va);
        if (t) {
            const uint64_t ps = t->page_size;
            FUZZ_CHECK(ps == 4096 || ps == (2u << 20) || ps == (4u << 20) || ps == (1u << 30));
            FUZZ_CHECK((t->paddr & (ps - 1)) == (va & (ps - 1)));
        }
        auto r = read_virtual(ram, mode, cr3, va, buf.data(), len);
        if (r) {
            FUZZ_CHECK(*r == len);
            // The same bytes, one translation at a time.
            for (size_t j = 0; j < len; ++j) {
                auto tj = translate(ram, mode, cr3, va + j);
                FUZZ_CHECK(tj.ok());
                FUZZ_CHECK(ram.read(tj->paddr, &byte_by_byte[j], 1));
            }
            FUZZ_CHECK(buf == byte_by_byte);
            // Writing them back succeeds and changes nothing.
            auto w = write_virtual(ram, mode, cr3, va, buf.data(), len);
            FUZZ_CHECK(w.ok() && *w == len);
        }
    }
    return 0;
}
