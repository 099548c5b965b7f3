#!/bin/bash
# The whole test suite from a fresh checkout: installs the dependencies,
# builds with warnings as errors in build/, and runs `make check` (unit
# tests, PyTorch cross-checks, MPI and Slurm integration tests).
# Extra arguments go to configure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash tools/install-deps.sh
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p build
cd build
../configure -q --enable-werror "$@"
make -j"$(nproc)"
status=0
make -j"$(nproc)" check || status=$?
# Print every failing test's log, then automake's summary.
for log in $(grep -l -E '^(FAIL|ERROR)' $(find . -name '*.trs') 2>/dev/null | sed 's/\.trs$/.log/'); do
    echo "===== $log"; tail -n 60 "$log"
done
[ -f test-suite.log ] && sed -n '1,12p' test-suite.log
exit "$status"
