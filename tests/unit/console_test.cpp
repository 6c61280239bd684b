#include "base/console.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace {

std::string drain(int fd) {
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::string written(void (*fn)(pyrebox::Console&)) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    {
        pyrebox::Console console(fds[1]);
        fn(console);
    }
    ::close(fds[1]);
    std::string out = drain(fds[0]);
    ::close(fds[0]);
    return out;
}

TEST(Console, PrefixesEveryLine) {
    EXPECT_EQ(written([](pyrebox::Console& c) { c.write_lines("[x] ", "a\nb\n"); }),
              "[x] a\n[x] b\n");
}

TEST(Console, AddsMissingNewline) {
    EXPECT_EQ(written([](pyrebox::Console& c) { c.write_lines("> ", "one"); }), "> one\n");
}

TEST(Console, KeepsEmptyLinesInside) {
    EXPECT_EQ(written([](pyrebox::Console& c) { c.write_lines("> ", "a\n\nb"); }),
              "> a\n> \n> b\n");
}

TEST(Console, MessageAndErrorPrefixes) {
    EXPECT_EQ(written([](pyrebox::Console& c) {
                  c.message("up");
                  c.error("bad");
              }),
              "[pyrebox] up\n[pyrebox] error: bad\n");
}

}  // namespace
