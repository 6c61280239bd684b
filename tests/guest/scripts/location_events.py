"""Records the CREATEPROC events of a boot and prints them in one RESULT
line at the end (the kernel-location test checks that they arrive)."""

import json

from api import CallbackManager

cm = None
created = []


def on_create(params):
    created.append({"pid": params["pid"], "name": params["name"]})


def initialize_callbacks(module_hdl, printer):
    global cm
    cm = CallbackManager(module_hdl, new_style=True)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="on_create")


def clean():
    print("RESULT " + json.dumps({"created": created}))
    cm.clean()
