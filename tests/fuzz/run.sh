#!/usr/bin/env bash
# `make fuzz`: installs clang and libFuzzer when missing (Debian, as root),
# builds the harnesses in build/fuzz (docs/fuzzing.md) and runs each for
# FUZZ_SECONDS seconds, one after another, or only the harness FUZZ names.
# Corpus: build/fuzz/corpus/<harness>, seeded from tests/fuzz/corpus/<harness>;
# crashes, hangs and oversized allocations: build/fuzz/findings/<harness>/;
# each run's output: build/fuzz/logs/<harness>.log. Exits non-zero when a
# harness found something.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

say() { printf 'fuzz: %s\n' "$*"; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 1; }

harnesses=(isf elf_symbols kallsyms maple_tree paging linux_walkers)
# The largest input each harness is given: a JSON symbol file needs room;
# the memory images of the others fit in a few pages.
declare -A max_len=([isf]=65536 [elf_symbols]=16384 [kallsyms]=16384 [maple_tree]=16384
                    [paging]=20480 [linux_walkers]=16384)
seconds=${FUZZ_SECONDS:-60}
selected=(${FUZZ:-${harnesses[*]}})
for h in "${selected[@]}"; do
    [ -n "${max_len[$h]:-}" ] || die "no harness '$h' (there are: ${harnesses[*]})"
done

# --- 1. clang with libFuzzer, and what configuring needs ---------------------
fuzzer_links() {
    command -v clang++ >/dev/null || return 1
    printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' |
        clang++ -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null 2>/dev/null
}
packages=(clang cmake ninja-build pkg-config python3.11-dev pybind11-dev libglib2.0-dev
          liblzma-dev nlohmann-json3-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || ! fuzzer_links; then
    [ "$(id -u)" -eq 0 ] || die "clang with libFuzzer or build packages missing (${missing[*]:-libclang-rt-*-dev}); run as root or install them"
    apt-get update -q
    [ ${#missing[@]} -eq 0 ] || apt-get install -y -q --no-install-recommends "${missing[@]}"
    # libFuzzer (libclang_rt.fuzzer-x86_64.a) is in the runtime package of
    # clang's own version: libclang-rt-14-dev for Debian 12's clang 14.
    version=$(clang --version | sed -n 's/.*clang version \([0-9]*\)\..*/\1/p' | head -1)
    fuzzer_links || apt-get install -y -q --no-install-recommends "libclang-rt-$version-dev"
    fuzzer_links || die "clang++ -fsanitize=fuzzer still does not link"
fi

# --- 2. the build ------------------------------------------------------------
build=build/fuzz
if ! grep -qs '^PYREBOX_FUZZ:BOOL=ON' "$build/CMakeCache.txt"; then
    say "configuring $build"
    CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DPYREBOX_FUZZ=ON -DPYREBOX_TESTS=OFF >/dev/null
fi
ninja -C "$build" pyrebox_fuzz

# --- 3. the runs -------------------------------------------------------------
found=()
for h in "${selected[@]}"; do
    corpus=$build/corpus/$h findings=$build/findings/$h
    mkdir -p "$corpus" "$findings" "$build/logs"
    cp -n tests/fuzz/corpus/"$h"/* "$corpus"/
    dict=()
    [ -f "tests/fuzz/$h.dict" ] && dict=("-dict=tests/fuzz/$h.dict")
    say "$h for ${seconds}s (corpus $corpus, findings $findings)"
    # -timeout: an input that takes more than 2 s is a hang;
    # -malloc_limit_mb: one allocation of more than 256 MiB is a finding (sizes
    # read from the guest must be checked before they are allocated).
    if ! "$build/bin/fuzz_$h" -max_total_time="$seconds" -timeout=2 -rss_limit_mb=2048 \
            -malloc_limit_mb=256 -max_len="${max_len[$h]}" -artifact_prefix="$findings/" \
            -print_final_stats=1 "${dict[@]}" "$corpus" >"$build/logs/$h.log" 2>&1; then
        found+=("$h")
        say "$h: a finding, in $findings (log: $build/logs/$h.log)"
        grep -m3 -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|timeout after|malloc\(' \
            "$build/logs/$h.log" || true
    fi
    grep -E '^#[0-9]+.*(DONE|cov:)' "$build/logs/$h.log" | tail -1 || true
done
if [ ${#found[@]} -gt 0 ]; then
    die "findings in: ${found[*]} (docs/fuzzing.md: each becomes a unit test)"
fi
say "no findings"
