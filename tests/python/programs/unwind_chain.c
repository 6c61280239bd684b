/*
 * unwind_chain: main -> chain_outer -> chain_middle -> chain_leaf; the leaf
 * captures its own registers (pc, sp and the callee-saved ones) and the
 * stack from sp to the top, and prints them, so a test can unwind a real
 * stack, with the real .eh_frame of this static, non-PIE binary, offline.
 *
 * Output: one "name=0xhex" line per register (pc sp rbx rbp r12 r13 r14
 * r15), then "stack=" and the stack's bytes in hex.
 */
#include <stdio.h>
#include <string.h>

extern void *__libc_stack_end;
static unsigned char copy[64 * 1024];

__attribute__((noinline, noclone)) int chain_leaf(int x)
{
    unsigned long pc, sp, rbx, rbp, r12, r13, r14, r15;
    __asm__ volatile("lea 0(%%rip), %%rax\n\tmov %%rax, %0\n\tmov %%rsp, %1\n\tmov %%rbx, %2\n\tmov %%rbp, %3\n\t"
                     "mov %%r12, %4\n\tmov %%r13, %5\n\tmov %%r14, %6\n\tmov %%r15, %7"
                     : "=m"(pc), "=m"(sp), "=m"(rbx), "=m"(rbp), "=m"(r12), "=m"(r13),
                       "=m"(r14), "=m"(r15) : : "rax");
    unsigned long size = (unsigned long)__libc_stack_end + 256 - sp;
    if (size > sizeof copy)
        size = sizeof copy;
    memcpy(copy, (void *)sp, size);
    printf("pc=%#lx\nsp=%#lx\nrbx=%#lx\nrbp=%#lx\nr12=%#lx\nr13=%#lx\nr14=%#lx\nr15=%#lx\n",
           pc, sp, rbx, rbp, r12, r13, r14, r15);
    printf("stack=");
    for (unsigned long i = 0; i < size; i++)
        printf("%02x", copy[i]);
    printf("\n");
    return x + 1;
}

__attribute__((noinline, noclone)) int chain_middle(int x)
{
    int r = chain_leaf(x * 3);
    __asm__ volatile("" : "+r"(r));
    return r + 1;
}

__attribute__((noinline, noclone)) int chain_outer(int x)
{
    int r = chain_middle(x + 5);
    __asm__ volatile("" : "+r"(r));
    return r * 2;
}

int main(int argc, char **argv)
{
    (void)argv;
    return chain_outer(argc) == 0;
}
