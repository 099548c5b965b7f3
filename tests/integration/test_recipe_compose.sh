#!/bin/bash
# icsparse-compose on real recipes: --explain (with recipe_args and a
# parameter list), staged composition written atomically and loaded again,
# and the errors a user meets (unmatched selector, bad recipe, bad output).
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

upstream="$top_srcdir/../shared/recipes/upstream"
if [ ! -d "$upstream" ]; then
    echo "SKIP: $upstream not found (shared/ beside the clone)"
    exit 77
fi
fixtures="$top_srcdir/tests/fixtures/recipes"
out=$TEST_TMP/out

# SparseML resnet50 parameter names (sections [3, 4, 6, 3], identity conv
# on each first block), as the upstream resnet50 recipes name them.
names=$TEST_TMP/resnet50-sparseml.txt
{
    echo "# name prunable"
    echo "input.conv.weight 1"
    echo "input.bn.weight 0"
    blocks=(3 4 6 3)
    for s in 0 1 2 3; do
        for ((b = 0; b < blocks[s]; b++)); do
            for c in 1 2 3; do
                echo "sections.$s.$b.conv$c.weight 1"
                echo "sections.$s.$b.bn$c.weight 0"
            done
            if [ "$b" = 0 ]; then echo "sections.$s.$b.identity.conv.weight 1"; fi
        done
    done
    echo "classifier.fc.weight 1"
    echo "classifier.fc.bias 0"
} >"$names"

r50="$upstream/resnet50-imagenet-pruned-moderate.yaml"
check "explain an upstream recipe" expect_exit 0 "$out" icsparse-compose --explain "$r50"
check "explain: max_epochs" contains "$out" '^max_epochs: 90$'
check "explain: evaluated alias" contains "$out" '^    final_sparsity: 0\.88$'
check "explain: epoch range" contains "$out" '^    epochs: from 0 to 40$'

check "explain with recipe_args" expect_exit 0 "$out" \
    icsparse-compose --explain "$r50" --recipe-args '{"num_epochs": 50, "final_sparsity": 0.9}'
check "recipe_args reach the aliases" contains "$out" '^max_epochs: 50$'
check "recipe_args reach the aliases (2)" contains "$out" '^    final_sparsity: 0\.9$'

check "explain with parameter names" expect_exit 0 "$out" \
    icsparse-compose --explain "$r50" --param-names "$names"
check "explain: selection count" contains "$out" '^    selects 52 of [0-9]+ parameters:$'
check "explain: a selected name" contains "$out" '^      sections\.3\.2\.conv3\.weight$'

