# tests/lib.sh: sourced by the integration scripts in tests/integration.
# Gives them the build's executables, a temporary directory that is removed
# on exit, and small assertions that print what failed.
set -euo pipefail
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${PYTHON_TORCH:=/usr/bin/python3}"
: "${MPIRUN:=mpirun}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export PATH="$top_builddir:$top_builddir/src/apps:$top_builddir/data-tools:$PATH"
: "${ICSPARSE_SITE_CONFIG:=/dev/null/none}"
export ICSPARSE_SITE_CONFIG
# Under the sanitizer build the executables run here load Open MPI's plugins
# and the CUDA/NCCL libraries, whose process-lifetime allocations
# LeakSanitizer reports from unnamed or stripped modules that no
# suppression can match. Leak checking stays on for the CUnit programs,
# which exercise the library's own code in-process; the executables keep
# every other AddressSanitizer and UndefinedBehaviorSanitizer check.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/icsparse-it.XXXXXX")
trap 'rm -rf "$TEST_TMP"' EXIT
tests_run=0
tests_failed=0

# fail MESSAGE: records a failed check and keeps going.
fail() {
    echo "FAIL: $*" >&2
    tests_failed=$((tests_failed + 1))
}

# check NAME COMMAND...: runs COMMAND; a non-zero status is a failure.
check() {
    local name=$1
    shift
    tests_run=$((tests_run + 1))
    if "$@"; then echo "PASS: $name"; else fail "$name"; fi
}

# expect_exit CODE OUTFILE COMMAND...: runs COMMAND, saves stdout+stderr to
# OUTFILE and checks its exit code.
expect_exit() {
    local want=$1 out=$2
    shift 2
    local rc=0
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" != "$want" ]; then
        echo "  exit $rc, wanted $want: $*" >&2
        sed 's/^/  | /' "$out" >&2
        return 1
    fi
}

# contains FILE PATTERN: FILE has a line matching the extended regex.
contains() {
    if ! grep -qE -- "$2" "$1"; then
        echo "  no line matching '$2' in:" >&2
        sed 's/^/  | /' "$1" >&2
        return 1
    fi
}

# finish: prints the summary and exits non-zero when a check failed.
finish() {
    echo "$((tests_run - tests_failed)) passed, $tests_failed failed"
    [ "$tests_failed" = 0 ]
}

# needs_fashion_mnist EPOCHS: for the accuracy tests. Sets $fmnist_src to
# Debian's dataset-fashion-mnist (or ICSPARSE_FASHION_MNIST_DIR); a missing
# package is a FAIL (CI installs it). Sanitizer builds skip (exit 77): EPOCHS
# epochs of training take ~6x longer there, unless
# ICSPARSE_ACCURACY_UNDER_SANITIZERS=1.
needs_fashion_mnist() {
    fmnist_src=${ICSPARSE_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
    if ! ls "$fmnist_src"/train-images-idx3-ubyte* "$fmnist_src"/t10k-labels-idx1-ubyte* >/dev/null 2>&1; then
        fail "Fashion-MNIST in $fmnist_src (install Debian's dataset-fashion-mnist: tools/install-deps.sh does)"
        tests_run=$((tests_run + 1))
        finish
        exit 1
    fi
    if grep -q '^SANITIZER_CFLAGS = -fsanitize' "$top_builddir/Makefile" 2>/dev/null &&
        [ "${ICSPARSE_ACCURACY_UNDER_SANITIZERS:-0}" != 1 ]; then
        echo "SKIP: sanitizer build: $1 epochs of training take ~6x longer here" \
            "(ICSPARSE_ACCURACY_UNDER_SANITIZERS=1 runs them anyway)"
        exit 77
    fi
}
