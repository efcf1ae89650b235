#!/usr/bin/env bash
# The extension and llama.cpp under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   scripts/sanitize.sh [--build | --test] [TEST_FILE_OR_PYTEST_ARG ...]
#
# --build builds only, --test runs the tests on the last build; neither: both.
# Test files (or pytest node ids) as arguments replace the default selection
# (SANITIZE_TESTS below).
#
# The build: `pip install --target` of this checkout into $SANITIZE_DIR/site
# (default build/asan/site), compiled with -fsanitize=address,undefined
# -fno-omit-frame-pointer -O1 -g1 in a build directory of its own
# ($SANITIZE_DIR/build), every native library of the package included
# (libllama, libggml*, the CPU plugin, the common helpers, _core), unstripped.
# The project's own install (editable or not) is not touched.
#
# The build holds a copy of the package's Python files: --test refuses to
# run when they are not the checkout's.
#
# The tests: one pytest process per test file (an ASan report ends its
# process; the other files still run), with libasan preloaded into the
# interpreter (which is not instrumented), PYTHONMALLOC=malloc (so ASan sees
# each Python object's buffer, not pymalloc's arenas), $SANITIZE_DIR/site
# first on PYTHONPATH, and a sitecustomize.py that drops an editable
# install's import hook, which would otherwise hand every `import
# llamanative` (subprocesses' too) to the uninstrumented build. ASan's
# reports go to $SANITIZE_DIR/reports/asan.<pid>, UBSan's and pytest's output
# to $SANITIZE_DIR/reports/pytest-<file>.log; the script prints a summary and
# fails on any report or test failure. Before the tests, a deliberate heap
# overflow must be reported, or the script fails.
#
# docs/design/sanitizers.md: what it checks, the last clean run, the reports
# found and what was done about each.
#
# scripts/sanitize.supp holds the suppressions (each justified there); leak
# detection is off (see ASAN_OPTIONS below).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
dir="${SANITIZE_DIR:-build/asan}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
python="${PYTHON:-python}"
cc="${CC:-gcc}"

build=1
test=1
case "${1:-}" in
--build) test=0; shift ;;
--test) build=0; shift ;;
esac

# The native core, the layers that drive it, and the misuse tests: what
# reaches native code. (The ai, store, CLI and docs tests add Python only.)
SANITIZE_TESTS=(
    tests/test_model.py tests/test_vocab.py tests/test_context.py tests/test_sampler.py
    tests/test_hardening_core.py tests/test_bad_input.py tests/test_chat_bridge.py
    tests/test_embeddings.py tests/test_embed_packed.py tests/test_backends.py tests/test_threads.py
    tests/test_engine.py tests/test_worker_failure.py tests/test_structured_output.py
    tests/test_state_checks.py tests/test_fuzz_regressions.py tests/test_images.py tests/test_audio.py
    tests/test_rpc.py
)
if [ $# -gt 0 ]; then SANITIZE_TESTS=("$@"); fi
# Left out: the comparisons of greedy text with llama.cpp's own completion
# and llama-mtmd-cli tools, which are built without sanitizers at -O3: the
# -O1 build rounds differently (no vectorization), and a near-tie of Gemma 3
# (and of the audio test pair) flips. They test numerics, not memory.
deselect="not greedy_matches_llama_cpp_completion_tool and not greedy_output_equals_llama_mtmd_cli"

flags="-fsanitize=address,undefined -fno-omit-frame-pointer"
# -O1 as ASan's documentation advises (fast enough to run models, quick to
# compile), line tables for the stack traces.
opt="-O1 -g1 -DNDEBUG"
if [ "$build" = 1 ]; then
    started=$SECONDS
    # LLAMANATIVE_PAGE_BUFFERS=OFF: ggml's large CPU buffers stay
    # posix_memalign blocks, which ASan surrounds with redzones, instead of
    # pages mapped with mmap, which it does not watch.
    # CMake takes CFLAGS/CXXFLAGS/LDFLAGS as the initial compile and link
    # flags of a new build directory (its linker flags reach the shared and
    # module libraries too).
    CFLAGS="$flags" CXXFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" \
        "$python" -m pip install --no-build-isolation --no-deps --upgrade --target "$dir/site" \
        -C build-dir="$dir/build" -C install.strip=false \
        -C cmake.define.CMAKE_C_FLAGS_RELEASE="$opt" -C cmake.define.CMAKE_CXX_FLAGS_RELEASE="$opt" \
        -C cmake.define.LLAMANATIVE_PAGE_BUFFERS=OFF \
        . >"$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; echo "sanitizer build failed: $dir/build.log"; exit 1; }
    rm -rf "$dir/site/bin"  # the console script: the tests run the package, not the command
    echo "sanitizer build: $((SECONDS - started)) s ($dir/site)"