check "every upstream recipe explains" bash -c "
    for f in '$upstream'/*.yaml; do icsparse-compose --explain \"\$f\" >/dev/null || exit 1; done"

printf 'conv1.weight 1\nfc.weight 1\nfc.bias 0\n' >"$TEST_TMP/torchvision.txt"
check "unmatched selector exits 2" expect_exit 2 "$out" \
    icsparse-compose --explain "$r50" --param-names "$TEST_TMP/torchvision.txt"
check "unmatched selector names it and its line" contains "$out" \
    "^icsparse-compose: error: .*resnet50-imagenet-pruned-moderate\.yaml: GMPruningModifier: line 38, column [0-9]+: params selector 'sections\.0\.0\.conv1\.weight' matches no parameter"
printf 'conv1.weight yes\n' >"$TEST_TMP/bad-names.txt"
check "bad parameter list exits 1" expect_exit 1 "$out" \
    icsparse-compose --explain "$r50" --param-names "$TEST_TMP/bad-names.txt"
check "bad parameter list: file and line" contains "$out" "bad-names\.txt:1: expected 'name prunable'"

check "undefined alias exits 1" expect_exit 1 "$out" \
    icsparse-compose --explain "$upstream/invalid/mobilenet-imagenet-pruned-quant-moderate.yaml"
check "undefined alias: name and line" contains "$out" \
    "mobilenet-imagenet-pruned-quant-moderate\.yaml:47:[0-9]+: undefined alias \*pruning_recovery_end_lr"
check "unknown modifier in .md front matter" expect_exit 1 "$out" \
    icsparse-compose --explain "$fixtures/frontmatter.md"
check "unknown modifier: line and column" contains "$out" "frontmatter\.md:9:5: unknown modifier !Bogus"
check "unknown recipe_args variable exits 2" expect_exit 2 "$out" \
    icsparse-compose --explain "$r50" --recipe-args '{"num_epoch": 3}'
acdc="$upstream/mobilenet-acdc-pruning.yaml"
tl="$upstream/classification-transfer-learn-pruned-quantized.yaml"
check "--arch resnet50: __ALL_PRUNABLE__" expect_exit 0 "$out" icsparse-compose --explain "$tl" --arch resnet50
check "--arch resnet50: 53 convs + fc of torchvision's 161 parameters" contains "$out" \
    '^    selects 54 of 161 parameters:$'
check "--arch resnet50: a downsample conv is prunable" contains "$out" '^      layer2\.0\.downsample\.0\.weight$'
# The AC/DC recipe was written for SparseML's mobilenet (classifier.fc.weight):
# re:.*.fc.weight needs a character before "fc", so torchvision's fc.weight
# does not match, here as upstream.
check "--arch resnet50: the AC/DC recipe's fc selector fails, exit 2" expect_exit 2 "$out" \
    icsparse-compose --explain "$acdc" --arch resnet50
check "--arch resnet50: names the selector and its line" contains "$out" \
    "line 27, column 28: params selector 're:\.\*\.fc\.weight' matches no parameter of the model \(161 parameters\)"
check "--arch unknown exits 2" expect_exit 2 "$out" icsparse-compose --explain "$acdc" --arch resnet5

check "--arch and --param-names together exit 2" expect_exit 2 "$out" \
    icsparse-compose --explain "$r50" --arch resnet50 --param-names "$names"
check "--arch and --param-names: message" contains "$out" "give --arch or --param-names, not both"
check "--explain with --base exits 2" expect_exit 2 "$out" icsparse-compose --explain "$r50" --base "$r50"
check "--explain with --base: message" contains "$out" "--explain does not go with --base/--next/-o"
check "missing parameter list exits 1" expect_exit 1 "$out" \
    icsparse-compose --explain "$r50" --param-names "$TEST_TMP/none.txt"
check "missing parameter list: message" contains "$out" "none\.txt: cannot open"
printf '# nothing\n' >"$TEST_TMP/empty.txt"
check "empty parameter list exits 1" expect_exit 1 "$out" \
    icsparse-compose --explain "$r50" --param-names "$TEST_TMP/empty.txt"
check "empty parameter list: message" contains "$out" "empty\.txt: no parameter names"
check "missing mode: message" bash -c "icsparse-compose 2>&1 | grep -q 'give --explain RECIPE, or --base A.yaml --next B.yaml -o OUT.yaml'"

composed=$TEST_TMP/composed.yaml
pq="$upstream/resnet50-imagenet-pruned-quant-moderate.yaml"
check "compose two upstream recipes" expect_exit 0 "$out" \
    icsparse-compose --base "$pq" --next "$upstream/mobilenet-acdc-pruning.yaml" -o "$composed"
check "composed: version line" contains "$composed" '^version: 1\.1\.0$'
check "composed: stage_1 shifted by 135" contains "$composed" '^      end_epoch: 220\.0$'
check "no temporary file left" bash -c "[ -z \"\$(ls '$TEST_TMP' | grep tmp)\" ]"
check "composed recipe explains" expect_exit 0 "$out" icsparse-compose --explain "$composed"
check "composed: max_epochs 235" contains "$out" '^max_epochs: 235$'
check "composed: two stages" contains "$out" '^layout: staged, 2 stages: stage_0 stage_1$'

again=$TEST_TMP/again.yaml
check "compose the composed recipe again" expect_exit 0 "$out" \
    icsparse-compose --base "$composed" --next "$r50" -o "$again"
check "a flat next after a staged base is stage_<n+1>" contains "$again" '^stage_3:$'
check "flat base + staged next" expect_exit 0 "$out" \
    icsparse-compose --base "$r50" --next "$fixtures/staged.yaml" -o "$TEST_TMP/3.yaml" \
    --recipe-args '{"num_epochs": 3}'
check "flat base + staged next: pre_<first stage>" contains "$TEST_TMP/3.yaml" '^pre_stage_0:$'
check "the next recipe got the recipe_args" contains "$TEST_TMP/3.yaml" '^      end_epoch: 93\.0$'
check "overlapping stage names are an error" expect_exit 2 "$out" \
    icsparse-compose --base "$composed" --next "$composed" -o "$TEST_TMP/x.yaml"
check "overlapping stage names: message" contains "$out" "must not share stage names; both have 'stage_0'"
check "unwritable output exits 1" expect_exit 1 "$out" \
    icsparse-compose --base "$pq" --next "$r50" -o "$TEST_TMP/no/such/dir/out.yaml"
mkdir "$TEST_TMP/adir"
check "output that is a directory exits 1" expect_exit 1 "$out" \
    icsparse-compose --base "$pq" --next "$r50" -o "$TEST_TMP/adir"
check "output that is a directory: message, temporary removed" bash -c \
    "grep -q 'cannot rename .*adir\.tmp\.[0-9]* to .*adir' '$out' && ! ls '$TEST_TMP' | grep -q 'adir\.tmp'"
check "missing mode exits 2" expect_exit 2 "$out" icsparse-compose --base "$pq"
finish
