#include "qemu/net_mirror.h"

#include "qemu/contained.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "base/console.h"
#include "app/session.h"

namespace pyrebox::qemu {

namespace {

// The session frames are delivered to (set by start_net_mirror).
Session* g_session = nullptr;
Session& session() { return *g_session; }

std::atomic<bool> g_stopping{false};

// Largest frame accepted (jumbo frames included); a longer length means the
// stream is out of step, which ends the reading of that direction.
constexpr uint32_t kMaxFrame = 65536 + 64;

int connect_unix(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// One direction: a socket and the record being assembled from it.
struct Stream {
    CallbackType type = CallbackType::NicSend;
    std::string path;
    int fd = -1;
    std::vector<uint8_t> pending;  // bytes read and not yet a whole record

    // Consumes whole records from `pending`; false when the stream is broken.
    bool dispatch_records() {
        size_t offset = 0;
        while (pending.size() - offset >= 4) {
            uint32_t be_len;
            std::memcpy(&be_len, pending.data() + offset, 4);
            const uint32_t len = ntohl(be_len);
            if (len > kMaxFrame) {
                return false;
            }
            if (pending.size() - offset - 4 < len) {
                break;
            }
            if (!g_stopping.load()) {
                Event e;
                e.type = type;
                e.buffer = pending.data() + offset + 4;
                e.size = len;
                session().registry.dispatch(e, /*monitored=*/true);
            }
            offset += 4 + len;
        }
        pending.erase(pending.begin(), pending.begin() + static_cast<long>(offset));
        return true;
    }
};

void reader(Stream streams[2]) {
    using namespace std::chrono_literals;
    // QEMU creates the listening sockets after loading the plugin.
    for (int attempt = 0; streams[0].fd < 0 || streams[1].fd < 0; ++attempt) {
        for (int i = 0; i < 2; ++i) {
            if (streams[i].fd < 0) {
                streams[i].fd = connect_unix(streams[i].path);
            }
        }
        if (g_stopping.load()) {
            return;
        }
        if (attempt == 600) {  // 30 s
            console().error("NIC callbacks are off: cannot connect to the NIC mirror sockets " +
                            streams[0].path + " and " + streams[1].path);
            return;
        }
        if (streams[0].fd < 0 || streams[1].fd < 0) {
            std::this_thread::sleep_for(50ms);
        }
    }
    std::vector<uint8_t> chunk(256 * 1024);
    int open_streams = 2;
    while (open_streams > 0) {
        pollfd fds[2] = {{streams[0].fd, POLLIN, 0}, {streams[1].fd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                continue;
            }
            const ssize_t n = read(streams[i].fd, chunk.data(), chunk.size());
            if (n > 0) {
                auto& p = streams[i].pending;
                p.insert(p.end(), chunk.begin(), chunk.begin() + n);
                if (streams[i].dispatch_records()) {
                    continue;
                }
                console().error("NIC mirror stream " + streams[i].path +
                                " is out of step; its frames are no longer reported");
            } else if (n < 0 && errno == EINTR) {
                continue;
            }
            close(streams[i].fd);
            streams[i].fd = -1;
            --open_streams;
        }
    }
}

}  // namespace

void start_net_mirror(Session& s, const std::string& send_socket,
                      const std::string& recv_socket) {
    g_session = &s;
    session().nic_observed = true;
    // Lives as long as the process: the thread may outlive QEMU's exit callbacks.
    auto* streams = new Stream[2];
    streams[0].type = CallbackType::NicSend;
    streams[0].path = send_socket;
    streams[1].type = CallbackType::NicRec;
    streams[1].path = recv_socket;
    std::thread([streams] { contained("the NIC mirror's reader", [&] { reader(streams); }); })
        .detach();
}

void stop_net_mirror() { g_stopping.store(true); }

}  // namespace pyrebox::qemu
