#!/usr/bin/env bash
# Build the Vulkan plugin and run the Vulkan parity tests on Mesa's lavapipe
# (a Vulkan implementation that runs on the CPU), for a machine without a GPU.
#
#   scripts/test_vulkan.sh
#
# Debian/Ubuntu packages: libvulkan-dev glslc spirv-headers mesa-vulkan-drivers (installed
# here when missing and apt-get is usable).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! { command -v glslc && [ -d /usr/share/cmake/SPIRV-Headers ]; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq libvulkan-dev glslc spirv-headers mesa-vulkan-drivers >/dev/null
fi
scripts/build_plugin.sh vulkan
pkg=$(cd /tmp && python -c "import os, llamanative._core as c; print(os.path.dirname(c.__file__))")
# The plugin from its build directory, everything else from the package;
# lavapipe is a CPU-type device, which ggml only uses when it is named.
export LLAMANATIVE_LIBRARY_PATH="$PWD/build/plugin-vulkan/bin:$pkg"
export GGML_VK_VISIBLE_DEVICES=0
python -c "import llamanative, json; print(json.dumps(llamanative.devices(), indent=1))"
python -m pytest -q tests/test_vulkan.py "$@"
