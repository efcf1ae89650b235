#!/usr/bin/env bash
# Build one GPU backend as a plugin library, apart from the package, and say
# where it is. llamanative loads it from there with
#   LLAMANATIVE_LIBRARY_PATH=<that dir>:<the package dir>
# (a plugin for the same llama.cpp commit; the package's libggml-base is reused).
# To ship a backend inside the package instead, build the package with it:
#   pip install . -C cmake.define.GGML_VULKAN=ON      (or GGML_CUDA, GGML_HIP...)
#
#   scripts/build_plugin.sh vulkan   # needs libvulkan-dev, glslc (Debian: apt-get install
#                                    # libvulkan-dev glslc mesa-vulkan-drivers)
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

case "$backend" in
vulkan)
    args+=(-DGGML_VULKAN=ON)
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
        deps="$build/cublas"
        if [ ! -d "$deps/nvidia" ]; then
            python -m pip install -q --target "$deps" "nvidia-cublas$([ "$major" = 12 ] && echo -cu12)"
        fi
        cu=$(ls -d "$deps"/nvidia/cu*/ 2>/dev/null | head -1 || true)
        cu=${cu:-$deps/nvidia/cublas/}
        args+=(-DCUDA_cublas_LIBRARY="$(ls "$cu"lib/libcublas.so* | head -1)"
               -DCUDA_cublasLt_LIBRARY="$(ls "$cu"lib/libcublasLt.so* | head -1)"
               -DCMAKE_CUDA_FLAGS="-I${cu}include" -DCMAKE_CXX_FLAGS="-I${cu}include")
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
