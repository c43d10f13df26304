#!/usr/bin/env bash
# The package as a user meets it (README "Install"; run by .ci/run): `npm pack` (prepack builds dist/ and
# puts the prebuilt addon in place) and `npm run pack:cuda`, then, in a fresh project in a temporary folder,
# inside a mount namespace (unshare -m, as root) where the compilers, make, cmake, Python, oneDNN's headers
# and the system's libdnnl, libgomp, libOpenCL and Gloo's libraries are hidden (/dev/null or an empty tmpfs bound over
# them): npm install of the tarball (timed; npm's cache first, the registry for what it lacks), a training
# step from require (CommonJS), from import (ESM: README's "API in ten lines" block as written) and from a
# TypeScript file type-checked with tsc (strict, skipLibCheck off), `npx crunet info` and `--version`; then
# the failures a user can meet: --build-from-source without the tools (one message naming what is
# missing), a bundled library deleted, the CUDA package (its missing cuDNN named; another version refused).
#
#   bash scripts/check-package.sh     # root for the mount namespace (else a weaker check, said so);
#                                     # needs build/Release built and patchelf
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "check-package: $*"; }
fail() { echo "check-package: FAILED: $*" >&2; exit 1; }

if [ "${1:-}" != --inside ]; then
  # Without a mount namespace (not root, or a container without CAP_SYS_ADMIN) the next best check runs,
  # and says so: the tools are shadowed on PATH by stubs that fail, the system's oneDNN stays visible
  # (the loaded libdnnl must still be the package's, which /proc/self/maps shows).
  # CRUNET_CHECK_MODE=path forces the weaker check (to test it).
  if [ "${CRUNET_CHECK_MODE:-}" != path ] && unshare -m true 2>/dev/null; then isolate=(unshare -m); mode=namespace
  else isolate=(); mode=path; say "WARNING: no mount namespace here (unshare -m needs root or CAP_SYS_ADMIN): a weaker check, the compilers shadowed on PATH only"; fi
  work=$(mktemp -d /tmp/crunet-package.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  cd "$repo"
  if [ -n "${CRUNET_PACKAGE_TARBALLS:-}" ]; then  # reuse tarballs packed before (a folder), to iterate on this script
    cp "$CRUNET_PACKAGE_TARBALLS"/*.tgz "$work/"
    "${isolate[@]}" bash "$0" --inside "$work" "$mode"
    exit 0
  fi
  start=$(date +%s)
  npm pack --silent --pack-destination "$work" >/dev/null
  say "npm pack (prepack: tsc, prebuild): $(($(date +%s) - start)) s, $(du -h "$work"/crunet-*.tgz | cut -f1) $(basename "$work"/crunet-*.tgz)"
  listing=$(tar tzf "$work"/crunet-[0-9]*.tgz)
  if echo "$listing" | grep -E '\.map$|^package/(lib|test|build|node_modules)/'; then fail "the tarball holds the files above (source maps, sources, builds)"; fi
  if tar xzOf "$work"/crunet-[0-9]*.tgz --wildcards 'package/dist/*.js' | grep -q sourceMappingURL; then fail "dist/ names source maps it does not ship"; fi
  if [ -f build/Release/libcrunet_cuda.so ]; then
    bash scripts/pack-cuda.sh "$work" >/dev/null
    say "CUDA package: $(du -h "$work"/crunet-cuda-linux-x64-*.tgz | cut -f1)"
  elif [ "${CRUNET_CHECK_CUDA_PACKAGE:-}" = 1 ]; then
    fail "build/Release/libcrunet_cuda.so is missing (CRUNET_CHECK_CUDA_PACKAGE=1)"
  fi
  "${isolate[@]}" bash "$0" --inside "$work" "$mode"
  exit 0
fi

# ---- inside the mount namespace (or, mode "path", a shell whose PATH shadows the tools) ------------------
work=$2 mode=$3
if [ "$mode" = path ]; then
  mkdir -p "$work/stubs"
  for t in gcc g++ cc c++ cpp clang clang++ make cmake python3 python; do printf '#!/bin/sh\nexit 127\n' >"$work/stubs/$t"; chmod +x "$work/stubs/$t"; done
  export PATH=$work/stubs:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
  say "hidden: compilers, make, cmake and python shadowed on PATH (oneDNN's headers and libraries stay visible)"
else
# Nothing mounted here leaks out (systemd makes / shared; the namespace's copy must be private).
mount --make-rprivate /
hide=()
for f in /usr/bin/{gcc,g++,cc,c++,cpp,clang,clang++,make,cmake,python3,python}* /usr/bin/x86_64-linux-gnu-{gcc,g++,cpp}* \
         /usr/lib/gcc/x86_64-linux-gnu/*/{cc1,cc1plus}; do
  [ -e "$f" ] && hide+=("$(readlink -f "$f")")
done
for pkg in libdnnl-dev libdnnl2 libgomp1 ocl-icd-libopencl1 libgloo-dev libgloo0 libhiredis0.14 libibverbs1 libnl-route-3-200 libnl-3-200; do
  while read -r f; do
    case $f in *.so* | *.h | *.hpp | *.cmake) [ -f "$f" ] && [ ! -L "$f" ] && hide+=("$f") ;; esac
  done < <(dpkg -L "$pkg" 2>/dev/null || true)
