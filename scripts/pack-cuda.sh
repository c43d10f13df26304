#!/usr/bin/env bash
# Packs the optional CUDA package (README "Install"; npm run pack:cuda [-- DEST]): crunet-cuda-linux-x64
# with build/Release/libcrunet_cuda.so, the same version as crunet (package.json), its README from
# packages/crunet-cuda-linux-x64/ and crunet's LICENSE. The library's RPATH (this machine's CUDA wheel
# folders) is removed from the packaged copy: on a user's machine cuBLAS and cuDNN are found through
# ldconfig or LD_LIBRARY_PATH, as its README says. Writes the tarball to DEST (default: the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(realpath "${1:-.}")
lib=build/Release/libcrunet_cuda.so
fail() { echo "pack-cuda: $*" >&2; exit 1; }

command -v patchelf >/dev/null || fail "patchelf is needed (apt-get install patchelf)"
[ -f "$lib" ] || fail "$lib is missing: build it with 'bash scripts/install-cuda.sh' and 'CRUNET_CUDA=ON npm run build:native'"
stale=$(find native CMakeLists.txt sources.json -type f -newer "$lib" -print -quit)
[ -z "$stale" ] || fail "$lib is older than $stale: run 'CRUNET_CUDA=ON npm run build:native' first"

version=$(node -p "require('./package.json').version")
stage=build/pack/crunet-cuda-linux-x64
rm -rf "$stage"
mkdir -p "$stage"
cp "$lib" packages/crunet-cuda-linux-x64/README.md LICENSE "$stage/"
patchelf --remove-rpath "$stage/libcrunet_cuda.so"
if readelf -d "$stage/libcrunet_cuda.so" | grep -qE 'R(UN)?PATH'; then fail "the packaged library still has an RPATH"; fi
cat >"$stage/package.json" <<JSON
{
  "name": "crunet-cuda-linux-x64",
  "version": "$version",
  "description": "The CUDA backend of crunet $version for Linux x64 (needs CUDA 13 cuBLAS, cuDNN 9 and an NVIDIA driver >= 580)",
  "license": "MIT",
  "os": ["linux"],
  "cpu": ["x64"],
  "files": ["libcrunet_cuda.so", "README.md", "LICENSE"],
  "peerDependencies": { "crunet": "$version" }
}
JSON
(cd "$stage" && npm pack --silent --pack-destination "$dest")
echo "pack-cuda: $dest/crunet-cuda-linux-x64-$version.tgz"
