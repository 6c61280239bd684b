// A value or an error message: how the core reports failures.
//
// Errors are values in the core; they become Python exceptions or console
// messages at the boundary that reports them, never C++ exceptions crossing
// into QEMU frames.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace pyrebox {

struct Error {
    std::string message;
};

template <typename T>
class Expected {
public:
    Expected(T value) : v_(std::move(value)) {}
    Expected(Error error) : v_(std::move(error)) {}

    bool ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<T>(v_); }
    const T& value() const { return std::get<T>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const std::string& error() const { return std::get<Error>(v_).message; }

private:
    std::variant<T, Error> v_;
};

}  // namespace pyrebox
