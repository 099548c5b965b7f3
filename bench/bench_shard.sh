#!/bin/bash
# bench_shard.sh: icsparse-shard throughput (MB/s of dataset sharded) on 1
# and 2 ranks, on Fashion-MNIST converted from Debian's package.
# Usage: bench/bench_shard.sh BUILD_DIR [SHARDS]
set -euo pipefail
build=${1:?usage: bench_shard.sh BUILD_DIR [SHARDS]}
shards=${2:-8}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ICSPARSE_SITE_CONFIG=/dev/null/none
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-shard.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$build/data-tools/icsparse-convert" -q -d "$work" fashion-mnist
bytes=$(stat -c %s "$work/fashion-mnist.h5")
printf '%-24s %10s %10s\n' "icsparse-shard" "seconds" "MB/s"
for ranks in 1 2; do
    best=
    for _ in 1 2 3; do
        rm -rf "$work/shards"
        t0=$(date +%s.%N)
        mpirun -n "$ranks" "$build/src/apps/icsparse-shard" -q -o "$work/shards" -n "$shards" "$work/fashion-mnist.h5"
        t=$(echo "$(date +%s.%N) - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    done
    printf '%-24s %10.2f %10.1f\n' "$ranks rank(s), $shards shards" "$best" "$(echo "$bytes / 1000000 / $best" | bc -l)"
done
