# src/train/trainer.mk: the training loop, evaluation, checkpoints and
# resume, preemption, progress (the lead's part of src/train).
libicsparse_la_SOURCES += src/train/trainer.c src/train/train_loop.c src/train/train_state.c \
	src/train/train_data.c src/train/train_progress.c src/train/evaluate.c src/train/preempt.c \
	src/train/eval_run.c
noinst_HEADERS += src/train/trainer_internal.h src/train/evaluate.h src/train/preempt.h src/train/eval_run.h
pkginclude_HEADERS += include/icsparse/trainer.h
TESTS += tests/integration/test_train.sh
dist_noinst_SCRIPTS += tests/integration/test_train.sh tests/tools/idx_subset.py
TESTS += tests/integration/test_data_parallel.sh
dist_noinst_SCRIPTS += tests/integration/test_data_parallel.sh
TESTS += tests/integration/test_train_recipe.sh
dist_noinst_SCRIPTS += tests/integration/test_train_recipe.sh
