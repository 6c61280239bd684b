/* The own-VM tests' host-compiled program (static, copied in with --file):
 * prints its arguments, its pid and a line on stderr, and exits with the
 * status given as its first argument. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++)
        printf("arg%d=%s\n", i, argv[i]);
    printf("pid=%d\n", (int)getpid());
    fflush(stdout);
    fprintf(stderr, "stderr=report\n");
    return argc > 1 ? atoi(argv[1]) : 0;
}
