#!/bin/bash
# Integration: icsparse-convert and icsparse-shard as users run them, on the
# real Fashion-MNIST files from Debian's package and on generated
# real-format fixtures: conversion, sharding on 1 and 2 ranks (byte-identical
# shards), --verify, bad input (one error line, non-zero exit, nothing left
# under the output name), and downloads from a local HTTP server
# (verification, mismatch refused, resume, retries). No internet.
source "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || PY=$PYTHON_TORCH
FX=$TEST_TMP/fixtures
D=$TEST_TMP/data
"$PY" "$top_srcdir/tests/tools/make_data_fixtures.py" "$FX"

# nothing_left DIR: no dataset and no temporary file in DIR.
nothing_left() {
    if ls "$1"/*.h5 "$1"/.*.partial >/dev/null 2>&1; then
        echo "  files left in $1:" >&2
        ls -la "$1" >&2
        return 1
    fi
}

# one_error_line OUT: exactly one error line and no warnings (progress
# lines may precede it).
one_error_line() {
    local n
    n=$(grep -ciE "error|warn" "$1")
    if [ "$n" != 1 ]; then
        echo "  expected one line, got $n:" >&2
        sed 's/^/  | /' "$1" >&2
        return 1
    fi
}

# icsparse-shard starts MPI: in a sanitizer build, Open MPI's dlopen'ed
# components and the CUDA/NCCL libraries linked in keep allocations that
# LeakSanitizer reports from unknown modules. Leak checking is off for these
# runs only; the shard writer and verifier are leak-checked by
# tests/unit/test_data (run without MPI).
shard() { ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$@"; }

# ---------------------------------------------------------------- Fashion-MNIST, shards
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    check "convert fashion-mnist from the Debian package" \
        expect_exit 0 "$TEST_TMP/fm.out" icsparse-convert -d "$D" fashion-mnist
    check "it says what it wrote" contains "$TEST_TMP/fm.out" "wrote .*/fashion-mnist.h5: 60000 train \+ 10000 test images 28x28x1, 10 classes"
    check "shard on 1 rank" expect_exit 0 "$TEST_TMP/s1.out" \
        shard "$MPIRUN" -n 1 icsparse-shard -d "$D" -o "$D/shards1" -n 4 "$D/fashion-mnist.h5"
    check "shard on 2 ranks" expect_exit 0 "$TEST_TMP/s2.out" \
        shard "$MPIRUN" -n 2 --oversubscribe icsparse-shard -d "$D" -o "$D/shards2" -n 4 "$D/fashion-mnist.h5"
    same_shards() {
        for f in "$D"/shards1/*; do cmp "$f" "$D/shards2/$(basename "$f")" || return 1; done
        [ "$(ls "$D/shards1" | wc -l)" = 5 ]
    }
    check "shards are byte-identical on 1 and 2 ranks" same_shards
    check "manifest counts the 54000 train rows" contains "$D/shards2/manifest.json" '"totals": \{"train": 54000, "val": 6000, "test": 10000\}'
    check "verify passes" expect_exit 0 "$TEST_TMP/v.out" shard icsparse-shard -o "$D/shards2" --verify
    printf '\x01\x02' | dd of="$D/shards2/part-00001-of-00004.h5" bs=1 seek=3000000 conv=notrunc 2>/dev/null
    check "verify catches a changed shard" expect_exit 1 "$TEST_TMP/v2.out" shard icsparse-shard -o "$D/shards2" --verify
    check "naming the shard" contains "$TEST_TMP/v2.out" 'manifest.json: line [0-9]+ does not match the shards: .*part-00001-of-00004.h5'
    check "shard refuses a shard as input" expect_exit 1 "$TEST_TMP/s3.out" \
        shard icsparse-shard -o "$D/x" "$D/shards1/part-00000-of-00004.h5"
    check "with one clear line" contains "$TEST_TMP/s3.out" "is already a shard; shard the dataset it came from"
else
    echo "SKIP: Fashion-MNIST (Debian package dataset-fashion-mnist) not installed"
fi

# ---------------------------------------------------------------- other formats
check "convert an IDX directory" expect_exit 0 "$TEST_TMP/idx.out" \
    icsparse-convert --source "$FX/idx" --format idx -o "$D/idx.h5" --val-fraction 0.5 mine
check "  60 train rows, 30 to val" contains "$TEST_TMP/idx.out" "60 train \+ 20 test images 5x4x1"
check "convert CIFAR-10 from its .tar.gz" expect_exit 0 "$TEST_TMP/c10.out" \
    icsparse-convert --source "$FX/cifar-10-binary.tar.gz" -o "$D/c10.h5" cifar10
check "  40 train + 6 test 32x32x3" contains "$TEST_TMP/c10.out" "40 train \+ 6 test images 32x32x3, 10 classes"
check "convert CIFAR-100" expect_exit 0 "$TEST_TMP/c100.out" \
    icsparse-convert --source "$FX/cifar-100-binary.tar.gz" -o "$D/c100.h5" --compress 6 cifar100
check "  100 classes" contains "$TEST_TMP/c100.out" "30 train \+ 10 test images 32x32x3, 100 classes"
cp "$FX/folders.tgz" "$TEST_TMP/folders.tgz"
check "convert an image-folder archive" expect_exit 0 "$TEST_TMP/fo.out" \
    icsparse-convert --source "$TEST_TMP/folders.tgz" --format folder --image-size 8 -o "$D/mini.h5" mini
check "  10 train + 4 test 8x8x3, 2 classes" contains "$TEST_TMP/fo.out" "10 train \+ 4 test images 8x8x3, 2 classes"
check "  extracted beside the archive" test -f "$TEST_TMP/folders.tgz.d/mini/train/dog/004.png"
check "folders need an image size" expect_exit 2 "$TEST_TMP/fo2.out" \
    icsparse-convert --source "$TEST_TMP/folders.tgz" --format folder -o "$D/mini2.h5" mini
check "  saying so" contains "$TEST_TMP/fo2.out" "image folders need an image size \(--image-size N\)"
check "--info describes a dataset" expect_exit 0 "$TEST_TMP/info.out" icsparse-convert --info "$D/c100.h5"
check "  with its counts (one row per class: none goes to val)" contains "$TEST_TMP/info.out" "^train +30$"
check "  and classes" contains "$TEST_TMP/info.out" "^classes: +100: fine0, fine1,"
check "--info refuses a non-dataset" expect_exit 1 "$TEST_TMP/info2.out" icsparse-convert --info "$FX/not-a-tar.tar.gz"
check "  in one line" one_error_line "$TEST_TMP/info2.out"
check "shard CIFAR-10 into more shards than val rows" expect_exit 0 "$TEST_TMP/c10s.out" \
    shard "$MPIRUN" -n 2 --oversubscribe icsparse-shard -o "$D/c10-shards" -n 7 "$D/c10.h5"
check "  and verify it" expect_exit 0 "$TEST_TMP/c10v.out" shard icsparse-shard -o "$D/c10-shards" --verify
check "--info describes a shard" expect_exit 0 "$TEST_TMP/info3.out" icsparse-convert --info "$D/c10-shards/part-00006-of-00007.h5"
check "  as shard 6 of 7" contains "$TEST_TMP/info3.out" "^shard: +6 of 7, seed 1234$"

# ---------------------------------------------------------------- bad input
mkdir -p "$TEST_TMP/bad"
bad() { # NAME EXIT PATTERN ARGS...
    local name=$1 code=$2 pattern=$3
    shift 3
    check "$name: exit $code" expect_exit "$code" "$TEST_TMP/bad.out" icsparse-convert -o "$TEST_TMP/bad/out.h5" "$@"
    check "$name: one error line" one_error_line "$TEST_TMP/bad.out"
    check "$name: says why" contains "$TEST_TMP/bad.out" "$pattern"
    check "$name: nothing left" nothing_left "$TEST_TMP/bad"
}
bad "IDX wrong magic" 1 "bad magic number 0x00000801 \(want 0x00000803" --source "$FX/idx-bad-magic" --format idx x
bad "IDX truncated" 1 "truncated while reading the images" --source "$FX/idx-truncated" --format idx x
bad "IDX label out of range" 1 "label 12 at index 7 is out of range 0..9" --source "$FX/idx-bad-label" --format idx x
bad "CIFAR truncated batch" 1 "not a whole number of 3073-byte records" --source "$FX/cifar10-truncated.tar.gz" cifar10
bad "CIFAR label out of range" 1 "label 10 of record 3 is out of range 0..9" --source "$FX/cifar10-bad-label.tar.gz" cifar10
bad "not a tar archive" 1 "not a tar archive or damaged" --source "$FX/not-a-tar.tar.gz" cifar10
bad "archive escaping its directory" 1 "would escape the target directory; refused" --source "$FX/escape.tar.gz" --format folder x
bad "unknown dataset" 2 "unknown dataset 'nosuch' \(see --list\)" nosuch
bad "unknown format" 2 "unknown --format 'zip'" --source "$FX/idx" --format zip x
bad "missing source" 1 "cifar10: source not found \(looked in .*/downloads/cifar10\); run with --download" -d "$TEST_TMP/empty" cifar10
check "shard refuses a non-HDF5 file" expect_exit 1 "$TEST_TMP/h.out" shard icsparse-shard -o "$TEST_TMP/x" "$FX/not-a-tar.tar.gz"
check "  one line: not an HDF5 file" contains "$TEST_TMP/h.out" "not-a-tar.tar.gz: not an HDF5 file"

# ---------------------------------------------------------------- downloads
SERVE=$TEST_TMP/serve
mkdir -p "$SERVE"
cp "$FX/cifar-10-binary.tar.gz" "$SERVE/"
SHA=$(sha256sum "$SERVE/cifar-10-binary.tar.gz" | cut -d' ' -f1)
start_server() { # extra args for the server
    rm -f "$TEST_TMP/port"
    "$PY" "$top_srcdir/tests/tools/http_range_server.py" "$SERVE" "$TEST_TMP/port" "$@" 2>"$TEST_TMP/server.log" &
    SERVER_PID=$!
    for _ in $(seq 50); do [ -s "$TEST_TMP/port" ] && break; sleep 0.1; done
    export ICSPARSE_DOWNLOAD_BASE="http://127.0.0.1:$(cat "$TEST_TMP/port")"
}
stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
start_server
trap 'stop_server; rm -rf "$TEST_TMP"' EXIT
check "download refuses without a digest to check" expect_exit 2 "$TEST_TMP/d0.out" \
    icsparse-convert -d "$TEST_TMP/dl0" --download cifar10
check "  saying so" contains "$TEST_TMP/d0.out" "no SHA-256 to verify it against; pass --sha256"
check "download with a wrong digest is refused" expect_exit 1 "$TEST_TMP/d1.out" \
    icsparse-convert -d "$TEST_TMP/dl1" --download --sha256 "$(printf '%064d' 0)" cifar10
check "  as a mismatch" contains "$TEST_TMP/d1.out" "SHA-256 mismatch: got $SHA, expected 0{64}; refused and removed"
check "  and nothing kept" nothing_left "$TEST_TMP/dl1/downloads/cifar10"
check "  (not even the part file)" test ! -e "$TEST_TMP/dl1/downloads/cifar10/cifar-10-binary.tar.gz.part"
check "download, verify and convert" expect_exit 0 "$TEST_TMP/d2.out" \
    icsparse-convert -d "$TEST_TMP/dl2" --download --sha256 "$SHA" cifar10
check "  converted" contains "$TEST_TMP/d2.out" "wrote .*/dl2/cifar10.h5: 40 train"
check "  archive kept under its name" cmp "$TEST_TMP/dl2/downloads/cifar10/cifar-10-binary.tar.gz" "$SERVE/cifar-10-binary.tar.gz"
# Resume: half of the file is already there.
mkdir -p "$TEST_TMP/dl3/downloads/cifar10"
head -c 70000 "$SERVE/cifar-10-binary.tar.gz" >"$TEST_TMP/dl3/downloads/cifar10/cifar-10-binary.tar.gz.part"
check "resume a partial download" expect_exit 0 "$TEST_TMP/d3.out" \
    icsparse-convert -d "$TEST_TMP/dl3" --download --sha256 "$SHA" cifar10
check "  with a Range request" contains "$TEST_TMP/server.log" "range=bytes=70000-"
check "  and the same bytes" cmp "$TEST_TMP/dl3/downloads/cifar10/cifar-10-binary.tar.gz" "$SERVE/cifar-10-binary.tar.gz"
stop_server
# Retries: the server fails the first request.
start_server --fail-first 1
check "retry after server errors" expect_exit 0 "$TEST_TMP/d4.out" \
    icsparse-convert -d "$TEST_TMP/dl4" --download --sha256 "$SHA" cifar10
check "  telling about the retries" contains "$TEST_TMP/d4.out" "WARN .*503.*retrying in 1 s"
if [ ! -d /usr/share/datasets/mnist ]; then # a local MNIST would be used instead
    check "no download without pinned digests for multi-file datasets" expect_exit 2 "$TEST_TMP/d6.out" \
        icsparse-convert -d "$TEST_TMP/dl6" --download --sha256 "$SHA" mnist
    check "  saying what to do" contains "$TEST_TMP/d6.out" "mnist: no SHA-256 is pinned for its 4 files, so they are not downloaded; fetch them yourself and give --source"
fi
check "missing file: 404 is not retried" expect_exit 1 "$TEST_TMP/d5.out" \
    icsparse-convert -d "$TEST_TMP/dl5" --download --sha256 "$SHA" cifar100
check "  saying so" contains "$TEST_TMP/d5.out" "cifar-100-binary.tar.gz: download failed: .*404.*\(not retried\)"
stop_server
finish
