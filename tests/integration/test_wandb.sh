#!/bin/bash
# tools/wandb-bridge: an icsparse run's metrics.jsonl replayed into a W&B
# offline run (WANDB_MODE=offline, everything under the test's temp dir, no
# network), after the job and live (--follow). The offline run is read
# back from its .wandb file (W&B's record log, decoded with wandb's own
# protobuf classes): every step and value equals metrics.jsonl, config
# and recipe attached, the run closed; `wandb sync --dry-run` finds the
# run. Then icsparse-train with log.wandb = true, which runs the bridge
# itself, and its warnings when it cannot.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

out=$TEST_TMP/out
# icsparse-train starts MPI, whose plugins (NCCL in CUDA builds) leave
# allocations LeakSanitizer reports; this test is about the bridge.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
PY=$PYTHON_TORCH
if ! "$PY" -c 'import wandb' 2>/dev/null; then
    echo "test_wandb: \$PYTHON_TORCH cannot import wandb: skipped"
    exit 77
fi
WANDB_BIN=$(dirname "$PY")/wandb
export WANDB_MODE=offline WANDB_SILENT=true WANDB_DIR=$TEST_TMP/wandb-dir WANDB_CONFIG_DIR=$TEST_TMP/wandb-config \
    WANDB_CACHE_DIR=$TEST_TMP/wandb-cache WANDB_DATA_DIR=$TEST_TMP/wandb-data WANDB_DISABLE_CODE=true
mkdir -p "$WANDB_DIR"
bridge() { "$PY" "$top_srcdir/tools/wandb-bridge" "$@"; }

# A real run: 2 epochs, a line per optimizer step.
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 256 64
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet
cat >"$TEST_TMP/job.cfg" <<CFG
model = { arch = "simple_cnn"; };
optim = { lr = 0.05; momentum = 0.9; };
log = { every_steps = 1; };
CFG
printf 'modifiers:\n  - !EpochRangeModifier\n    end_epoch: 2.0\n' >"$TEST_TMP/recipe.yaml"
icsparse-train --config "$TEST_TMP/job.cfg" --set data.path="$TEST_TMP/fm.h5" --run-dir "$TEST_TMP/run" --epochs 2 \
    --batch-size 64 --threads 1 --set train.test_at_end=false --quiet

# read_back WANDB_DIR METRICS: decodes the single offline run under
# WANDB_DIR and compares its history with METRICS (a metrics.jsonl).
cat >"$TEST_TMP/read_back.py" <<'PY'
import glob, json, struct, sys, zlib
from wandb.proto import wandb_internal_pb2 as pb

def records(path):
    """W&B's record log: a 7-byte header (':W&B', 0xBEE1, version 0), then
    LevelDB-log chunks in 32 KiB blocks (checksum, length, type; W&B's
    checksum is the plain CRC-32 of type byte + payload, where LevelDB
    has a masked CRC-32C)."""
    data = open(path, "rb").read()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0), data[:7]
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        assert crc == zlib.crc32(bytes([kind]) + chunk), "bad checksum at %d" % pos
        pos += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            yield buf + chunk
            buf = b""

runs = glob.glob(sys.argv[1] + "/wandb/offline-run-*/run-*.wandb")
assert len(runs) == 1, runs
def key(item):
    return item.key or "/".join(item.nested_key)

history, config, finished = [], {}, False
for raw in records(runs[0]):
    r = pb.Record()
    r.ParseFromString(raw)
    kind = r.WhichOneof("record_type")
    finished = finished or kind == "exit"
    if kind == "history":
        history.append((r.history.step.num, {key(i): json.loads(i.value_json) for i in r.history.item
                                             if not key(i).startswith("_")}))
    elif kind == "run":
        config = {key(i): json.loads(i.value_json) for i in r.run.config.update}
# the exit record is written by run.finish(): the run was closed, not cut off
assert finished, "no exit record: the run was not finished"
want = []
for line in open(sys.argv[2]):
    d = json.loads(line)
    if want and d["step"] <= want[-1][0]:
        continue
    want.append((d.pop("step"), d))
assert len(history) == len(want), (len(history), len(want))
for (gs, gv), (ws, wv) in zip(history, want):
    assert gs == ws, (gs, ws)
    assert gv == wv, (gs, gv, wv)
