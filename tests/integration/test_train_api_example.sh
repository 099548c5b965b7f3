#!/bin/bash
# examples/train_api: the trainer as a library in a user's own program
# (public headers only): it trains from a configuration built in code,
# writes the usual run directory, applies a recipe when given, and reports
# a bad dataset path as one line with a non-zero exit.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

example=$top_builddir/examples/train_api
out=$TEST_TMP/out.txt
python3 "$top_srcdir/tests/tools/idx_subset.py" "$TEST_TMP/idx" 1280 256
icsparse-convert --source "$TEST_TMP/idx" --format idx -o "$TEST_TMP/fm.h5" --quiet

check "dense run" expect_exit 0 "$out" "$example" "$TEST_TMP/fm.h5" "$TEST_TMP/dense"
check "two epochs of 18 steps" contains "$out" '^steps 36 epoch 2.00 '
top1=$(sed -n 's/.*test_top1 \([0-9.]*\) .*/\1/p' "$out")
check "it learned (test top-1 $top1% > 50%)" awk -v a="$top1" 'BEGIN{exit !(a > 50)}'
check "the run directory: checkpoint, metrics, results" test -s "$TEST_TMP/dense/ckpt/last.h5" \
    -a -s "$TEST_TMP/dense/metrics.jsonl" -a -s "$TEST_TMP/dense/results.json"
json_top1=$(sed -n 's/.*"test_top1": \([0-9.]*\).*/\1/p' "$TEST_TMP/dense/results.json")
check "results.json holds the same test figure ($json_top1)" awk -v a="$top1" -v b="$json_top1" \
    'BEGIN{d = a - b; exit !(b != "" && d < 0.01 && d > -0.01)}'

cat >"$TEST_TMP/prune.yaml" <<'YAML'
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 2.0
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: 0.5
    start_epoch: 0.0
    end_epoch: 1.0
    update_frequency: 0.5
YAML
check "with a recipe" expect_exit 0 "$out" "$example" "$TEST_TMP/fm.h5" "$TEST_TMP/pruned" "$TEST_TMP/prune.yaml"
check "the recipe's sparsity" contains "$out" 'sparsity 0\.5'
check "a missing dataset: one error line, exit 1" expect_exit 1 "$out" "$example" "$TEST_TMP/none.h5" "$TEST_TMP/x"
check "... naming the file" contains "$out" 'train_api: set-up: .*none.h5'
finish
