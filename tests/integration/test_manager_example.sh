#!/bin/bash
# examples/manager_loop: the manager's C API in a user's own training loop
# (own SGD, lr from the recipe). With tests/fixtures/manager/example.yaml
# every pruned layer ends at exactly 75% zeros, the lr decays linearly and
# the loss goes down; without a recipe the model stays dense; a bad recipe
# path is reported.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

example=$top_builddir/examples/manager_loop
out=$TEST_TMP/out.txt

expect_exit 0 "$out" "$example" "$top_srcdir/tests/fixtures/manager/example.yaml"
check "four epochs" test "$(grep -c '^epoch ' "$out")" -eq 4
check "lr at epoch 0 end" grep -q '^epoch 0 lr 0.040156 ' "$out"
check "dense before pruning" grep -q '^epoch 0 .* sparsity 0.0000$' "$out"
check "final sparsity of each layer" test "$(grep -c '^final .*weight 0.7500$' "$out")" -eq 3
check "final overall" grep -q '^final overall 0.7500$' "$out"
first=$(awk '/^epoch 0 /{print $6}' "$out")
last=$(awk '/^epoch 3 /{print $6}' "$out")
check "loss goes down" awk -v a="$first" -v b="$last" 'BEGIN{exit !(b < a)}'

expect_exit 0 "$out" "$example"
check "no recipe: three dense epochs" test "$(grep -c 'sparsity 0.0000$' "$out")" -eq 3

expect_exit 1 "$out" "$example" "$TEST_TMP/missing.yaml"
check "missing recipe reported" grep -q 'manager_loop: loading the recipe: ' "$out"
finish
