#!/usr/bin/env bash
# Builds the GPU check's binaries for sm_90 in build-gpu/ and packs them, with the non-CUDA
# shared libraries they need (OpenBLAS, gfortran, gomp, ...), into .carry/ for the GPU machine
# (which has the CUDA 13 libraries but no compilers or headers). Keep .carry/ under 64 MiB.
#   bash bench/pack_gpu.sh          (PACK_CMAKE_ARGS="-D..." adds configure options)
#   PACK_BUILD_DIR=build bash bench/pack_gpu.sh   (packs from an existing build folder whose
#                                   CUDA architectures include 90, such as the default build's)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${PACK_BUILD_DIR:-$root/build-gpu}"
[[ "$build" = /* ]] || build="$root/$build"
carry="$root/.carry"
jobs=${JOBS:-2}

if [[ -z "${PACK_BUILD_DIR:-}" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DPP_BUILD_BENCH=ON -DPP_BUILD_TESTS=ON ${PACK_CMAKE_ARGS:-} >/dev/null
elif ! grep -rqs -- 'arch=compute_90' "$build"/layers/CMakeFiles/*/flags.make; then
  echo "pack_gpu.sh: $build is not configured for sm_90" >&2; exit 1
fi
cmake --build "$build" -j"$jobs" --target pp-partition pp_cuda_plugin cuda_layers_test cuda_step_bench \
  cuda_runtime_test runtime_overhead_bench
# PACK_NCCL=1: also the distributed run's modules and test (gpu_check.sh nccl).
if [[ "${PACK_NCCL:-0}" == 1 ]]; then
  cmake --build "$build" -j"$jobs" --target pp_mpi_plugin pp_nccl_plugin mpi_test mpi_worker
fi

rm -rf "$carry"
mkdir -p "$carry/bin" "$carry/lib"
bins=("$build/tool/pp-partition" "$build/tool/pp-partition-cuda.so" "$build/tests/cuda_layers_test" "$build/bench/cuda_step_bench"
  "$build/tests/cuda_runtime_test" "$build/bench/runtime_overhead_bench")
if [[ "${PACK_NCCL:-0}" == 1 ]]; then
  bins+=("$build/tool/pp-partition-mpi.so" "$build/tool/pp-partition-nccl.so" "$build/tests/mpi_test"
    "$build/tests/mpi_worker")
fi
for b in "${bins[@]}"; do
  [[ -x "$b" ]] || { echo "pack_gpu.sh: $b was not built" >&2; exit 1; }
  strip -o "$carry/bin/$(basename "$b")" "$b"
done
# Libraries from the system folders, except glibc's own (present everywhere) and CUDA's
# (present on the GPU machine, and far too large to carry).
ldd "${bins[@]}" | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$lib" in
    /usr/local/cuda*|*/libc.so*|*/libm.so*|*/libpthread.so*|*/libdl.so*|*/librt.so*|*/ld-linux*) ;;
    /usr/lib/*|/lib/*) cp -L "$lib" "$carry/lib/" ;;
  esac
done
git -C "$root" rev-parse --short HEAD > "$carry/COMMIT" 2>/dev/null || true
echo "packed into $carry:"
du -sh "$carry"/bin/* "$carry"/lib/* | sed 's/^/  /'
total=$(du -sm "$carry" | cut -f1)
echo "total ${total} MiB"
if (( total >= 64 )); then echo "pack_gpu.sh: .carry is over 64 MiB" >&2; exit 1; fi
