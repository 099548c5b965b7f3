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
check_PROGRAMS += tests/unit/test_data_sources
tests_unit_test_data_sources_SOURCES = tests/unit/test_data_sources.c
tests_unit_test_data_sources_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_data_sources
EXTRA_DIST += tests/tools/make_data_fixtures.py tests/tools/http_range_server.py
TESTS += tests/integration/test_data_tools.sh
dist_noinst_SCRIPTS += tests/integration/test_data_tools.sh
