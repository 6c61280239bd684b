/*
 * bt_chain: a known call chain for the backtrace tests.
 *
 * Built by the test on the host as an ordinary dynamic (PIE) program with
 * -rdynamic, so its functions are dynamic symbols (what PyREBox names user
 * addresses by), and copied into the guest (it is not part of the guest
 * image).
 *
 * main calls bt_outer(round) for round 0 and 1; bt_outer -> bt_middle ->
 * bt_leaf, which write(2)s "leaf <round>". The first write(2) of the
 * process is round 0's. Prints sum=<sum of the chain's results>.
 *
 * Before the chain, main reads a byte of its read-only data: that maps the
 * page that also holds this small program's .eh_frame_hdr and .eh_frame
 * (a process's page tables have only the pages it touched, and a
 * backtrace reads unwind tables from the process's memory).
 */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline, noclone)) int bt_leaf(int round)
{
    char line[] = "leaf 0\n";
    line[5] = (char)('0' + round);
    return (int)write(1, line, sizeof line - 1) + round;
}

__attribute__((noinline, noclone)) int bt_middle(int round)
{
    int r = bt_leaf(round);
    __asm__ volatile("" : "+r"(r));
    return r + 1;
}

__attribute__((noinline, noclone)) int bt_outer(int round)
{
    int r = bt_middle(round);
    __asm__ volatile("" : "+r"(r));
    return r * 2;
}

static const char tag[] = "bt_chain";

int main(void)
{
    int sum = *(volatile const char *)tag == 'b' ? 0 : 100;
    for (int round = 0; round < 2; round++)
        sum += bt_outer(round);
    printf("sum=%d\n", sum);
    return 0;
}
