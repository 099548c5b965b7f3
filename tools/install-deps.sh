#!/bin/bash
# Installs everything icsparse needs on Debian 12 (as root): the build
# toolchain and libraries, the test references (Debian's PyTorch), a real
# Slurm for the cluster tests, and a Python venv (with Debian's packages
# visible) for the PyPI tools that read what icsparse writes: TensorBoard,
# onnx, onnxruntime, wandb. Safe to run again.
set -euo pipefail

VENV=${ICSPARSE_VENV:-/opt/icsparse-venv}
export DEBIAN_FRONTEND=noninteractive

packages=(
    build-essential autoconf automake libtool pkg-config
    openmpi-bin libopenmpi-dev
    libhdf5-openmpi-dev hdf5-tools
    libconfig-dev libyaml-dev libopenblas-dev libcunit1-dev
    zlib1g-dev libcurl4-openssl-dev libpng-dev libjpeg62-turbo-dev
    protobuf-c-compiler libprotobuf-c-dev
    python3 python3-venv python3-pip python3-numpy python3-torch python3-matplotlib python3-h5py
    dataset-fashion-mnist
    slurm-wlm munge
    shellcheck
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# Debian's torch 1.13 is built against numpy 1.x: keep numpy below 2 in the
# venv so the PyPI tools do not shadow it with an incompatible one.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "numpy<2" tensorboard onnx onnxruntime wandb
echo "install-deps: done (Python tools in $VENV)"
