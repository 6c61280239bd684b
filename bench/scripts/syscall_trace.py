"""Configuration: what `pyrebox trace workload` does (the trace script's
Tracer following the workload from its exec, every call decoded and
formatted as an strace line), with the lines counted, not written."""

from pyrebox import callbacks as cb, trace_script

from bench.scripts.common import report

cm = None
printer = None
lines = []


def initialize_callbacks(module_hdl, p):
    global cm, printer, tracer
    printer = p
    tracer = trace_script.Tracer("workload", lambda text: lines.append(len(text)))
    cm = cb.CallbackManager(module_hdl, new_style=True)
    tracer.register(cm)


def clean():
    tracer.finish()
    report(printer, len(lines))
    cm.clean()
