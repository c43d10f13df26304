#!/usr/bin/env bash
# There (a lent GPU machine, ONE device `run` with carry [".gpu"]; docs/GPU.md gives the exact call):
# unpacks the bundle of scripts/gpu-bundle.sh and runs the parts below, each under `timeout` with a
# budget computed from the time left before the whole run's deadline, and keeps going past a part that
# fails or times out. On any exit a trap packs every log into ONE archive, $OUT/gpu-run.tar.gz, and
# writes $OUT/summary.txt (one line per part: name, status, seconds, budget), because the device tool
# returns at most 8 files from $OUT.
#
#   bash scripts/gpu-run.sh [all|test|bench]      all (default): every part; test: env + test:gpu;
#                                                 bench: env + the benchmarks
# Parts, in order: unpack, env (driver, GPU, cuDNN, cuBLAS, tools), test-gpu (npm run test:gpu), then per
# model (crunet56, resnext50_32x4d, crunet_small): bench-M (`crunet bench`: cuDNN algorithm tables and
# images/s), step-M (crunet against PyTorch in fp32, the same cudnn.benchmark setting on both sides),
# amp-M (PyTorch alone under AMP bf16, channels_last, batch 256: the target for crunet's future mixed precision).
#
# Environment:
#   OUT                     where the archive and summary go (default ./gpu-out)
#   CRUNET_GPU_BUDGET_S     the whole run's deadline in seconds from the start (default 480)
#   CRUNET_GPU_DRY_RUN=1    the CPU dry run (CI, test/gpu-harness.test.ts): the CPU backend stands in for
#                           the GPU, tiny batches and steps; PyTorch from CRUNET_PEER_PYTHON or
#                           ~/.cache/crunet/torch-venv if present, else the peer parts are skipped
#   CRUNET_GPU_FAIL_PART=P  part P fails at once, on purpose (the dry run checks that the others still run)
#   CRUNET_GPU_HANG_PART=P  part P hangs, on purpose (the dry run checks the timeout and the deadline)
#   CRUNET_GPU_NO_XZ=1      unpack with python3's lzma module even where xz exists (the dry run tests that path)
#   CRUNET_GPU_CUDNN_BENCHMARK=0|1   cudnn.benchmark for every benchmark part, crunet and PyTorch (default 1)
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case "$what" in all | test | bench) ;; *) echo "gpu-run: unknown part set '$what': all, test or bench" >&2; exit 2 ;; esac

START=$(date +%s)
BUDGET=${CRUNET_GPU_BUDGET_S:-480}
DRY=${CRUNET_GPU_DRY_RUN:-0}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/crunet-gpu.XXXXXX")
LOGS=$WORK/gpu-run  # the archive's one folder
mkdir -p "$LOGS" "$WORK/bin" "$WORK/lib"
SUMMARY=$LOGS/summary.txt
RESERVE=15  # seconds kept for packing the archive after the last part
{
  echo "crunet gpu-run: $what, dry run $DRY, budget ${BUDGET}s, started $(date -u +%FT%TZ)"
  echo "# part seconds budget status (status: ok, failed rc=N, timeout, skipped: why)"
} > "$SUMMARY"

