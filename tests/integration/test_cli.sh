#!/bin/bash
# CLI conventions, the same in every executable: --help lists every option
# with its default, --version names the build features, usage and
# configuration errors exit 2 with one line naming the key (and file:line),
# --print-config shows origins, errors under mpirun are printed once.
# shellcheck source=tests/lib.sh
source "$top_srcdir/tests/lib.sh"

apps=(icsparse-train icsparse-eval icsparse-export icsparse-consolidate
      icsparse-shard icsparse-compose icsparse-convert)
out=$TEST_TMP/out

for app in "${apps[@]}"; do
    if ! command -v "$app" >/dev/null; then
        fail "$app was not built"
        continue
    fi
    check "$app --help exits 0 and lists the common options" \
        expect_exit 0 "$out" "$app" --help
    check "$app --help shows defaults" contains "$out" '--set KEY=VALUE'
    check "$app --help names the exit codes" contains "$out" '2 usage or configuration error'
    check "$app --version lists build features" expect_exit 0 "$out" "$app" --version
    check "$app --version: CUDA, cuDNN, NCCL, BLAS" contains "$out" '^build features: CUDA (yes|no), cuDNN (yes|no), NCCL (yes|no), BLAS OpenBLAS'
    check "$app unknown option exits 2" expect_exit 2 "$out" "$app" --no-such-option
    check "$app unknown option message" contains "$out" "^$app: error: unknown option '--no-such-option'"
    check "$app --config without a value exits 2" expect_exit 2 "$out" "$app" --config
    check "$app bad --set exits 2" expect_exit 2 "$out" "$app" --set train.epochs=abc
    check "$app bad --set: one line naming the key" \
        bash -c "[ \"\$(wc -l < '$out')\" = 1 ] && grep -q \"^$app: error: --set train.epochs: 'abc' is not a number\" '$out'"
    check "$app --print-config exits 0" expect_exit 0 "$out" "$app" --print-config --set run.seed=3
    check "$app --print-config shows origins" contains "$out" 'seed = 3;  # --set'
done

# The issue's own examples.
check "optim.lr=abc fails with one line naming the key" \
    expect_exit 2 "$out" icsparse-train --set optim.lr=abc
check "optim.lr=abc: exactly one line" bash -c "[ \"\$(wc -l < '$out')\" = 1 ]"
check "optim.lr=abc: the line names optim.lr" contains "$out" "optim.lr"

cat >"$TEST_TMP/job.cfg" <<'CFG'
# a job file with a typo
train = {
  epochs = 2;
  batch_sise = 64;
};
CFG
check "misspelt key in a job file exits 2" expect_exit 2 "$out" icsparse-train --config "$TEST_TMP/job.cfg"
check "misspelt key: file:line and the right key" \
    contains "$out" "^icsparse-train: error: $TEST_TMP/job.cfg:4: unknown key 'train.batch_sise' \(did you mean 'train.batch_size'\?\)$"

# Layers: site < job < --set, with origins.
printf 'train = { epochs = 7; batch_size = 16; };\nslurm = { partition = "short"; };\n' >"$TEST_TMP/site.cfg"
printf 'train = {\n  epochs = 9;\n};\n' >"$TEST_TMP/run.cfg"
check "layers print" expect_exit 0 "$out" env ICSPARSE_SITE_CONFIG="$TEST_TMP/site.cfg" \
    icsparse-train --config "$TEST_TMP/run.cfg" --set train.batch_size=8 --print-config
check "job beats site" contains "$out" "epochs = 9.0;  # job $TEST_TMP/run.cfg:2"
check "--set beats site" contains "$out" "batch_size = 8;  # --set"
check "site beats default" contains "$out" "partition = \"short\";  # site $TEST_TMP/site.cfg:2"
check "option shorthand is a --set" expect_exit 0 "$out" icsparse-train --epochs 3 --print-config
check "shorthand value and origin" contains "$out" "epochs = 3.0;  # --set"
check "a missing site file named by the environment is an error" \
    expect_exit 2 "$out" env ICSPARSE_SITE_CONFIG="$TEST_TMP/nope.cfg" icsparse-train --print-config
check "missing site file message" contains "$out" "nope.cfg: cannot read configuration file"

# Under mpirun a configuration error is printed once, and every rank exits 2.
check "config error under mpirun exits non-zero" \
    bash -c "! $MPIRUN -n 2 --oversubscribe icsparse-train --set train.epochs=abc >'$out' 2>&1"
check "config error under mpirun printed once" \
    bash -c "[ \"\$(grep -c 'icsparse-train: error:' '$out')\" = 1 ]"

# conf/defaults.cfg is exactly what the schema prints, and every shipped
# example configuration loads.
check "conf/defaults.cfg matches the schema (make update-defaults)" \
    bash -c "icsparse-train --print-defaults | diff -u '$top_srcdir/conf/defaults.cfg' -"
# (run-sweep-*.cfg describe sweeps for jobs/submit-sweep, which checks them.)
for cfg in "$top_srcdir"/conf/*.cfg "$top_srcdir"/conf/site.cfg.example; do
    case "$cfg" in */run-sweep-*) continue ;; esac
    check "$(basename "$cfg") loads" expect_exit 0 "$out" icsparse-train --config "$cfg" --print-config
done
# and every shipped recipe loads and evaluates
for recipe in "$top_srcdir"/conf/*.yaml; do
    check "$(basename "$recipe") explains" expect_exit 0 "$out" icsparse-compose --explain "$recipe"
    check "$(basename "$recipe") has modifiers" contains "$out" '^modifiers: [1-9]'
done
finish
