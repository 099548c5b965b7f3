# tests/data.mk: tests of src/data and the data tools (owned by its author).
check_PROGRAMS += tests/unit/test_data
tests_unit_test_data_SOURCES = tests/unit/test_data.c
tests_unit_test_data_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_data
