/*
 * Template of a PyREBox trigger: copy it, set get_type(), write trigger().
 *
 * Attach it from a script:
 *     name = cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, my_function)
 *     cm.add_trigger(name, "triggers/trigger_template")
 * The trigger runs for every event of that callback in every process, before
 * Python; returning 1 delivers the event to my_function, 0 drops it.
 */
#include <stdlib.h>

extern "C" {
#include "qemu_glue.h"
#include "utils.h"
}
#include "callbacks.h"
#include "trigger_helpers.h"

extern "C" {

callback_type_t get_type() { return BLOCK_BEGIN_CB; }

int trigger(callback_handle_t handle, callback_params_t params) {
    (void)handle;
    (void)params;
    return 1;
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