done
for f in $(printf '%s\n' "${hide[@]}" | sort -u); do mount --bind /dev/null "$f"; done
[ -d /usr/include/oneapi ] && mount -t tmpfs none /usr/include/oneapi
# Only the system's folders on PATH (drops e.g. pyenv's shims); what they hold of the above is hidden.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
say "hidden: $(printf '%s\n' "${hide[@]}" | sort -u | wc -l) files (compilers, make, cmake, python, oneDNN, libgomp, libOpenCL, Gloo and its libraries) and /usr/include/oneapi"
[ ! -e /usr/include/oneapi/dnnl/dnnl.hpp ] && [ ! -s /usr/include/dnnl.hpp ] || fail "oneDNN's headers are still visible"
node -e "try { process.dlopen({exports:{}}, '/usr/lib/x86_64-linux-gnu/libdnnl.so.2'); } catch (e) { if (/too short|invalid ELF/.test(e.message)) process.exit(0); throw e; } process.exit(1)" ||
  fail "the system libdnnl.so.2 still loads"
fi
for t in gcc g++ cc c++ clang make cmake python3 python; do
  if "$t" --version >/dev/null 2>&1; then fail "$t is still usable ($(command -v "$t"))"; fi
done

app=$work/app
mkdir -p "$app"
cd "$app"
echo '{ "name": "app", "version": "1.0.0", "private": true }' >package.json
start=$(date +%s%N)
npm install --prefer-offline --no-audit --no-fund --loglevel=error "$work"/crunet-[0-9]*.tgz >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "npm install"; }
say "npm install of the tarball: $(tenths=$((($(date +%s%N) - start) / 100000000)); echo "$((tenths / 10)).$((tenths % 10))") s; node_modules $(du -sh node_modules | cut -f1) (sharp: $([ -d node_modules/sharp ] && echo installed || echo 'not installed (optional peer)'))"
[ ! -e node_modules/crunet/build ] || fail "the install built the addon (node_modules/crunet/build exists)"

# Prints the training step's loss, and that libdnnl came from the package (not the system).
cat >train.cjs <<'EOF'
const { GraphBuilder, compile } = require('crunet');
(async () => {
  const g = new GraphBuilder();
  const x = g.input('images', [1, 8, 8]), y = g.input('labels', [], 'i32');
  const logits = g.linear(g.globalAvgPool(g.relu(g.conv2d(x, { outChannels: 4, kernel: 3, padding: 1 }))), { outFeatures: 3 });
  const s = await compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: 4 });
  const { loss } = await s.step(new Float32Array(4 * 64).map(Math.random), new Int32Array([0, 1, 2, 0]));
  s.dispose();
  const dnnl = require('fs').readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => l.includes('libdnnl'));
  console.log(`require: loss ${loss.toFixed(4)}, ${dnnl.split(/\s+/).pop()}`);
})();
EOF
# README's "API in ten lines", as written, as an ES module.
readme_block=$(awk '/^## The API in ten lines/ { s = 1 } s && /^```ts$/ { b = 1; next } b && /^```$/ { exit } b' "$repo/README.md")
[ -n "$readme_block" ] || fail "README's API block not found"
printf '%s\nconsole.log(`import: loss ${loss.toFixed(4)}, correct ${correct}`);\n' "$readme_block" >train.mjs
printf '%s\nconst l: number = loss;\nconsole.log(`typescript (ESM): loss ${l.toFixed(4)}`);\n' "$readme_block" >train.mts
cat >train.cts <<'EOF'
import crunet = require('crunet');
import type { BuildInfo, StepResult } from 'crunet';
const info: BuildInfo = crunet.buildInfo();
void (async () => {
  const g = new crunet.GraphBuilder();
  const x = g.input('images', [1, 8, 8]), y = g.input('labels', [], 'i32');
  const logits = g.linear(g.globalAvgPool(x), { outFeatures: 2 });
  const s = await crunet.compile(g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }), { batchSize: 2 });
  const r: StepResult = await s.step(new Float32Array(2 * 64).fill(0.5), new Int32Array([0, 1]));
  s.dispose();
  console.log(`typescript (CommonJS): loss ${r.loss.toFixed(4)}, oneDNN ${info.onednn.version}`);
})();
EOF
cat >tsconfig.json <<EOF
{ "compilerOptions": { "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022", "strict": true,
    "skipLibCheck": false, "outDir": "out", "types": ["node"], "typeRoots": ["$repo/node_modules/@types"] },
  "files": ["train.mts", "train.cts"] }
