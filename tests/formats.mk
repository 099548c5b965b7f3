# tests/formats.mk: PyTorch .pth reader and writer (zip, CRC-32, pickle).
check_PROGRAMS += tests/unit/test_pth
tests_unit_test_pth_SOURCES = tests/unit/test_pth.c
tests_unit_test_pth_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_pth
EXTRA_DIST += tests/torchref/pth_make.py tests/torchref/pth_check.py
check_PROGRAMS += tests/unit/test_pth_pickle
tests_unit_test_pth_pickle_SOURCES = tests/unit/test_pth_pickle.c
tests_unit_test_pth_pickle_LDADD = $(ICS_TEST_LIBS) $(ZLIB_LIBS)
TESTS += tests/unit/test_pth_pickle
# The mutation test drives the libFuzzer target's entry point (see
# tests/fuzz/Makefile.fuzz for the real fuzzer build).
check_PROGRAMS += tests/unit/test_pth_fuzz
tests_unit_test_pth_fuzz_SOURCES = tests/unit/test_pth_fuzz.c tests/fuzz/fuzz_pth.c
tests_unit_test_pth_fuzz_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_pth_fuzz
EXTRA_DIST += tests/fuzz/Makefile.fuzz
