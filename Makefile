# The two commands of the README, and the steps behind them.
.PHONY: bootstrap demo test unit-test python-test bench

bootstrap:
	@./tools/bootstrap

# The main job: the default guest boots with the demo script loaded and runs
# the test programs; script and guest output appear side by side.
demo: bootstrap
	./pyrebox run --conf scripts/demo.conf \
	    --cmd 'static_loop 1000' \
	    --cmd 'dyn_libc' \
	    --cmd 'dl_cycle' \
	    --cmd 'fork_exec 3 /usr/local/bin/static_loop 100' \
	    --cmd 'insmod /lib/modules/$$(uname -r)/kernel/lib/crc7.ko && rmmod crc7'

test: bootstrap
	@$(MAKE) --no-print-directory unit-test python-test

unit-test:
	build/cmake/pyrebox_unit_tests --gtest_brief=1

# Test files run in parallel, one worker per core (a file's tests share its
# boots, so they stay on one worker).
python-test:
	.venv/bin/python3 -m pytest -q -n auto --dist loadfile tests

# Overhead against plain QEMU on the same workload (docs/performance.md).
bench: bootstrap
	.venv/bin/python3 bench/run.py
