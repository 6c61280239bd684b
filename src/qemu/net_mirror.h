// NIC_SEND / NIC_REC: the frames of the observed NIC, as QEMU's own
// filter-mirror objects copy them to two chardev sockets (one per direction;
// see python/pyrebox/run.py for the command line). Nothing of ours is on the
// network data path: QEMU writes each frame to the socket as the net layer
// passes it (guest -> backend, backend -> guest) and goes on.
#pragma once

#include <string>

namespace pyrebox {
struct Session;
}

namespace pyrebox::qemu {

// Starts the reader thread: it connects to both sockets (QEMU listens on
// them, created a moment after the plugin loads), reads
// filter-mirror's records (a 32-bit big-endian length, then the frame) and
// dispatches one NIC_SEND or NIC_REC event per frame to `session`'s
// registry, in each direction in
// the order QEMU passed them. Frames are read (and dropped) when no callback
// is registered, so QEMU's writes never block. Thread: install, main thread.
void start_net_mirror(Session& session, const std::string& send_socket,
                      const std::string& recv_socket);

// QEMU is exiting: no more events are dispatched.
void stop_net_mirror();

}  // namespace pyrebox::qemu
