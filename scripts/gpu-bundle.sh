#!/usr/bin/env bash
# Here (the build machine): packs what a lent GPU machine needs to run crunet into .gpu/ (git-ignored),
# within the device tool's 64 MiB carry limit. The GPU machine has the driver, CUDA wheels and PyTorch,
# but no Node.js, no oneDNN and no registry access (docs/GPU.md). Then run there, with carry [".gpu"]:
#   bash scripts/gpu-run.sh [test|bench|all]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/Release/crunet.node ] && [ -f build/Release/libcrunet_cuda.so ] && [ -d dist ] ||
  { echo "gpu-bundle: build first (npm run build with the CUDA wheels installed: bash scripts/install-cuda.sh)" >&2; exit 1; }
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
libdir=/usr/lib/x86_64-linux-gnu
tar -cJf .gpu/libs.tar.xz -C "$libdir" $(cd "$libdir" && ls libdnnl.so.2* libgomp.so.1* libOpenCL.so.1* 2>/dev/null)
tar -cJf .gpu/mods.tar.xz --exclude=node_modules/typescript --exclude='node_modules/@img' --exclude=node_modules/@types \
  --exclude=node_modules/lodash --exclude=node_modules/axios --exclude=node_modules/cmake-js --exclude=node_modules/.cache node_modules
tar -cJf .gpu/build.tar.xz build/Release/crunet.node build/Release/libcrunet_cuda.so dist
du -ch .gpu/* | tail -1
