"""pyrebox.return_frames: which return belongs to which call (no QEMU)."""

from __future__ import annotations

import pytest

from pyrebox.return_frames import KERNEL, LimitReached, PendingReturns, thread_key

PGD = 0x1234000
W = 8  # x86-64 word
MAIN_SITE = 0x401005  # the return address of main's call
REC_SITE = 0x401105   # the return address of the recursive call inside f
T1, T2 = ("tls", 0x7F0000001000), ("tls", 0x7F0000201000)


def arrange(table, slot, site, event, thread=T1, space=PGD):
    """An entry with stack pointer `slot`; the payload names it."""
    return table.arrange(space, thread, site, slot, W, event, payload=(site, slot))


def names(calls):
    return [c.payload for c in calls]


def test_a_call_returns_once_at_its_address_with_the_stack_one_word_up():
    table = PendingReturns()
    out = arrange(table, 0x7FF000, MAIN_SITE, event=1)
    assert out.new_sites == [(PGD, MAIN_SITE)] and out.empty_sites == []
    assert len(table) == 1 and table.pending()[0].sp == 0x7FF008
    # Same address, another thread's stack pointer: not this call.
    out = table.returned(PGD, T2, MAIN_SITE, 0x7F0000200F08)
    assert out.fired == [] and out.dropped == []
    out = table.returned(PGD, T1, MAIN_SITE, 0x7FF008)
    assert names(out.fired) == [(MAIN_SITE, 0x7FF000)]
    assert out.empty_sites == [(PGD, MAIN_SITE)]
    assert len(table) == 0 and table.fired == 1
    # It fired once: the same return again fires nothing.
    assert table.returned(PGD, T1, MAIN_SITE, 0x7FF008).fired == []


def test_other_address_space_does_not_fire_it():
    table = PendingReturns()
    arrange(table, 0x7FF000, MAIN_SITE, event=1)
    assert table.returned(PGD + 0x1000, T1, MAIN_SITE, 0x7FF008).fired == []
    assert table.returned(KERNEL, T1, MAIN_SITE, 0x7FF008).fired == []
    assert len(table) == 1


def test_recursion_returns_innermost_first_each_to_its_own_call():
    table = PendingReturns()
    assert arrange(table, 0x7FF000, MAIN_SITE, 1).new_sites == [(PGD, MAIN_SITE)]
    assert arrange(table, 0x7FEFC0, REC_SITE, 2).new_sites == [(PGD, REC_SITE)]
    assert arrange(table, 0x7FEF80, REC_SITE, 3).new_sites == []  # shared site
    assert len(table) == 3
    # The innermost returns to the recursive call site with its own sp; the
    # outer calls at the same address stay.
    out = table.returned(PGD, T1, REC_SITE, 0x7FEF88)
    assert names(out.fired) == [(REC_SITE, 0x7FEF80)] and out.dropped == []
    assert out.empty_sites == []
    out = table.returned(PGD, T1, REC_SITE, 0x7FEFC8)
    assert names(out.fired) == [(REC_SITE, 0x7FEFC0)] and out.empty_sites == [(PGD, REC_SITE)]
    out = table.returned(PGD, T1, MAIN_SITE, 0x7FF008)
    assert names(out.fired) == [(MAIN_SITE, 0x7FF000)] and len(table) == 0
    assert (table.fired, table.dropped) == (3, 0)


def test_two_threads_at_the_same_address_each_get_their_own_return():
    table = PendingReturns()
    arrange(table, 0x7F0000000F00, MAIN_SITE, 1, thread=T1)
    arrange(table, 0x7F0000200F00, MAIN_SITE, 2, thread=T2)
    # Thread 2 returns first; its stack is above thread 1's call, which is
    # not thread 2's to unwind.
    out = table.returned(PGD, T2, MAIN_SITE, 0x7F0000200F08)
    assert names(out.fired) == [(MAIN_SITE, 0x7F0000200F00)] and out.dropped == []
    # Thread 2 enters again far above thread 1's call: thread 1's stays.
    out = arrange(table, 0x7F0000200F00, MAIN_SITE, 3, thread=T2)
    assert out.dropped == []
    out = table.returned(PGD, T1, MAIN_SITE, 0x7F0000000F08)
    assert names(out.fired) == [(MAIN_SITE, 0x7F0000000F00)]
    assert len(table) == 1 and table.dropped == 0


def test_a_longjmp_past_calls_drops_them_at_the_next_entry_and_they_never_fire():
    table = PendingReturns()
    # main -> dive -> dive -> dive, then longjmp back into main.
    arrange(table, 0x7FF000, MAIN_SITE, 1)
    arrange(table, 0x7FEFC0, REC_SITE, 2)
    arrange(table, 0x7FEF80, REC_SITE, 3)
    # main calls dive again from the same call site at the same depth: the
    # same slot, another callback execution. The three are dead.
    out = arrange(table, 0x7FF000, MAIN_SITE, 4)
    assert names(out.dropped) == [(REC_SITE, 0x7FEF80), (REC_SITE, 0x7FEFC0),
                                  (MAIN_SITE, 0x7FF000)]
    assert out.empty_sites == [(PGD, REC_SITE)]
    assert out.new_sites == []  # MAIN_SITE lost its call and gained the new one
    assert len(table) == 1 and table.dropped == 3
    # The new call's return fires once; the old one at the same place does not.
    out = table.returned(PGD, T1, MAIN_SITE, 0x7FF008)
    assert len(out.fired) == 1 and out.fired[0].event == 4
    # A stale inner return address reached later fires nothing.
    assert table.returned(PGD, T1, REC_SITE, 0x7FEF88).fired == []


