#include "core/session.h"

namespace pyrebox {

Session& session() {
    static Session instance;
    return instance;
}

}  // namespace pyrebox
