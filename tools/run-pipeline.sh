#!/bin/bash
# The main job: installs the dependencies, builds icsparse, and runs the
# embedded default pipeline on this machine (no Slurm needed): Fashion-MNIST
# from Debian's dataset-fashion-mnist package, the small CNN on 2 MPI ranks,
# pruned then quantized (a staged recipe), consolidated, evaluated, exported.
# Usage: tools/run-pipeline.sh [RUN.cfg]   (default: conf/run-fashion-mnist.cfg)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cfg=${1:-conf/run-fashion-mnist.cfg}
bash tools/install-deps.sh
if [ ! -f build/Makefile ]; then
    autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
    mkdir -p build
    (cd build && ../configure -q)
fi
# always brought up to date: a stale build would run old executables
make -C build -j"$(nproc)" >/dev/null
export PATH="$top/build/src/apps:$top/build/data-tools:$PATH"
if [ -x jobs/submit-pipeline ]; then
    exec bash jobs/submit-pipeline --local "$cfg"
fi
echo "run-pipeline: jobs/submit-pipeline is not there yet; the executables are built in build/." >&2
exit 2
