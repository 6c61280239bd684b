/*
 * Types for the DWARF reader's tests (test_dwarf_types.py): compiled with
 * -g, its DWARF is read; run, it prints the compiler's own facts about the
 * same types (sizes, offsetof, where each bitfield's bits are), one
 * "key=value" per line.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef unsigned long long u64;
typedef struct { u64 value; } wrapped_t;

enum colour { RED = -1, GREEN = 2, BLUE = 0x7fffffff };

struct list { struct list* next; struct list* prev; };

struct opaque;  /* declared, never defined */

struct sample {
    char tag;
    int count;
    u64 big;
    struct list link;
    const volatile int* qualified;
    unsigned int low : 3;
    unsigned int mid : 9;
    signed int high : 20;
    enum colour colour;
    union {
        int as_int;
        float as_float;
    };
    struct {
        short x;
        short y;
    } point;
    wrapped_t wrapped[4];
    int matrix[2][3];
    int (*callback)(int, char*);
    struct opaque* hidden;
    char tail[];
};

struct sample global_sample;
wrapped_t global_table[7];

/* Prints where the bits of a bitfield are: its first bit's position from
 * the start of the struct, found by setting all its bits in a zeroed one. */
#define BITS(name)                                                            \
    do {                                                                      \
        struct sample s;                                                      \
        memset(&s, 0, sizeof s);                                              \
        s.name = -1;                                                          \
        const unsigned char* b = (const unsigned char*)&s;                    \
        for (size_t i = 0; i < 8 * sizeof s; i++)                             \
            if (b[i / 8] & (1u << (i % 8))) {                                 \
                printf("bit_" #name "=%zu\n", i);                             \
                break;                                                        \
            }                                                                 \
    } while (0)

#define OFFSET(name) printf("offset_" #name "=%zu\n", offsetof(struct sample, name))

int main(void) {
    printf("sizeof_sample=%zu\n", sizeof(struct sample));
    printf("sizeof_enum=%zu\n", sizeof(enum colour));
    OFFSET(tag); OFFSET(count); OFFSET(big); OFFSET(link); OFFSET(qualified);
    OFFSET(colour); OFFSET(as_int); OFFSET(point); OFFSET(wrapped); OFFSET(matrix);
    OFFSET(callback); OFFSET(hidden); OFFSET(tail);
    BITS(low); BITS(mid); BITS(high);
    return global_sample.count + (int)global_table[0].value;
}
