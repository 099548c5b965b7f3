# tests/data.mk: tests of src/data and the data tools (owned by its author).
check_PROGRAMS += tests/unit/test_data
tests_unit_test_data_SOURCES = tests/unit/test_data.c
tests_unit_test_data_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_data
check_PROGRAMS += tests/unit/test_data_loader
tests_unit_test_data_loader_SOURCES = tests/unit/test_data_loader.c
tests_unit_test_data_loader_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_data_loader
EXTRA_DIST += tests/tools/data_augment_ref.py