fi
[ "$test" = 1 ] || exit 0

# The build holds a copy of the package's Python files, which the tests
# import: a checkout changed since the last --build would be tested with the
# old ones.
if ! diff -rq -x __pycache__ -x '*.so' -x '*.so.*' "$repo/llamanative" "$dir/site/llamanative" >/dev/null; then
    diff -rq -x __pycache__ -x '*.so' -x '*.so.*' "$repo/llamanative" "$dir/site/llamanative" | head -5 || true
    echo "the sanitizer build's Python files are not the checkout's: run $0 --build (incremental)"
    exit 1
fi

libasan="$("$cc" -print-file-name=libasan.so)"
libubsan="$("$cc" -print-file-name=libubsan.so)"
if [ ! -e "$libasan" ]; then echo "no libasan for $cc"; exit 1; fi
mkdir -p "$dir/hook"
cat >"$dir/hook/sitecustomize.py" <<'EOF'
# Drops an editable install's import hook, so that `import llamanative` finds the sanitizer build on PYTHONPATH.
import sys

sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "ScikitBuildRedirectingFinder"]
EOF
rm -rf "$dir/reports"
mkdir -p "$dir/reports"

# detect_leaks=0: CPython does not free its objects at exit, and every
# allocation of the native core is made below interpreter frames, so no
# suppression can tell Python's "leaks" from ours; leaks are the soak's
# (benchmarks/soak.py: RSS over 10,000 requests).
# exitcode: an ASan report ends the process with code 86, which the summary
# below tells from a test failure.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=86:\
strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1:\
suppressions=$repo/scripts/sanitize.supp:log_path=$dir/reports/asan:print_summary=1"
# UBSan ends the process at its first report, as ASan does: with libasan
# preloaded, GCC's UBSan runtime writes to stderr whatever log_path says, and
# a report from a test's child process would otherwise be lost in the output
# the test captured. pytest runs with --capture=sys, so what the native code
# writes to stderr reaches the log file whether the test passes or not.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$repo/scripts/sanitize-ubsan.supp"
export PYTHONMALLOC=malloc
export PYTHONPATH="$dir/site:$dir/hook${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$libasan${libubsan:+:$libubsan}"

(cd "$dir" && "$python" -c "import llamanative._core as c, sys; sys.exit(c.__file__.startswith('$dir/site/') is False)") || {
    echo "the sanitizer build is not the one imported"; exit 1; }

# A deliberate heap overflow (memset one byte past a malloc block, through
# ctypes) must end a process with ASan's exit code: the runtime is loaded
# and reads these options.
rc=0
(cd "$dir" && ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$dir/canary" "$python" -c 'import ctypes
c = ctypes.CDLL(None)
c.malloc.restype = ctypes.c_void_p
c.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
c.memset(c.malloc(16), 0, 17)') || rc=$?
rm -f "$dir"/canary.*
[ "$rc" = 86 ] || { echo "ASan did not report a deliberate heap overflow (rc=$rc)"; exit 1; }

started=$SECONDS
failed=()
for t in "${SANITIZE_TESTS[@]}"; do
    t0=$SECONDS
    rc=0
    # Run from $dir: `python -m pytest` puts the working directory first on
    # sys.path, and the checkout's llamanative/ (no compiled extension) would
    # shadow the build.
    case "$t" in /*) path="$t" ;; *) path="$repo/$t" ;; esac
    (cd "$dir" && "$python" -m pytest -q -p no:cacheprovider --capture=sys --durations=5 -k "$deselect" \
        -c "$repo/pyproject.toml" --rootdir "$repo" "$path") >"$dir/reports/pytest-$(basename "$t").log" 2>&1 || rc=$?
    echo "$t: rc=$rc, $((SECONDS - t0)) s, $(grep -aE '(passed|failed|error)' "$dir/reports/pytest-$(basename "$t").log" | tail -1)"
    [ "$rc" = 0 ] || failed+=("$t (rc=$rc)")
done
echo "tests: $((SECONDS - started)) s"

# ASan's reports are files (log_path); UBSan's are in the pytest logs, its
# children's in the failure output of the test that ran them.
n=0
for r in "$dir"/reports/*; do
    grep -aqE "ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:" "$r" || continue
    n=$((n + 1))
    echo "== $r"
    grep -aE "ERROR: AddressSanitizer|runtime error:|^SUMMARY" "$r" | sort | uniq -c | head -20
done
echo "files with sanitizer reports: $n; failed test files: ${#failed[@]}"
for f in "${failed[@]}"; do echo "  $f"; done
[ "$n" = 0 ] && [ "${#failed[@]}" = 0 ]
