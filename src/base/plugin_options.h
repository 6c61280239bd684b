// Options given to the plugin on QEMU's command line:
//   -plugin libpyrebox.so,conf=FILE,venv=DIR,pythonpath=DIR,out=FD,isf=FILE,ram=BYTES,
//           console=SOCKET,console_qmp=SOCKET,qmp=SOCKET,nic_send=SOCKET,nic_recv=SOCKET
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.h"

namespace pyrebox {

struct PluginOptions {
    std::string conf;        // pyrebox.conf; empty: ./pyrebox.conf when it exists
    std::string venv;        // the virtual environment whose site-packages scripts use
    std::string pythonpath;  // folder holding the `pyrebox` package and compat modules
    int out_fd = 2;          // where PyREBox and scripts print
    std::string isf;         // the guest kernel's symbol table (ISF); empty: none
    // The guest's RAM size in bytes (where the kernel is looked for); 0:
    // unknown. A number of bytes, or with a K, M, G or T suffix (binary).
    uint64_t ram_bytes = 0;
    // The PyREBox console's Unix socket (created by the plugin); empty: no
    // console server.
    std::string console;
    // A QMP socket of the same QEMU the console passes monitor commands and
    // stop/cont through; empty: the console has no QEMU monitor.
    std::string console_qmp;
    // A QMP server socket of this QEMU for scripts (api.send_key,
    // screenshot, save_vm...); empty: none.
    std::string qmp;
    // Unix sockets of QEMU chardevs that filter-mirror objects copy the
    // observed NIC's frames to: sent by the guest, received by the guest.
    std::string nic_send;
    std::string nic_recv;
};

// Parses "key=value" arguments. Defaults for venv and pythonpath come from
// `source_dir` (the checkout the plugin was built from). An unknown key, a
// missing '=' or a bad fd is an error naming the argument and the valid keys.
Expected<PluginOptions> parse_plugin_options(const std::vector<std::string>& args,
                                             const std::string& source_dir);

}  // namespace pyrebox
