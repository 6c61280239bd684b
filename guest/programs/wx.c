/*
 * wx: writes machine code into a fresh page and runs it (what unpackers and
 * JITs do). Static, non-PIE, at an address of its own.
 * Prints page=<address of the code page>, then result=42 (the code returns 42).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(void) {
    static const uint8_t code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};  // mov eax, 42; ret
    uint8_t* page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("page=%p\n", (void*)page);
    memcpy(page, code, sizeof code);
    int (*function)(void) = (int (*)(void))page;
    printf("result=%d\n", function());
    return 0;
}
