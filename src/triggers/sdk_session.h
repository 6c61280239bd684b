// The session the trigger SDK's C functions (sdk_exports.cpp) work on.
// Triggers call those functions with no context of PyREBox's, so the SDK
// holds the one process-wide pointer to it: set once, by the plugin entry at
// install, before any trigger can be loaded.
#pragma once

namespace pyrebox {
struct Session;
}

namespace pyrebox::triggers {

void set_sdk_session(Session& session);

}  // namespace pyrebox::triggers
