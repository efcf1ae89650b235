#!/usr/bin/env bash
# Build one GPU backend as a plugin library, apart from the package, and say
# where it is. llamanative loads it from there with
#   LLAMANATIVE_LIBRARY_PATH=<that dir>:<the package dir>
# (a plugin for the same llama.cpp commit; the package's libggml-base is reused).
# To ship a backend inside the package instead, build the package with it:
#   pip install . -C cmake.define.GGML_VULKAN=ON      (or GGML_CUDA, GGML_HIP...)
#
#   scripts/build_plugin.sh vulkan   # needs libvulkan-dev, glslc, spirv-headers (Debian: apt-get install
#                                    # libvulkan-dev glslc spirv-headers mesa-vulkan-drivers)
#   scripts/build_plugin.sh cuda     # needs nvcc; CUDA_ARCHS (default 90) picks the GPUs
#
# The build directory (build/plugin-<backend>) is kept: a rebuild is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:?usage: scripts/build_plugin.sh vulkan|cuda}
build="build/plugin-$backend"
args=(-DCMAKE_BUILD_TYPE=Release)
launcher=()
if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

# Vulkan headers newer than Debian 12's (1.3.239), which lack VK_EXT_layer_settings
# (vk::LayerSettingEXT, used by ggml-vulkan at this commit): the headers of
# Debian 13's libvulkan-dev, downloaded from Debian and unpacked into the build
# directory. Nothing is installed; the system's Vulkan loader is used as is.
newer_vulkan_headers() {
    local dir="$build/vulkan-headers" apt="$build/apt"
    if [ ! -f "$dir/usr/include/vulkan/vulkan.hpp" ]; then
        mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir"
        echo "deb http://deb.debian.org/debian trixie main" > "$apt/sources.list"
        local o=(-o Dir::Etc::SourceList="$PWD/$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                 -o Dir::State::Lists="$PWD/$apt/lists" -o Dir::Cache="$PWD/$apt/cache" -o APT::Sandbox::User=root)
        apt-get "${o[@]}" -qq update
        (cd "$apt" && apt-get "${o[@]}" -qq download libvulkan-dev)
        dpkg-deb -x "$apt"/libvulkan-dev_*.deb "$dir"
    fi
    echo "$PWD/$dir/usr/include"
}

case "$backend" in
vulkan)
    args+=(-DGGML_VULKAN=ON)
    header=$(echo '#include <vulkan/vulkan_core.h>' | ${CC:-cc} -E -x c - 2>/dev/null | grep -c VK_EXT_layer_settings || true)
    if [ "${header:-0}" = 0 ]; then
        echo "the system's Vulkan headers lack VK_EXT_layer_settings: using Debian 13's libvulkan-dev headers"
        args+=(-DVulkan_INCLUDE_DIR="$(newer_vulkan_headers)")
    fi
    target=ggml-vulkan
    ;;
cuda)
    nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
    toolkit=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    args+=(-DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}")
    # Some CUDA installs carry the compiler and runtime but not cuBLAS; then
    # NVIDIA's own cuBLAS wheel from PyPI provides its headers and libraries.
    if ! ls "$toolkit"/lib64/libcublas.so* "$toolkit"/targets/*/lib/libcublas.so* >/dev/null 2>&1; then
        major=$("$nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
        deps="$PWD/$build/cublas"
        if [ ! -d "$deps/nvidia" ]; then
            python -m pip install -q --target "$deps" "nvidia-cublas$([ "$major" = 12 ] && echo -cu12)"
        fi
        cu=$(ls -d "$deps"/nvidia/cu*/ 2>/dev/null | head -1 || true)
        cu=${cu:-$deps/nvidia/cublas/}
        args+=(-DCUDA_cublas_LIBRARY="$(ls "$cu"lib/libcublas.so* | head -1)"
               -DCUDA_cublasLt_LIBRARY="$(ls "$cu"lib/libcublasLt.so* | head -1)"
               -DCMAKE_CUDA_FLAGS="-I${cu}include" -DCMAKE_CXX_FLAGS="-I${cu}include")
    fi
    # Without the driver library (libcuda.so, or the toolkit's stubs/libcuda.so)
    # ggml cannot link its virtual-memory pool: build without it (upstream's
    # GGML_CUDA_NO_VMM; the plugin then allocates through cudart alone).
    if ! ls "$toolkit"/lib64/stubs/libcuda.so "$toolkit"/targets/*/lib/stubs/libcuda.so \
            /usr/lib/x86_64-linux-gnu/libcuda.so* /usr/lib64/libcuda.so* >/dev/null 2>&1; then
        echo "no libcuda.so (driver or stub) here: building with GGML_CUDA_NO_VMM=ON"
        args+=(-DGGML_CUDA_NO_VMM=ON)
    fi
    target=ggml-cuda
    ;;
*)
    echo "unknown backend: $backend (vulkan or cuda)" >&2
    exit 2
    ;;
esac

start=$(date +%s)
cmake -S . -B "$build" -G Ninja "${launcher[@]}" "${args[@]}"
cmake --build "$build" --target "$target" -j "${JOBS:-$(nproc)}"
echo "built $target in $(( $(date +%s) - start )) s"
ls -l "$build"/bin/lib"$target"*
