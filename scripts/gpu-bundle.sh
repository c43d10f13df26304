#!/usr/bin/env bash
# Here (the build machine): packs what a lent GPU machine needs to run crunet into .gpu/ (in .gitignore),
# within the device tool's 64 MiB carry limit. The GPU machine has the driver, CUDA wheels and PyTorch,
# but no Node.js, no oneDNN and no registry access (docs/GPU.md). Then run there, with carry [".gpu"]:
#   bash scripts/gpu-run.sh [all|test|bench]
# Dev-only packages the GPU run never loads stay out (onnxruntime-node alone is 247 MB unpacked).
# xz archives: gpu-run.sh unpacks them with xz, or with python3's lzma module where xz is missing.
#   CRUNET_GPU_XZ_LEVEL   xz preset (default 6; the dry run's test uses 0: faster, larger)
#   CRUNET_GPU_DRY_RUN=1  a bundle without libcrunet_cuda.so is allowed (the CPU dry run)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v xz > /dev/null || { echo "gpu-bundle: xz is needed here to pack the bundle (apt-get install xz-utils)" >&2; exit 1; }
[ -f build/Release/crunet.node ] && [ -d dist ] &&
  { [ -f build/Release/libcrunet_cuda.so ] || [ "${CRUNET_GPU_DRY_RUN:-0}" = 1 ]; } ||
  { echo "gpu-bundle: build first (npm run build with the CUDA wheels installed: bash scripts/install-cuda.sh)" >&2; exit 1; }
level=${CRUNET_GPU_XZ_LEVEL:-6}
rm -rf .gpu && mkdir -p .gpu
xz -T2 "-$level" -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
libdir=/usr/lib/x86_64-linux-gnu
tar -cf - -C "$libdir" $(cd "$libdir" && ls libdnnl.so.2* libgomp.so.1* libOpenCL.so.1* 2>/dev/null) | xz -T2 "-$level" > .gpu/libs.tar.xz
# node_modules may be a link (worktrees share one): pack the folder it points to under the name node_modules.
mods=$(readlink -f node_modules) b=$(basename "$(readlink -f node_modules)")
tar -cf - -C "$(dirname "$mods")" --transform "s,^$b,node_modules," --exclude="$b/typescript" --exclude="$b/@img" \
  --exclude="$b/@types" --exclude="$b/lodash" --exclude="$b/axios" --exclude="$b/cmake-js" --exclude="$b/.cache" \
  --exclude="$b/onnxruntime-node" --exclude="$b/onnxruntime-common" \
  "$b" | xz -T2 "-$level" > .gpu/mods.tar.xz
tar -cf - build/Release/crunet.node $(ls build/Release/libcrunet_cuda.so 2>/dev/null) dist | xz -T2 "-$level" > .gpu/build.tar.xz
du -cb .gpu/* | tail -1
