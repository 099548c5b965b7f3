#!/bin/bash
# Sparsification accuracy on the whole of Fashion-MNIST (Debian's
# dataset-fashion-mnist), small CNN, 2 MPI ranks, as two staged jobs the
# way the pipeline runs them:
#   dense   conf/fashion-mnist.cfg as shipped, 5 epochs;
#   stage 0 from the dense weights, global magnitude pruning to 90% over
#           3 epochs (cubic) and 7 more epochs of fine-tuning (cosine lr
#           0.05 -> 0.0005 over the 10);
#   stage 1 composed after it: 1 epoch of quantization-aware training.
# The pruned model must stay within 1.0 point of the dense test top-1 and
# the QAT model within a further 0.5 point (test top-1 from each job's
# results.json); the sparsity must be 90%.
#
# Time: 16 epochs of training, about 8 min of wall time on 2 free cores.
# Measured here (docs/SPARSIFICATION.md, "Accuracy"): dense 92.27%, pruned
# 91.67% (-0.60), QAT 91.72%. Shorter fine-tuning misses the bar: with 5
# epochs of stage 0 91.18% (-1.09), with 8 91.44% (-0.83).
# Skipped in sanitizer builds (like test_accuracy.sh) unless
# ICSPARSE_ACCURACY_UNDER_SANITIZERS=1; a missing dataset package FAILs.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

needs_fashion_mnist 16
src=$fmnist_src

out=$TEST_TMP/out
data=$TEST_TMP/data
check "convert Fashion-MNIST" expect_exit 0 "$out" icsparse-convert -d "$data" --source "$src" fashion-mnist
check "shard it on 2 ranks" expect_exit 0 "$out" "$MPIRUN" --oversubscribe -np 2 icsparse-shard -d "$data"

cat >"$TEST_TMP/prune.yaml" <<'YAML'
version: 1.1.0
num_epochs: 10.0
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
  - !LearningRateFunctionModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
    lr_func: cosine
    init_lr: 0.05
    final_lr: 0.0005
pruning_modifiers:
  - !GlobalMagnitudePruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: 0.9
    start_epoch: 0.0
    end_epoch: 3.0
    update_frequency: 0.25
    inter_func: cubic
YAML
cat >"$TEST_TMP/quant.yaml" <<'YAML'
version: 1.1.0
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 1.0
  - !SetLearningRateModifier
    start_epoch: 0.0
    learning_rate: 0.0005
quantization_modifiers:
  - !QuantizationModifier
    start_epoch: 0.0
    freeze_bn_stats_epoch: 0.5
    disable_quantization_observer_epoch: 0.75
YAML

train() {
    "$MPIRUN" --oversubscribe -np 2 icsparse-train --config "$top_srcdir/conf/fashion-mnist.cfg" \
        --set data.dir="$data" --set log.progress=lines --set log.every_steps=211 "$@"
}
top1() { sed -n 's/.*"test_top1": \([0-9.]*\).*/\1/p' "$1/results.json"; }

start=$(date +%s)
check "dense: 5 epochs" expect_exit 0 "$out" train --run-dir "$TEST_TMP/dense"
dense=$(top1 "$TEST_TMP/dense")
check "stage 0: prune the dense model to 90%" expect_exit 0 "$out" train --run-dir "$TEST_TMP/sparse" \
    --init-from "$TEST_TMP/dense/ckpt/last.h5" --recipe "$TEST_TMP/prune.yaml"
pruned=$(top1 "$TEST_TMP/sparse")
check "90% sparse" contains "$out" 'sparsity at epoch 10.0000: overall 0.9000'
check "compose stage 1" expect_exit 0 "$out" icsparse-compose --base "$TEST_TMP/prune.yaml" \
    --next "$TEST_TMP/quant.yaml" -o "$TEST_TMP/staged.yaml"
check "stage 1: quantization-aware training" expect_exit 0 "$out" train --run-dir "$TEST_TMP/sparse" \
    --recipe "$TEST_TMP/staged.yaml" --set recipe.stage=1
quantized=$(top1 "$TEST_TMP/sparse")
check "QAT ran on the pruned model" contains "$out" 'quantization-aware training starts at epoch 10.0000'
echo "training took $(($(date +%s) - start)) s: test top-1 dense $dense%, pruned 90% $pruned%, + QAT $quantized%"
check "pruned 90% within 1.0 point of dense ($pruned% vs $dense%)" \
    awk -v d="$dense" -v p="$pruned" 'BEGIN{exit !(d != "" && p != "" && p >= d - 1.0)}'
check "QAT within a further 0.5 point ($quantized% vs $pruned%)" \
    awk -v p="$pruned" -v q="$quantized" 'BEGIN{exit !(p != "" && q != "" && q >= p - 0.5)}'
finish
