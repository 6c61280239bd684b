"""Exact introspection of the guest of `pyrebox run --guest-kernel sid`
(checks and boots: kernel_guest.py)."""

from __future__ import annotations

import pytest

from kernel_guest import BOOTS, boot
from kernel_guest import (  # noqa: F401 - the shared tests, run on this kernel
    test_dlopen_and_dlclose_give_the_librarys_events,
    test_fork_exec_and_exit_events_carry_the_printed_pids,
    test_kpti_is_what_the_kernel_says,
    test_libc_extent_and_getpid_match_the_program,
    test_pgds_are_mm_pgd_and_the_running_cr3,
    test_the_built_kernel_is_located_and_nothing_failed,
    test_the_kernel_module_is_sized_as_proc_modules,
    test_the_process_list_is_ps_row_for_row,
    test_the_trace_agrees_with_the_guests_strace,
    test_volatility_agrees,
)

pytestmark = pytest.mark.guest

SPEC = "sid"


@pytest.fixture(scope="module", params=list(BOOTS))
def run(request, tmp_path_factory):
    return boot(SPEC, request.param, tmp_path_factory)