print("steps", [s for s, _ in history])
# KEY=VALUE: config[KEY] is exactly VALUE; KEY~TEXT: it contains TEXT
for k in sys.argv[3:]:
    exact = "=" in k and ("~" not in k or k.index("=") < k.index("~"))
    name, value = k.split("=" if exact else "~", 1)
    v = config.get(name)
    v = v.get("value") if isinstance(v, dict) else v
    assert (str(v) == value) if exact else (value in str(v)), (name, v, value)
print("history and config equal")
PY

# 1. After the job.
check "replay after the job" expect_exit 0 "$out" bridge --run-dir "$TEST_TMP/run" --config "$TEST_TMP/job.cfg" \
    --recipe "$TEST_TMP/recipe.yaml" --project icsparse-test
check "count reported" contains "$out" 'wandb-bridge: 8 steps logged'
check "offline run read back: steps, values, config, recipe" expect_exit 0 "$out" "$PY" "$TEST_TMP/read_back.py" \
    "$WANDB_DIR" "$TEST_TMP/run/metrics.jsonl" optim.lr=0.05 model.arch=simple_cnn log.every_steps=1 \
    'icsparse/recipe~!EpochRangeModifier'
check "all 8 optimizer steps" contains "$out" 'steps \[1, 2, 3, 4, 5, 6, 7, 8\]'
check "config and recipe files attached" bash -c "ls $WANDB_DIR/wandb/offline-run-*/files/job.cfg $WANDB_DIR/wandb/offline-run-*/files/recipe.yaml"
check "wandb sync --dry-run finds it" expect_exit 0 "$out" "$WANDB_BIN" sync --dry-run "$WANDB_DIR"/wandb/offline-run-*
check "one run to sync" contains "$out" 'Would sync 1 run'

# 2. Live: a writer appends the run's lines one by one (a line split in
# two writes) while the bridge follows it; the bridge stops when the
# writer's process has gone.
export WANDB_DIR=$TEST_TMP/wandb-live
mkdir -p "$WANDB_DIR" "$TEST_TMP/live"
( while IFS= read -r line; do
      printf '%s' "${line:0:20}" >>"$TEST_TMP/live/metrics.jsonl"
      sleep 0.2
      printf '%s\n' "${line:20}" >>"$TEST_TMP/live/metrics.jsonl"
  done <"$TEST_TMP/run/metrics.jsonl"; sleep 0.5 ) &
writer=$!
check "--follow --pid while the writer runs" expect_exit 0 "$out" bridge --run-dir "$TEST_TMP/live" --follow --pid $writer --poll 0.1
wait $writer
check "live run read back" expect_exit 0 "$out" "$PY" "$TEST_TMP/read_back.py" "$WANDB_DIR" "$TEST_TMP/run/metrics.jsonl"

# 3. --follow ended by SIGTERM; a resumed run's repeated steps skipped.
export WANDB_DIR=$TEST_TMP/wandb-term
mkdir -p "$WANDB_DIR" "$TEST_TMP/term"
{ head -n 5 "$TEST_TMP/run/metrics.jsonl"; sed -n '4,8p' "$TEST_TMP/run/metrics.jsonl"; } >"$TEST_TMP/term/metrics.jsonl"
"$PY" "$top_srcdir/tools/wandb-bridge" --run-dir "$TEST_TMP/term" --follow --poll 0.1 >"$out" 2>&1 &
pid=$!
sleep 6
kill -TERM $pid
check "SIGTERM ends --follow cleanly" wait $pid
check "repeated steps counted" contains "$out" '8 steps logged \(2 repeated steps skipped\)'
check "terminated run read back" expect_exit 0 "$out" "$PY" "$TEST_TMP/read_back.py" "$WANDB_DIR" "$TEST_TMP/term/metrics.jsonl"

