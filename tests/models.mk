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
# Inference fusion (conv [-> BN] [-> ReLU/ReLU6], linear -> ReLU): the
# kernels' epilogues, fused == unfused logits for every arch, the fold
# following BN statistics and weights, the op-table fallback, QAT left alone.
check_PROGRAMS += tests/unit/test_models_fused
tests_unit_test_models_fused_SOURCES = tests/unit/test_models_fused.c
tests_unit_test_models_fused_LDADD = $(ICS_TEST_LIBS) -lm
TESTS += tests/unit/test_models_fused
