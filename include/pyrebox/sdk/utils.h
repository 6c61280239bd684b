/* PyREBox trigger SDK: printing on the PyREBox console (one line per call). */
#ifndef PYREBOX_SDK_UTILS_H
#define PYREBOX_SDK_UTILS_H

#ifdef __cplusplus
extern "C" {
#endif

void utils_print(const char* format, ...) __attribute__((format(printf, 1, 2)));
void utils_print_error(const char* format, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
