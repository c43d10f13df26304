#!/usr/bin/env bash
# Everything a fresh machine lacks, each step skipped when already done: system packages (as root),
# npm dependencies, the native addon (cmake-js) and the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node.js is the one prerequisite not installed here: Debian's own package is older than the 20.17 that
# package.json's engines asks for.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: Node.js >= 20.17 with npm is needed and was not found on PATH (https://nodejs.org/en/download)" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 17) ? 0 : 1)'; then
  echo "setup: Node.js >= 20.17 is needed, found $(node --version) (https://nodejs.org/en/download)" >&2
  exit 1
fi

# Needed for the build and the default training job.
apt_packages=(libdnnl-dev libgloo-dev cmake g++ dataset-fashion-mnist)
# Only for packaging and CI, installed when root, else a note: patchelf for npm pack
# (scripts/prebuild.sh); python3 for node-gyp (npm run build:gyp, a build from source); python3-pip for
# scripts/install-cuda.sh, which fetches the CUDA wheels with pip (into a --target folder: no venv).
tool_packages=(patchelf python3 python3-pip)
missing=() missing_tools=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
for p in "${tool_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing_tools+=("$p"); done
if [ "$(id -u)" = 0 ] && ((${#missing[@]} + ${#missing_tools[@]})); then
  echo "setup: installing ${missing[*]} ${missing_tools[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" "${missing_tools[@]}" >/dev/null
elif ((${#missing[@]})); then
  echo "setup: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
elif ((${#missing_tools[@]})); then
  echo "setup: note: ${missing_tools[*]} not installed (needed only for npm pack, node-gyp builds and the CUDA wheels)" >&2
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  # onnxruntime-node (a devDependency: the ONNX export tests run its bundled CPU provider) would also
  # download its CUDA provider, hundreds of MB from NuGet, on linux-x64.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi

addon=build/Release/crunet.node
if [ ! -f "$addon" ] || [ -n "$(find native CMakeLists.txt sources.json -newer "$addon" -print -quit)" ]; then
  echo "setup: building the native addon (cmake-js)"
  npm run --silent build:native
fi

entry=dist/lib/index.js
if [ ! -f "$entry" ] || [ -n "$(find lib tsconfig.json tsconfig.build.json -newer "$entry" -print -quit)" ]; then
  echo "setup: compiling TypeScript"
  npm run --silent build:ts
fi
