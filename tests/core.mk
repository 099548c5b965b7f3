# tests/core.mk: foundation tests (status, alloc, log, config, CLI).
check_PROGRAMS += tests/unit/test_core
tests_unit_test_core_SOURCES = tests/unit/test_core.c
tests_unit_test_core_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_core

check_PROGRAMS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_config

TESTS += tests/integration/test_cli.sh
dist_noinst_SCRIPTS += tests/integration/test_cli.sh

check_PROGRAMS += tests/unit/test_cuda
tests_unit_test_cuda_SOURCES = tests/unit/test_cuda.c
tests_unit_test_cuda_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_cuda
