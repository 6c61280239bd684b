# The two commands of the README, and the steps behind them.
.PHONY: bootstrap demo test test-guests test-vm-image test-dwarf-table unit-test python-test bench bench-vm vm-image fuzz

bootstrap:
	@./tools/bootstrap

# The main job: the default guest boots with the demo script loaded and runs
# the test programs; script and guest output appear side by side.
# GUEST_KERNEL=SPEC boots the guest of another Debian kernel instead (a suite
# such as sid, or a package such as linux-image-6.12.95+deb12-amd64; see
# guest/build.py --guest-kernel), built first if needed.  The kernel module
# that is loaded and removed is the one the guest carries for that
# (on_demand_module in its manifest: crc7 where the kernel has it).
GUEST_KERNEL ?=
demo: bootstrap
	@$(if $(GUEST_KERNEL),.venv/bin/python3 guest/build.py --guest-kernel '$(GUEST_KERNEL)')
	@set -e; module=$$(.venv/bin/python3 -c 'import sys; from pyrebox import paths; \
	    m = paths.guest(sys.argv[1] or None).on_demand_module; print(m["path"], m["name"])' '$(GUEST_KERNEL)'); \
	set -x; ./pyrebox run $(if $(GUEST_KERNEL),--guest-kernel '$(GUEST_KERNEL)') --conf scripts/demo.conf \
	    --cmd 'static_loop 1000' \
	    --cmd 'dyn_libc' \
	    --cmd 'dl_cycle' \
	    --cmd 'fork_exec 3 /usr/local/bin/static_loop 100' \
	    --cmd "insmod $${module% *} && rmmod $${module#* }"

# The guests of the other Debian kernels the tests boot (tests/guest/
# test_guest_kernels.py, tests/guest/kernels), built in build/guests by one
# builder call.
TEST_GUEST_KERNELS = bullseye bookworm-backports sid

# The guests of the other kernels, the own-VM tests' image and the default
# guest kernel's table from DWARF are built side by side (the first two
# mostly wait for Debian's archive).
test: bootstrap
	@$(MAKE) --no-print-directory -j2 test-guests test-vm-image test-dwarf-table
	@$(MAKE) --no-print-directory unit-test python-test

# The default guest kernel's ISF from the DWARF of its debug package, which
# tests/python/test_dwarf_kernel.py compares with the one from its BTF.
test-dwarf-table:
	@.venv/bin/python3 guest/debug_table.py

test-guests:
	@.venv/bin/python3 guest/build.py $(addprefix --guest-kernel ,$(TEST_GUEST_KERNELS))

test-vm-image:
	@.venv/bin/python3 guest/vm_image.py

unit-test:
	build/cmake/pyrebox_unit_tests --gtest_brief=1

# Test files run in parallel, one worker per core (a file's tests share its
# boots, so they stay on one worker).
python-test:
	.venv/bin/python3 -m pytest -q -n auto --dist loadfile tests

# Overhead against plain QEMU on the same workload (docs/performance.md).
bench: bootstrap
	.venv/bin/python3 bench/run.py

# Boot time and get_process_list() on the Debian 12 VM of `make vm-image`
# (docs/performance.md). REPEAT=N runs each measurement N times (default 3).
REPEAT ?= 3
bench-vm: vm-image
	.venv/bin/python3 bench/own_vm.py --repeat $(REPEAT)

# The Debian 12 VM disk image of the own-VM tests (docs/own-vm.md), in
# build/vm; needs root.  `make test` builds it (skipped in a fraction of a
# second while its inputs are unchanged).  REFRESH=1 rebuilds it anyway.
vm-image: bootstrap
	.venv/bin/python3 guest/vm_image.py $(if $(REFRESH),--refresh)

# libFuzzer harnesses under ASan and UBSan (docs/fuzzing.md), in build/fuzz;
# not part of `make test`. Installs clang when missing. Each harness runs
# FUZZ_SECONDS (default 60); FUZZ=<harness> runs one, e.g.
# `make fuzz FUZZ=maple_tree FUZZ_SECONDS=600`.
FUZZ ?=
FUZZ_SECONDS ?= 60
fuzz:
	@FUZZ='$(FUZZ)' FUZZ_SECONDS='$(FUZZ_SECONDS)' tests/fuzz/run.sh