# 4. icsparse-train with log.wandb = true runs the bridge itself (rank 0
# only: one offline run from 2 ranks) and waits for it at the end, so the
# offline run is complete, with every step of metrics.jsonl and the
# effective configuration, as soon as the job has ended.
export WANDB_DIR=$TEST_TMP/wandb-train
mkdir -p "$WANDB_DIR"
train_wandb() {
    "$MPIRUN" -n 2 --oversubscribe icsparse-train --config "$TEST_TMP/job.cfg" --set data.path="$TEST_TMP/fm.h5" \
        --run-dir "$TEST_TMP/$1" --epochs 2 --batch-size 32 --threads 1 --set train.test_at_end=false \
        --set log.wandb=true --set log.wandb_project=icsparse-train-test "${@:2}"
}
check "training with log.wandb=true" expect_exit 0 "$out" train_wandb trained
check "the trainer started the bridge" contains "$out" 'log.wandb: wandb-bridge \(pid [0-9]+\) follows .*trained/metrics.jsonl'
check "the bridge finished before the job ended" contains "$out" 'wandb-bridge: 8 steps logged'
check "its offline run equals metrics.jsonl, with the effective configuration" expect_exit 0 "$out" "$PY" \
    "$TEST_TMP/read_back.py" "$WANDB_DIR" "$TEST_TMP/trained/metrics.jsonl" optim.lr=0.05 train.batch_size=32 \
    log.wandb=True 'icsparse/run_dir~trained'
check "the configuration file is attached" bash -c "ls $WANDB_DIR/wandb/offline-run-*/files/wandb-config.cfg"
check "wandb sync --dry-run finds the trainer's run" expect_exit 0 "$out" "$WANDB_BIN" sync --dry-run "$WANDB_DIR"/wandb/offline-run-*
check "one run to sync" contains "$out" 'Would sync 1 run'
# Without the bridge or a Python with wandb: one warning, training goes on.
check "no Python with wandb: trains" expect_exit 0 "$out" env ICSPARSE_WANDB_PYTHON=/nonexistent/python \
    "$MPIRUN" -n 2 --oversubscribe icsparse-train --config "$TEST_TMP/job.cfg" --set data.path="$TEST_TMP/fm.h5" \
    --run-dir "$TEST_TMP/nopython" --epochs 1 --threads 1 --set train.test_at_end=false --set log.wandb=true
check "  one warning" bash -c "[ \$(grep -c 'log.wandb' '$out') = 1 ] &&
    grep -q 'WARN  log.wandb: ICSPARSE_WANDB_PYTHON=/nonexistent/python cannot import wandb: no W&B run, training continues' '$out'"
check "  and results" test -s "$TEST_TMP/nopython/results.json"
check "no bridge: trains, one warning" expect_exit 0 "$out" env ICSPARSE_WANDB_BRIDGE=/nonexistent/wandb-bridge \
    icsparse-train --config "$TEST_TMP/job.cfg" --set data.path="$TEST_TMP/fm.h5" --run-dir "$TEST_TMP/nobridge" \
    --epochs 1 --threads 1 --set train.test_at_end=false --set log.wandb=true
check "  named" contains "$out" 'WARN  log.wandb: ICSPARSE_WANDB_BRIDGE=/nonexistent/wandb-bridge cannot be read'
check "log.wandb without log.jsonl: one warning" expect_exit 0 "$out" icsparse-train --config "$TEST_TMP/job.cfg" \
    --set data.path="$TEST_TMP/fm.h5" --run-dir "$TEST_TMP/nojsonl" --epochs 1 --threads 1 \
    --set train.test_at_end=false --set log.wandb=true --set log.jsonl=false
check "  said so" contains "$out" 'WARN  log.wandb needs log.jsonl = true'
check "  no offline run written" test ! -e "$TEST_TMP/nojsonl/wandb"

# 5. Refusals.
check "no metrics.jsonl: exit 1" expect_exit 1 "$out" bridge --run-dir "$TEST_TMP/nowhere"
check "named" contains "$out" 'nowhere/metrics.jsonl does not exist'
mkdir -p "$TEST_TMP/bad" && printf '{"step": 1, "a": 1}\n{oops\n' >"$TEST_TMP/bad/metrics.jsonl"
check "bad line: exit 1" expect_exit 1 "$out" bridge --run-dir "$TEST_TMP/bad"
check "line named" contains "$out" 'bad/metrics.jsonl line 2: not a metrics record'
if ! python3 -c 'import wandb' 2>/dev/null; then
    check "without wandb: exit 3" expect_exit 3 "$out" python3 "$top_srcdir/tools/wandb-bridge" --run-dir "$TEST_TMP/run"
    check "said so" contains "$out" 'the wandb package cannot be imported'
fi
finish
