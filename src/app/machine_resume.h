// What PyREBox re-reads when the VM resumes. QEMU reports every start of the
// VM (after a pause, and after a loadvm, which replaces the whole machine
// state); PyREBox cannot tell the two apart, and re-reading is cheap, so it
// refreshes on every resume:
// - each vCPU's address space from its CR3 (no CONTEXTCHANGE is fired);
// - the process tracker's tables (processes and modules alive now);
// - the monitored set: pgds that no process of the (located) Linux guest has
//   any more are dropped, with a console message naming them.
// Called in QEMU's main loop while the vCPUs are stopped.
#pragma once

namespace pyrebox {

struct Session;

void on_machine_resume(Session& s);

}  // namespace pyrebox
