#!/usr/bin/env bash
# There (a lent GPU machine, one device `run` with carry [".gpu"]): unpacks the bundle of
# scripts/gpu-bundle.sh and runs, writing every log and JSON under $OUT (default ./gpu-out):
#   test   npm run test:gpu (the parity suite)
#   bench  crunet bench --device cuda (cuDNN algorithm tables, step images/s) for crunet56 and
#          resnext50_32x4d, the step suite against PyTorch in fp32, and PyTorch alone under AMP bf16
#          (the issue's target: eager, AMP, channels_last, cudnn.benchmark)
#   all    both (the default)
# Each part has its own time limit so that one hang does not eat the device call.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
mkdir -p /tmp/crunet-node /tmp/crunet-libs
xz -dc .gpu/node.xz > /tmp/crunet-node/node && chmod +x /tmp/crunet-node/node
tar -xJf .gpu/libs.tar.xz -C /tmp/crunet-libs && tar -xJf .gpu/mods.tar.xz && tar -xJf .gpu/build.tar.xz
export PATH=/tmp/crunet-node:$PATH
TORCH_PY=${TORCH_PY:-/opt/torch/.venv/bin/python}
S=$($TORCH_PY -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]) + "/nvidia")' 2>/dev/null || echo /opt/torch/.venv/lib/python3.12/site-packages/nvidia)
export LD_LIBRARY_PATH=/tmp/crunet-libs:$S/cudnn/lib:$S/cu13/lib:$S/cublas/lib:${LD_LIBRARY_PATH:-}
export CRUNET_PEER_PYTHON=$TORCH_PY
TSX="node node_modules/tsx/dist/cli.mjs"
{ date -u; nvidia-smi; node --version; $TORCH_PY -c 'import torch; print(torch.__version__, torch.backends.cudnn.version())'; } > "$OUT/machine.txt" 2>&1
node bin/crunet.js info --json > "$OUT/info.json" 2>&1
if [ "$what" = test ] || [ "$what" = all ]; then
  timeout 300 $TSX test/gpu/run.ts > "$OUT/test-gpu.log" 2>&1; echo "test:gpu exit $?" >> "$OUT/test-gpu.log"
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  for m in crunet56 resnext50_32x4d; do
    timeout 120 node bin/crunet.js bench --device cuda --model $m --batch-size 64 --steps 10 --cache-file "$OUT/cudnn-algorithms.txt" > "$OUT/bench-$m.txt" 2>&1
    timeout 120 $TSX bench/peer-only.ts --model $m --device cuda --batch 256 --amp bf16 --json > "$OUT/peer-$m-bf16.json" 2>&1
    timeout 150 $TSX bench/run.ts --suite step --model $m --device cuda --batch 64 --steps 10 --warmup 3 --json --out "$OUT/step-$m-fp32.json" > "$OUT/step-$m-fp32.log" 2>&1
  done
fi
ls -la "$OUT"