def test_reaching_an_outer_return_drops_the_inner_calls_unwound_past():
    table = PendingReturns()
    arrange(table, 0x7FF000, MAIN_SITE, 1)
    arrange(table, 0x7FEFC0, REC_SITE, 2)
    arrange(table, 0x7FEF80, 0x401205, 3)
    # An exception unwinds to the outer call's frame, which then returns.
    out = table.returned(PGD, T1, MAIN_SITE, 0x7FF008)
    assert names(out.fired) == [(MAIN_SITE, 0x7FF000)]
    assert names(out.dropped) == [(0x401205, 0x7FEF80), (REC_SITE, 0x7FEFC0)]
    assert sorted(out.empty_sites) == sorted([(PGD, MAIN_SITE), (PGD, REC_SITE),
                                              (PGD, 0x401205)])
    assert len(table) == 0


def test_a_pending_return_address_reached_above_a_call_drops_it():
    table = PendingReturns()
    arrange(table, 0x7FEF80, REC_SITE, 1)
    # The thread reaches the same return address with a shallower stack
    # (an outer activation's return, no call pending for it).
    out = table.returned(PGD, T1, REC_SITE, 0x7FEFC8)
    assert out.fired == [] and names(out.dropped) == [(REC_SITE, 0x7FEF80)]
    assert out.empty_sites == [(PGD, REC_SITE)]


def test_a_return_at_the_same_depth_to_another_address_drops_the_call():
    table = PendingReturns()
    arrange(table, 0x7FF000, MAIN_SITE, 1)
    arrange(table, 0x7FE000, REC_SITE, 2)
    arrange(table, 0x7FD000, 0x401300, 3)
    # The thread reaches the third call's return address with the first
    # call's stack pointer: the first call's slot was popped holding another
    # return address, so all three are gone.
    out = table.returned(PGD, T1, 0x401300, 0x7FF008)
    assert out.fired == []
    assert names(out.dropped) == [(0x401300, 0x7FD000), (REC_SITE, 0x7FE000),
                                  (MAIN_SITE, 0x7FF000)]


def test_arrangements_of_one_callback_execution_are_the_same_call():
    table = PendingReturns()
    arrange(table, 0x7FF000, MAIN_SITE, 7)
    out = arrange(table, 0x7FF000, MAIN_SITE, 7)
    assert out.dropped == [] and out.new_sites == [] and len(table) == 2
    out = table.returned(PGD, T1, MAIN_SITE, 0x7FF008)
    assert len(out.fired) == 2


def test_the_number_of_pending_returns_is_capped():
    table = PendingReturns(limit=3)
    for i in range(3):
        arrange(table, 0x7FF000 - 0x40 * i, REC_SITE, i)
    with pytest.raises(LimitReached, match="3 function returns are pending already"):
        arrange(table, 0x7FEF00, REC_SITE, 9)
    assert len(table) == 3  # refused: nothing changed
    # An arrangement that unwinds calls first makes room for itself.
    out = arrange(table, 0x7FF000, REC_SITE, 10)
    assert len(out.dropped) == 3 and len(table) == 1
    with pytest.raises(ValueError, match="limit must be a positive int"):
        PendingReturns(limit=0)


def test_clear_and_discard_drop_without_firing():
    table = PendingReturns()
    out = arrange(table, 0x7FF000, MAIN_SITE, 1)
    other = arrange(table, 0x7FE000, REC_SITE, 2, thread=T2)
    assert table.discard(other.arranged).empty_sites == [(PGD, REC_SITE)]
    out = table.clear()
    assert names(out.dropped) == [(MAIN_SITE, 0x7FF000)]
    assert out.empty_sites == [(PGD, MAIN_SITE)] and len(table) == 0
    assert (table.fired, table.dropped) == (0, 2)


def test_kernel_calls_are_one_space_and_a_kernel_thread_is_its_stack():
    # 16 KiB x86-64 kernel stacks: two slots of one stack are one thread.
    assert thread_key(True, 0xFFFFC90000013F00, 0, True) == \
        thread_key(True, 0xFFFFC90000010008, 0x1234, True)
    assert thread_key(True, 0xFFFFC90000014000, 0, True) != \
        thread_key(True, 0xFFFFC90000013FF8, 0, True)
    assert thread_key(True, 0xC1002000, 0, False) != thread_key(True, 0xC1001FFC, 0, False)
    # A user thread is its TLS pointer, wherever its stack is.
    assert thread_key(False, 0x7FF000, 0xABC000, True) == \
        thread_key(False, 0x100000, 0xABC000, True) == ("tls", 0xABC000)
    table = PendingReturns()
    stack = thread_key(True, 0xFFFFC90000013F00, 0)
    table.arrange(KERNEL, stack, 0xFFFFFFFF81000105, 0xFFFFC90000013F00, W, 1)
    out = table.returned(KERNEL, stack, 0xFFFFFFFF81000105, 0xFFFFC90000013F08)
    assert len(out.fired) == 1
