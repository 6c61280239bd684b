/*
 * libdltest: a shared library that dl_cycle loads with dlopen and unloads
 * with dlclose (installed as /usr/local/lib/libdltest.so).
 */
int dltest_answer(int x);

int dltest_answer(int x)
{
    return x * 2 + 1;
}
