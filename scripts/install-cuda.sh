#!/usr/bin/env bash
# Installs the CUDA toolchain, cuBLAS and cuDNN from PyPI wheels into a cache OUTSIDE the repository
# (docs/GPU.md): ${CRUNET_CUDA_CACHE:-$HOME/.cache/crunet/cuda}/<pin-set>/. Idempotent: a pin set that is
# already installed is skipped. Prints the paths CMake reads (CRUNET_CUDA_ROOT) on its last lines.
#
# The pins are one CUDA 13.0 release (nvcc, crt, nvvm, runtime, NVRTC, cccl, cuBLAS) and cuDNN 9 for
# CUDA 13; a CUDA 13 runtime needs an NVIDIA driver of branch 580 or newer on the machine that runs it
# (the lent GPU machines were seen with 580.159; building needs no driver). Measured here: 0.92 GB
# downloaded (the cuBLAS and cuDNN wheels are 421 and 351 MB), 1.5 GB installed (cuBLAS+cuBLASLt
# 0.57 GB, cuDNN 0.45 GB, NVRTC 0.21 GB, nvcc+nvvm 0.25 GB), in about 20 s; a second run does nothing.
set -euo pipefail

pins=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.0.2.14
  nvidia-cudnn-cu13==9.14.0.64
)
cache=${CRUNET_CUDA_CACHE:-$HOME/.cache/crunet/cuda}
set_name=cu13.0-cudnn9.14
root=$cache/$set_name
stamp=$root/.installed
want="${pins[*]}"

python=${PYTHON:-python3}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install-cuda: already installed in $root"
else
  command -v "$python" >/dev/null || { echo "install-cuda: $python not found (pip is needed to fetch the CUDA wheels)" >&2; exit 1; }
  echo "install-cuda: installing ${pins[*]} into $root"
  start=$(date +%s)
  rm -rf "$root.tmp"
  mkdir -p "$cache"
  # --no-deps: the pins are the whole closure (nvidia-cudnn-cu13 only requires nvidia-cublas, pinned above).
  # nvrtc is optional for cuDNN: its runtime-compiled engines load it when present.
  "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-cache-dir --no-deps --no-compile \
    --target "$root.tmp/site" "${pins[@]}"
  rm -rf "$root"
  mv "$root.tmp" "$root"
  echo "$want" >"$stamp"
  echo "install-cuda: done in $(($(date +%s) - start)) s, $(du -sh "$root" | cut -f1)"
fi

nv=$root/site/nvidia
echo "install-cuda: nvcc: $(ls "$nv"/cu13/bin/nvcc 2>/dev/null || ls "$nv"/*/bin/nvcc 2>/dev/null | head -1)"
echo "CRUNET_CUDA_ROOT=$root"
