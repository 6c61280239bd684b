"""The guests of other Debian kernels (guest/build.py --guest-kernel SPEC; the
Makefile's test target builds these): each boots once with `pyrebox run
--guest-kernel SPEC`, runs the kernel its manifest names, has loaded the boot
modules that are not built in, and inserts and removes its on-demand module."""

from __future__ import annotations

import pytest

from conftest import command_outputs, run_pyrebox
from pyrebox import paths

pytestmark = pytest.mark.guest

# The Makefile's TEST_GUEST_KERNELS.
SPECS = ("bullseye", "bookworm-backports", "sid")


def module_name(guest_path: str) -> str:
    return guest_path.rsplit("/", 1)[-1].removesuffix(".ko").replace("-", "_")


@pytest.fixture(scope="module", params=SPECS)
def boot(request):
    spec = request.param
    try:
        built = paths.guest(spec)
    except paths.SetupError as e:
        pytest.skip(f"{e} (or 'make test', which builds it)")
    module = built.on_demand_module
    name = module["name"]
    result = run_pyrebox(
        "run", "--guest-kernel", spec, "--timeout", "240",
        "--cmd", "uname -r",
        "--cmd", "cat /proc/modules",
        "--cmd", f"insmod {module['path']} && grep -c '^{name} ' /proc/modules && rmmod {name} "
                 f"&& grep -c '^{name} ' /proc/modules",
    )
    return built, result, command_outputs(result.stdout)


def test_runs_to_the_end(boot):
    _, result, outputs = boot
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert sorted(outputs) == [1, 2, 3]
    assert "PYREBOX-GUEST-END" in result.stdout.splitlines()


def test_the_kernel_is_the_one_built(boot):
    built, _, outputs = boot
    with open(f"{built.dir}/kernel-release") as f:
        release = f.read().strip()
    assert release == built.release == built.manifest["kernel_release"]
    assert outputs[1] == ([release], 0)


def test_the_boot_modules_are_loaded_and_nothing_else(boot):
    built, _, outputs = boot
    lines, rc = outputs[2]
    assert rc == 0
    loaded = sorted(line.split()[0] for line in lines if line.strip())
    wanted = sorted(module_name(path) for path in built.manifest["kernel_modules"])
    assert loaded == wanted
    assert "e1000" in loaded and "virtio_net" in loaded
    # A module the kernel has built in is not loaded (and not in /proc/modules).
    assert not set(built.manifest["kernel_modules_builtin"]) & set(loaded)


def test_the_on_demand_module_inserts_and_removes(boot):
    built, _, outputs = boot
    # grep -c: one line while inserted; none (grep's status 1) once removed.
    assert outputs[3] == (["1", "0"], 1)
    assert built.on_demand_module["path"].startswith(f"/lib/modules/{built.release}/")
