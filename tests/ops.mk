# tests/ops.mk: the CPU op table. test_ops cross-checks every op against
# PyTorch (skips when torch is missing); test_ops_fd checks every backward
# against finite differences and needs nothing but the library.
check_PROGRAMS += tests/unit/test_ops tests/unit/test_ops_fd
tests_unit_test_ops_SOURCES = tests/unit/test_ops.c
tests_unit_test_ops_LDADD = $(ICS_TEST_LIBS)
tests_unit_test_ops_fd_SOURCES = tests/unit/test_ops_fd.c
tests_unit_test_ops_fd_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_ops tests/unit/test_ops_fd
EXTRA_DIST += tests/torchref/ops_ref.py tests/torchref/ops_bench.py
