# tests/optim.mk: optimizers, schedules, EMA (against PyTorch) and the
# training loggers (metrics.jsonl, TensorBoard event files).
check_PROGRAMS += tests/unit/test_optim
tests_unit_test_optim_SOURCES = tests/unit/test_optim.c
tests_unit_test_optim_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_optim
EXTRA_DIST += tests/torchref/optim_ref.py