finish() {
  local rc=$?
  trap - EXIT INT TERM
  echo "total $(( $(date +%s) - START ))s, exit $rc" >> "$SUMMARY"
  cp "$SUMMARY" "$OUT/summary.txt"
  tar -czf "$OUT/gpu-run.tar.gz" -C "$WORK" gpu-run 2>>"$OUT/summary.txt" || echo "gpu-run: packing the archive failed" >> "$OUT/summary.txt"
  rm -rf "$WORK"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# part NAME CAP COMMAND...: runs COMMAND (its output in NAME.log) under `timeout` with the smaller of CAP
# and the time left before the deadline (less RESERVE); notes status and seconds in the summary.
part() {
  local name=$1 cap=$2
  shift 2
  local left=$(( START + BUDGET - RESERVE - $(date +%s) ))
  local budget=$(( cap < left ? cap : left ))
  if (( budget < 3 )); then
    echo "$name 0s 0s skipped: no time left (${left}s before the deadline)" >> "$SUMMARY"
    return 0
  fi
  local t0 rc status
  t0=$(date +%s)
  {
    echo "# $name: $* (budget ${budget}s, $(date -u +%FT%TZ))"
    if [ "${CRUNET_GPU_FAIL_PART:-}" = "$name" ]; then
      echo "# failing on purpose: CRUNET_GPU_FAIL_PART=$name"
      timeout -k 5 "$budget" bash -c 'exit 3'
    elif [ "${CRUNET_GPU_HANG_PART:-}" = "$name" ]; then
      echo "# hanging on purpose: CRUNET_GPU_HANG_PART=$name"
      timeout -k 5 "$budget" sleep 100000
    else
      # bash -c: the command may be one of the exported functions below
      timeout -k 5 "$budget" bash -c '"$@"' part "$@"
    fi
  } >> "$LOGS/$name.log" 2>&1 < /dev/null
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status="failed rc=$rc" ;;
  esac
  echo "$name $(( $(date +%s) - t0 ))s ${budget}s $status" >> "$SUMMARY"
}

skip() { echo "$1 0s 0s skipped: $2" >> "$SUMMARY"; }

# The bundle: xz archives (smaller than gzip within the 64 MiB carry limit), unpacked with xz where it
# exists and with python3's lzma module otherwise (python3 is on every lent machine: it holds PyTorch).
unxz_to() {  # unxz_to FILE.xz DEST; CRUNET_GPU_NO_XZ=1 takes the python3 path (the dry run tests it)
  if command -v xz > /dev/null && [ "${CRUNET_GPU_NO_XZ:-0}" != 1 ]; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
unpack() {
  [ -d .gpu ] || { echo "no .gpu/ here: run scripts/gpu-bundle.sh first and carry [\".gpu\"]"; return 1; }
  # The checkout's node_modules is a link to another worktree; it travels as a dangling link.
  [ -L node_modules ] && rm node_modules
  unxz_to .gpu/node.xz "$WORK/bin/node" && chmod +x "$WORK/bin/node" || return 1
  for t in libs mods build; do
    unxz_to ".gpu/$t.tar.xz" "$WORK/$t.tar" || return 1
    if [ $t = libs ]; then tar -xf "$WORK/$t.tar" -C "$WORK/lib"; else tar -xf "$WORK/$t.tar"; fi || return 1
    rm -f "$WORK/$t.tar"
  done
  echo "unpacked with $(command -v xz > /dev/null && [ "${CRUNET_GPU_NO_XZ:-0}" != 1 ] && echo xz || echo "python3's lzma")"
  ls -la .gpu build/Release "$WORK/bin" "$WORK/lib"
}

if [ "$DRY" = 1 ]; then
  DEVICE=cpu BATCH=2 AMP_BATCH=2 STEPS=1 WARMUP=1
  TORCH_PY=${CRUNET_PEER_PYTHON:-$HOME/.cache/crunet/torch-venv/bin/python}
else
  DEVICE=cuda BATCH=64 AMP_BATCH=256 STEPS=10 WARMUP=3
  TORCH_PY=${CRUNET_PEER_PYTHON:-/opt/torch/.venv/bin/python3}
  command -v "$TORCH_PY" > /dev/null || TORCH_PY=python3
fi
CUDNN_BENCH=${CRUNET_GPU_CUDNN_BENCHMARK:-1}

export WORK TORCH_PY
export -f unxz_to unpack
part unpack 120 unpack
export PATH=$WORK/bin:$PATH
# cuDNN, cuBLAS and the CUDA runtime from PyTorch's wheels (the nvidia namespace package).
NV=$("$TORCH_PY" -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2> /dev/null)
export LD_LIBRARY_PATH=$WORK/lib${NV:+:$NV/cudnn/lib:$NV/cu13/lib:$NV/cublas/lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CRUNET_PEER_PYTHON=$TORCH_PY
# The benchmark parts share their cuDNN searches through one cache file (archived); not test:gpu, whose
# algorithm tests must search.
CACHE=$LOGS/cudnn-algorithms.txt
TSX=(node node_modules/tsx/dist/cli.mjs)

env_report() {
  echo "## date, kernel"; date -u; uname -a
  echo "## tools"; for t in node xz gzip tar python3 nvidia-smi nvcc ncu compute-sanitizer; do printf '%s: %s\n' "$t" "$(command -v $t || echo missing)"; done
  echo "## nvidia-smi"; nvidia-smi || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free,clocks.sm,clocks.mem --format=csv || true
  echo "## node"; node --version
  echo "## crunet info"; node bin/crunet.js info --json
  echo "## PyTorch ($TORCH_PY)"
  "$TORCH_PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)' || true
  echo "## nvidia wheels in $NV"; ls "$NV" 2> /dev/null || true; ls "$NV"/cudnn/lib "$NV"/cublas/lib 2> /dev/null || true
  echo "## memory, disk"; free -g; df -h . /tmp
}
export NV
export -f env_report
part env 30 env_report

# PyTorch runs the peer parts only if it imports; otherwise they are skipped with the reason.
PEER=none
if ! command -v "$TORCH_PY" > /dev/null; then PEER_WHY="no python at $TORCH_PY"
elif ! PEER_WHY=$("$TORCH_PY" -c 'import torch' 2>&1); then PEER_WHY="$TORCH_PY cannot import torch: $(echo "$PEER_WHY" | tail -1)"
else PEER=pytorch; fi

if [ "$what" != bench ]; then
  part test-gpu 180 "${TSX[@]}" test/gpu/run.ts  # in the dry run: the skip line (no device)
fi

if [ "$what" != test ]; then
  for m in crunet56 resnext50_32x4d crunet_small; do
    if [ "$DRY" = 1 ]; then
      part "bench-$m" 100 node bin/crunet.js bench --device cpu --model $m --batch-size $BATCH --steps $STEPS --warmup $WARMUP --json
    else
      nb=$([ "$CUDNN_BENCH" = 1 ] || echo --no-benchmark)
      part "bench-$m" 100 node bin/crunet.js bench --device cuda --model $m --batch-size $BATCH --steps $STEPS --warmup $WARMUP $nb \
        --cache-file "$CACHE" --json
    fi
    part "step-$m" 150 env CRUNET_CUDNN_CACHE_FILE="$CACHE" "${TSX[@]}" bench/run.ts --suite step --model $m --device $DEVICE --batch $BATCH --steps $STEPS --warmup $WARMUP \
      --peer $PEER --cudnn-benchmark $CUDNN_BENCH --json --out "$LOGS/step-$m.json"
    if [ $PEER = pytorch ]; then
      part "amp-$m" 100 "${TSX[@]}" bench/peer-only.ts --model $m --device $DEVICE --batch $AMP_BATCH --steps $STEPS --warmup $WARMUP \
        --amp bf16 --cudnn-benchmark $CUDNN_BENCH --json
    else
      skip "amp-$m" "$PEER_WHY"
    fi
  done
fi
