#include "triggers/trigger_library.h"

#include <dlfcn.h>

#include <cstring>

#include "base/callback_types.h"

namespace pyrebox::triggers {

TriggerLibrary::~TriggerLibrary() {
    if (dl != nullptr) {
        dlclose(dl);
    }
}

bool TriggerLibrary::accepts(int type, bool at_address) const {
    auto takes = [this](int t) {
        return accepts_type != nullptr ? accepts_type(t) != 0 : get_type() == t;
    };
    if (takes(type)) {
        return true;
    }
    if (!at_address) {
        return false;
    }
    if (type == static_cast<int>(CallbackType::BlockBegin)) {
        return takes(kOpBlockBeginType);
    }
    if (type == static_cast<int>(CallbackType::InsnBegin)) {
        return takes(kOpInsnBeginType);
    }
    return false;
}

std::string trigger_type_name(int type) {
    if (type == kOpBlockBeginType) {
        return "OP_BLOCK_BEGIN_CB";
    }
    if (type == kOpInsnBeginType) {
        return "OP_INSN_BEGIN_CB";
    }
    const auto known = callback_type_from_int(type);
    return known ? std::string(callback_type_name(*known)) : "unknown type " + std::to_string(type);
}

std::string trigger_name(const std::string& path) {
    std::string name = path.substr(path.find_last_of('/') + 1);
    for (const char* ending : {"-x86_64-softmmu.so", "-i386-softmmu.so", ".so"}) {
        const size_t n = std::strlen(ending);
        if (name.size() > n && name.compare(name.size() - n, n, ending) == 0) {
            name.resize(name.size() - n);
            break;
        }
    }
    return name;
}

Expected<std::shared_ptr<TriggerLibrary>> load_trigger(const std::string& path) {
    auto lib = std::make_shared<TriggerLibrary>();
    lib->path = path;
    lib->name = trigger_name(path);
    lib->dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib->dl == nullptr) {
        const char* why = dlerror();
        return Error{"cannot load trigger " + path + ": " + (why ? why : "unknown error")};
    }
    lib->get_type = reinterpret_cast<int (*)()>(dlsym(lib->dl, "get_type"));
    lib->trigger = dlsym(lib->dl, "trigger");
    lib->clean = reinterpret_cast<void (*)(unsigned)>(dlsym(lib->dl, "clean"));
    lib->accepts_type = reinterpret_cast<int (*)(int)>(dlsym(lib->dl, "accepts_type"));
    lib->vaddr_window = dlsym(lib->dl, "vaddr_window");
    std::string missing;
    if (lib->get_type == nullptr) missing += " get_type";
    if (lib->trigger == nullptr) missing += " trigger";
    if (lib->clean == nullptr) missing += " clean";
    if (!missing.empty()) {
        return Error{"trigger " + path + " does not export (with C linkage):" + missing};
    }
    return lib;
}

}  // namespace pyrebox::triggers
