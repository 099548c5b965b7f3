# tests/models.mk: the model graph, tensor table, planner and architectures
# (test_models: pure C) and the whole-model PyTorch cross-checks
# (test_models_torch: skips when $PYTHON_TORCH has no torch).
check_PROGRAMS += tests/unit/test_models tests/unit/test_models_torch
tests_unit_test_models_SOURCES = tests/unit/test_models.c
tests_unit_test_models_LDADD = $(ICS_TEST_LIBS)
tests_unit_test_models_torch_SOURCES = tests/unit/test_models_torch.c
tests_unit_test_models_torch_LDADD = $(ICS_TEST_LIBS) -lm
TESTS += tests/unit/test_models tests/unit/test_models_torch
dist_noinst_DATA += tests/torchref/models_ref.py