EOF
out=$(node train.cjs) || fail "require"
echo "$out"
echo "$out" | grep -q "$app/node_modules/crunet/prebuilds/linux-x64/libdnnl.so.2" || fail "libdnnl.so.2 was not loaded from the package"
node train.mjs || fail "import (README block)"
node "$repo/node_modules/typescript/bin/tsc" -p . || fail "tsc on train.mts/train.cts"
node out/train.mjs && node out/train.cjs || fail "the compiled TypeScript"
npx --no-install crunet info >"$work/info.txt" || { cat "$work/info.txt"; fail "npx crunet info"; }
grep -q "native addon: $app/node_modules/crunet/prebuilds/linux-x64/crunet.napi.glibc.node" "$work/info.txt" || { cat "$work/info.txt"; fail "info names another addon"; }
say "npx crunet info: $(grep -E '^(crunet|oneDNN|CUDA)' "$work/info.txt" | tr '\n' '|')"
[ "$(npx --no-install crunet --version)" = "$(node -p "require('$repo/package.json').version")" ] || fail "crunet --version"

# A build from source without the tools, asked for both ways (the variable, and npm's flag): one message
# naming what is missing, no node-gyp output.
want='cannot build the native addon from source: missing a C++17 compiler (g++; package g++), make, Python 3 .*libdnnl-dev'
[ "$mode" = namespace ] || want='cannot build the native addon from source: missing a C++17 compiler (g++; package g++), make, Python 3'
for how in env flag; do
  if [ $how = env ]; then out=$(CRUNET_BUILD_FROM_SOURCE=1 npm rebuild crunet 2>&1) && fail "a build from source succeeded without a compiler"
  else out=$(npm rebuild crunet --build-from-source 2>&1) && fail "--build-from-source succeeded without a compiler"; fi
  echo "$out" | grep -q "$want" || { echo "$out"; fail "build from source ($how): the message does not name what is missing"; }
  if echo "$out" | grep -q 'gyp ERR'; then echo "$out"; fail "build from source ($how) printed node-gyp's errors"; fi
done
say "build from source without tools (CRUNET_BUILD_FROM_SOURCE=1, --build-from-source): $(echo "$out" | grep -o 'cannot build.*' | head -1)"
[ -f node_modules/crunet/prebuilds/linux-x64/crunet.napi.glibc.node ] && node -e "require('crunet').buildInfo()" || fail "the failed build broke the installed package"

# A bundled library missing: refused naming it.
lib=node_modules/crunet/prebuilds/linux-x64/libgomp.so.1
mv "$lib" "$lib.away"
if out=$(node -e "require('crunet').buildInfo()" 2>&1); then fail "loads without libgomp.so.1"; fi
echo "$out" | grep -q "is incomplete: .*libgomp.so.1 is missing" || { echo "$out"; fail "the missing library is not named"; }
mv "$lib.away" "$lib"
say "missing bundled library: refused, naming it"

# The CUDA package: installed beside crunet it is found; without cuDNN on the loader's path it says what
# it needs; a package of another version is refused naming both.
cuda_tgz=$(ls "$work"/crunet-cuda-linux-x64-*.tgz 2>/dev/null || true)
if [ -n "$cuda_tgz" ]; then
  npm install --prefer-offline --no-audit --no-fund --loglevel=error "$work"/crunet-[0-9]*.tgz "$cuda_tgz" >"$work/install-cuda.log" 2>&1 || { cat "$work/install-cuda.log"; fail "npm install of the CUDA package"; }
  reason=$(node -p "require('crunet').buildInfo().cudaUnavailableReason || 'usable'")
  echo "$reason" | grep -qE "node_modules/crunet-cuda-linux-x64/libcrunet_cuda.so.*(libcudnn|libcublas|driver|usable)" || fail "CUDA package: $reason"
  say "CUDA package installed: $reason"
  # With cuBLAS and cuDNN on LD_LIBRARY_PATH (its README's way; here the wheels of scripts/install-cuda.sh)
  # the library loads; on a machine without a GPU it then names the missing driver.
  wheels=$(ls -d "${CRUNET_CUDA_CACHE:-$HOME/.cache/crunet/cuda}"/*/site/nvidia 2>/dev/null | sort | tail -1)
  if [ -n "$wheels" ]; then
    reason=$(LD_LIBRARY_PATH=$wheels/cu13/lib:$wheels/cudnn/lib node -p "require('crunet').buildInfo().cudaUnavailableReason || 'usable'")
    if echo "$reason" | grep -q "cannot load"; then fail "CUDA package with LD_LIBRARY_PATH=$wheels/...: $reason"; fi
    say "CUDA package with cuBLAS/cuDNN on LD_LIBRARY_PATH: $reason"
  fi
  node -e "const f='node_modules/crunet-cuda-linux-x64/package.json',fs=require('fs'),p=JSON.parse(fs.readFileSync(f));p.version='0.0.1';fs.writeFileSync(f,JSON.stringify(p))"
  reason=$(node -p "require('crunet').buildInfo().cudaUnavailableReason")
  echo "$reason" | grep -q "crunet-cuda-linux-x64 0.0.1 .* does not match crunet $(node -p "require('$repo/package.json').version")" || fail "CUDA version mismatch: $reason"
  say "CUDA package of another version: $reason"
fi
say "passed ($mode)"
