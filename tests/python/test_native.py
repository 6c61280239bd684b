"""pyrebox.native: the package's one way into _pyrebox."""

from __future__ import annotations

import pytest

from fake_pyrebox import FakePyrebox
from pyrebox import native, output


def test_outside_qemu_a_call_says_why(capsys):
    native.install(None)
    assert not native.available()
    with pytest.raises(native.NotAvailable) as e:
        native.pyrebox.num_cpus()
    assert str(e.value) == ("_pyrebox.num_cpus: PyREBox's native module exists only inside "
                            "QEMU (the plugin embeds it)")
    output.warning("two\nlines")  # without it, the console is stderr
    assert capsys.readouterr().err == "[pyrebox] warning: two\n[pyrebox] warning: lines\n"


def test_an_installed_module_is_used_and_replaced():
    first, second = FakePyrebox(cpus=2), FakePyrebox(cpus=3)
    try:
        native.install(first)
        assert native.available() and native.pyrebox.num_cpus() == 2
        output.message("hello")
        assert first.lines() == ["[pyrebox] hello"]
        native.install(second)  # what the proxy remembered is forgotten
        assert native.pyrebox.num_cpus() == 3
    finally:
        native.install(None)
    assert not native.available()
