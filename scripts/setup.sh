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

# patchelf: npm pack (scripts/prebuild.sh). python3: node-gyp (npm run build:gyp, a build from source);
# python3-pip: scripts/install-cuda.sh fetches the CUDA wheels with pip (into a --target folder: no venv).
apt_packages=(libdnnl-dev cmake g++ dataset-fashion-mnist patchelf python3 python3-pip)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
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
