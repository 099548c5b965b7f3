# tests/trajectory.mk: whole-model training trajectories against PyTorch
# (test_train_trajectory: 20 SGD and 20 AdamW steps of simple_cnn and
# resnet18 from the same weights and batches; skips when $PYTHON_TORCH has
# no torch).
check_PROGRAMS += tests/unit/test_train_trajectory
tests_unit_test_train_trajectory_SOURCES = tests/unit/test_train_trajectory.c
tests_unit_test_train_trajectory_LDADD = $(ICS_TEST_LIBS) -lm
TESTS += tests/unit/test_train_trajectory
dist_noinst_DATA += tests/torchref/trajectory_ref.py
