# shellcheck shell=bash
# tests/integration/test_jobs_stubs.sh: sourced by the jobs tests. Checks
# the outputs of the real executables (real_outputs), and writes
# stand-ins for the icsparse executables into a directory, to test the job
# machinery (order, arguments, dependencies, requeue, staging, logs) apart
# from the real executables, which the tests also run where they exist.
# Each stub appends "NAME RANK ARGS..." to $STUB_LOG and behaves as:
#   STUB_NOTIMPL=NAME   that executable answers "not implemented yet" (exit 2)
#   STUB_TEMPFAIL=once  icsparse-train exits 75 on its first run in a run
#                       directory (without train.resume)
#   STUB_TEMPFAIL=usr1  the same, but it waits for USR1 first
#   STUB_SHARDS=DIR     icsparse-shard writes two shard files there
# They write what the steps after them look for: RUN/ckpt/last.h5,
# RUN/recipes/stage-N.yaml (compose -o), RUN/model.h5, RUN/results.json
# (sparsity = the final_sparsity of recipe.args, else 0.8; test_top1 =
# 90 - 10 * sparsity), RUN/export/model.onnx.

# make_stubs DIR: writes the seven stand-ins into DIR.
make_stubs() {
    local dir=$1 name
    mkdir -p "$dir"
    for name in convert shard train compose consolidate eval export; do
        cat >"$dir/icsparse-$name" <<'STUB'
#!/bin/bash
set -euo pipefail
name=$(basename "$0")
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}}
echo "$name $rank $*" >>"${STUB_LOG:?}"
run="" out="" resume=0 shards="" sparsity=0.8
while [ $# -gt 0 ]; do
    case $1 in
        --set)
            case $2 in
                run.dir=*) run=${2#run.dir=}; run=${run//\"/} ;;
                train.resume=*) resume=1 ;;
                data.shards_dir=*) shards=${2#data.shards_dir=}; shards=${shards//\"/} ;;
                recipe.args=*) sparsity=$(sed -n 's/.*final_sparsity: \([0-9.]*\).*/\1/p' <<<"$2") ;;
            esac
            shift 2 ;;
        -o) out=$2; shift 2 ;;
        *) shift ;;
    esac
done
if [ "${STUB_NOTIMPL:-}" = "$name" ]; then
    echo "$name: error: not implemented yet" >&2
    exit 2
fi
[ "$rank" = 0 ] || exit 0
case $name in
    icsparse-shard)
        if [ -n "${STUB_SHARDS:-}" ]; then
            mkdir -p "$STUB_SHARDS"
            echo a >"$STUB_SHARDS/part-00000-of-00002.h5"
            echo b >"$STUB_SHARDS/part-00001-of-00002.h5"
        fi ;;
    icsparse-train)
        if [ -n "$shards" ]; then ls "$shards" >"$run/train-saw-shards.txt"; echo "$shards" >>"$run/train-saw-shards.txt"; fi
        # Once per run directory, on a run that is not resuming.
        if [ -n "${STUB_TEMPFAIL:-}" ] && [ "$resume" = 0 ] && [ ! -e "$run/train-tempfail" ]; then
            touch "$run/train-tempfail"
        else
            STUB_TEMPFAIL=""
        fi
        if [ "${STUB_TEMPFAIL:-}" = once ]; then exit 75; fi
        if [ "${STUB_TEMPFAIL:-}" = usr1 ]; then
            trap 'echo checkpoint >>"$run/train-usr1.txt"; exit 75' USR1
            echo waiting >"$run/train-waiting.txt"
            for _ in $(seq 600); do sleep 0.1; done
            exit 1
        fi
        mkdir -p "$run/ckpt" && echo ckpt >"$run/ckpt/last.h5" ;;
    icsparse-compose) echo composed >"$out" ;;
    icsparse-consolidate) echo model >"$run/model.h5" ;;
    icsparse-eval)
        echo "{\"test_top1\": $(awk -v s="$sparsity" 'BEGIN { print 90 - 10 * s }'), \"sparsity\": $sparsity}" \
            >"$run/results.json" ;;
    icsparse-export) mkdir -p "$run/export" && echo onnx >"$run/export/model.onnx" ;;
esac
STUB
        chmod +x "$dir/icsparse-$name"
    done
}

# make_recipes DIR: a flat prune recipe, a flat quantize recipe and one
# staged recipe with both, in DIR.
make_recipes() {
    local dir=$1
    mkdir -p "$dir"
    cat >"$dir/prune.yaml" <<'YAML'
num_epochs: 2
modifiers:
  - !EpochRangeModifier
    end_epoch: eval(num_epochs)
YAML
    cat >"$dir/quant.yaml" <<'YAML'
training_modifiers:
  - !EpochRangeModifier
    end_epoch: 1
quantization_modifiers:
  - !QuantizationModifier
    start_epoch: 0
YAML
    cat >"$dir/staged.yaml" <<'YAML'
version: 1.1.0
stage_0:
  num_epochs: 2
  stage_0_modifiers:
    - !EpochRangeModifier
      end_epoch: 2
stage_1:
  stage_1_modifiers:
    - !QuantizationModifier
      start_epoch: 2
YAML
}

# real_outputs RUN DATA_DIR: for each step of the real executables' run
# RUN that finished (RUN/steps.done, or COMPLETED in RUN/states when given
# as the third argument: "LABEL STATE" lines), its output exists.
real_outputs() {
    local run=$1 data=$2 states=${3:-} label done_steps
    if [ -n "$states" ]; then
        done_steps=$(awk '$2 == "COMPLETED" { print $1 }' "$states")
    else
        done_steps=$(sed -n 's/ done$//p' "$run/steps.done" 2>/dev/null || true)
    fi
    for label in $done_steps; do
        case $label in
            convert) [ -s "$data/fashion-mnist.h5" ] ;;
            shard) [ -s "$data/fashion-mnist-shards/manifest.json" ] ;;
            train-s0) [ -s "$run/ckpt/last.h5" ] && [ -s "$run/metrics.jsonl" ] ;;
            # the default pipeline's stage 1 quantizes: QAT checkpoints
            train-s1) [ -s "$run/ckpt/best_pruned_quantized.h5" ] &&
                h5dump -a /qat_active "$run/ckpt/last.h5" | grep -q '(0): 1' ;;
            compose-s1) grep -q '^stage_1:' "$run/recipes/stage-1.yaml" ;;
            consolidate) [ -s "$run/model.h5" ] ;;
            eval) [ -s "$run/results.json" ] ;;
            # int8: the pruned, quantized model as QDQ ONNX
            export) [ -s "$run/export/model.onnx" ] && grep -q QuantizeLinear "$run/export/model.onnx" ;;
        esac || { echo "  step $label finished but its output is missing" >&2; return 1; }
    done
}
