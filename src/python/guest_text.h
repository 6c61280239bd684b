// Text from the guest, to and from Python.
//
// Names in a Linux guest are bytes (a process's comm, file names, symbol
// names): any byte but NUL and '/', UTF-8 or not. Python gets them as str
// decoded with surrogateescape (as os.fsdecode does), so every name
// converts and round-trips: a str from Python is encoded back the same way
// (os.fsencode's bytes) before it is compared with guest names.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

namespace pyrebox::python {

// `bytes` as a str (bytes that are not UTF-8 become lone surrogates).
pybind11::str guest_str(const std::string& bytes);

// The guest bytes a str names (the inverse of guest_str; bytes are taken as
// they are).
std::string guest_bytes(const pybind11::handle& text);

}  // namespace pyrebox::python
