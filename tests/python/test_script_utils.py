"""PyREBox's `utils` helpers beyond printing (pyrebox.script_utils)."""

from __future__ import annotations

import pytest

import utils
from pyrebox import machine, script_utils

PROCESSES = [
    {"pid": 1, "pgd": 0x1a2000, "name": "init"},
    {"pid": 0x42, "pgd": 0x5b000, "name": "probe"},
    {"pid": 77, "pgd": 0x42, "name": "sh"},
    {"pid": 78, "pgd": 0x7c000, "name": "probe_helper"},
]


@pytest.fixture
def processes(monkeypatch):
    monkeypatch.setattr(machine, "get_process_list", lambda: [dict(p) for p in PROCESSES])


def test_find_procs_by_hex_number_matches_pid_or_pgd(processes):
    # "42" is hex: pid 0x42 and the process whose pgd is 0x42.
    assert utils.find_procs("42") == [(0x42, 0x5b000, "probe"), (77, 0x42, "sh")]
    assert utils.find_procs("5b000") == [(0x42, 0x5b000, "probe")]


def test_find_procs_by_name_is_a_wildcard_or_a_substring(processes):
    assert utils.find_procs("probe") == [(0x42, 0x5b000, "probe"), (78, 0x7c000, "probe_helper")]
    assert utils.find_procs("*_helper") == [(78, 0x7c000, "probe_helper")]
    assert utils.find_procs("nothing") == []


def test_printing_is_printf_style_and_plain_text_stays_as_it_is(capsys):
    utils.pp_print("%d processes, %s\n", 3, "ok")
    utils.pp_warning("100% plain")
    utils.pp_error("%s failed", "copy")
    assert capsys.readouterr().err.splitlines() == [
        "[pyrebox] 3 processes, ok", "[pyrebox] warning: 100% plain",
        "[pyrebox] error: copy failed"]


def test_configuration_manager_holds_the_runs_settings():
    script_utils.configure({"MODULES": {"scripts.Demo": "True"}, "VOL": {"profile": "LinuxX"},
                            "AGENT": {"name": "agent.exe"}}, "x86_64")
    cm = utils.ConfigurationManager
    assert cm.platform == "x86_64-softmmu"
    assert cm.vol_profile == "LinuxX" and cm.agent_filename == "agent.exe"
    assert cm.config.get("MODULES", "scripts.Demo") == "True"
    assert (cm.agent_buffer_offset, cm.agent_buffer_size, cm.addr_space) == (None, None, None)
    script_utils.configure({}, "i386")
    assert cm.platform == "i386-softmmu" and cm.vol_profile is None and cm.config.sections() == []


def test_get_addr_space_says_volatility_2_does_not_apply():
    with pytest.raises(NotImplementedError) as e:
        utils.get_addr_space(0x1000)
    assert str(e.value).startswith("utils.get_addr_space() returns a Volatility 2 address "
                                   "space, which this PyREBox does not have")
