# tests/ops.mk: the CPU op table. test_ops cross-checks every op against
# PyTorch (skips when torch is missing).
check_PROGRAMS += tests/unit/test_ops
tests_unit_test_ops_SOURCES = tests/unit/test_ops.c
tests_unit_test_ops_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_ops
EXTRA_DIST += tests/torchref/ops_ref.py
