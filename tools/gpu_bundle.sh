#!/usr/bin/env bash
# Prepares gpu_bundle/ (git-ignored) for tools/gpu_check.sh on a GPU machine
# that has CUDA, cuDNN and PyTorch but not Kiln's build dependencies (fmt,
# spdlog, protobuf, RE2, FreeImage, gtest): the test and benchmark binaries
# and the kiln command (builder and server) and server_test (its GPU instance
# tests, run by tools/gpu_server_check.sh) built here (sm_80 + sm_90), every shared library they load except the CUDA
# ones (found on the GPU machine), this machine's C library and loader (used
# only if the GPU machine's cannot run them), and the zoo's make_models.py.
#
#   tools/gpu_bundle.sh [BUILD_DIR]     (default: build; must be configured with CUDA)
#
# The binaries and libraries go into gpu_bundle/bundle.tar.xz (the device
# tool carries at most 64 MiB; oneDNN alone is 40 MB unpacked), which
# tools/gpu_check.sh unpacks on the GPU machine.
# Carry the result: run(..., carry=["gpu_bundle"]).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
cd "$ROOT"
cmake --build "$BUILD" -j2 --target cuda_test kiln_gpu_bench kiln server_test
rm -rf gpu_bundle
mkdir -p gpu_bundle/bin gpu_bundle/lib gpu_bundle/glibc
for b in cuda_test kiln_gpu_bench kiln server_test; do
  src=$(find "$BUILD/tests" "$BUILD/tools" -type f -name "$b" -perm -u+x | head -1)
  objcopy --strip-debug "$src" "gpu_bundle/bin/$b"
done
# Shared libraries: CUDA's own come from the GPU machine; glibc's go apart.
for b in gpu_bundle/bin/*; do ldd "$b"; done | awk '/=> \//{print $3}' | sort -u | while read -r lib; do
  base=$(basename "$lib")
  case "$base" in
    libcuda.so*|libcudnn*|libcublas*|libnvrtc*|libcudart*) ;;
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libstdc++.so*|libgcc_s.so*|ld-linux*)
      cp -L "$lib" gpu_bundle/glibc/ ;;
    *) cp -L "$lib" gpu_bundle/lib/ ;;
  esac
done
cp -L /lib64/ld-linux-x86-64.so.2 gpu_bundle/glibc/
strip --strip-unneeded gpu_bundle/lib/*.so* 2>/dev/null || true
tar -C gpu_bundle -cf - bin lib glibc | xz -T2 -6 >gpu_bundle/bundle.tar.xz
rm -rf gpu_bundle/bin gpu_bundle/lib gpu_bundle/glibc
if [ -f /work/shared/models/make_models.py ]; then cp /work/shared/models/make_models.py gpu_bundle/; fi
du -sh gpu_bundle
