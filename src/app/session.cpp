#include "app/session.h"

namespace pyrebox {

Session& session() {
    // Never destroyed: QEMU runs plugin exit callbacks after static
    // destructors of objects created during plugin install.
    static Session* instance = new Session;
    return *instance;
}

}  // namespace pyrebox
