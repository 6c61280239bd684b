"""--file HOST[:GUEST] and the per-run archive (no QEMU)."""

import pytest

from conftest import write
from pyrebox import run


def test_default_guest_path_is_root_home(tmp_path):
    host = write(tmp_path / "prog", "x")
    assert run.parse_file_spec(host).guest == "/root/prog"
    assert run.parse_file_spec(host + ":/opt/p").guest == "/opt/p"
    assert run.parse_file_spec(host + ":rel/p").guest == "/root/rel/p"


def test_missing_host_file(tmp_path):
    with pytest.raises(run.RunError, match="not found"):
        run.parse_file_spec(str(tmp_path / "nope"))


def test_overlay_holds_commands_and_files_with_modes(tmp_path):
    host = write(tmp_path / "tool", "#!/bin/sh\necho hi\n")
    (tmp_path / "tool").chmod(0o755)
    data = run.overlay_archive(["echo a", "tool"], [run.parse_file_spec(host)])
    assert b"pyrebox/commands\x00" in data
    assert b"echo a\ntool\n" in data
    assert b"root/tool\x00" in data
    # newc header of root/tool: mode field is the 3rd field (after magic+ino).
    header = data[:data.index(b"root/tool\x00")].rsplit(b"070701", 1)[1]
    assert int(header[8:16], 16) == 0o100755
    assert data.rstrip(b"\x00").endswith(b"TRAILER!!!")
