# tests/qat.mk: quantization-aware training. test_qat (pure C): the QAT
# graph of every architecture, fake-quant arithmetic, finite differences
# through the conv-BN fold, observers, frozen BN, checkpoints. test_qat_torch:
# the same arithmetic, a conv-BN-ReLU group and whole models against torch's
# QAT modules (skips when $PYTHON_TORCH has no torch). Both drive one
# conv [-> BN -> ReLU -> fake-quant] group through the layer functions
# (tests/unit/qat_group.c) to reach the gradient of its input.
check_PROGRAMS += tests/unit/test_qat tests/unit/test_qat_torch
tests_unit_test_qat_SOURCES = tests/unit/test_qat.c tests/unit/qat_group.c tests/unit/qat_group.h
tests_unit_test_qat_LDADD = $(ICS_TEST_LIBS) -lm
tests_unit_test_qat_torch_SOURCES = tests/unit/test_qat_torch.c tests/unit/qat_group.c tests/unit/qat_group.h
tests_unit_test_qat_torch_LDADD = $(ICS_TEST_LIBS) -lm
TESTS += tests/unit/test_qat tests/unit/test_qat_torch
dist_noinst_DATA += tests/torchref/qat_ref.py
