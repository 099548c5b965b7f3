# src/io/checkpoint.mk: the checkpoint format (HDF5) and its tensor helpers.
libicsparse_la_SOURCES += src/io/h5_tensor.c src/io/checkpoint.c src/io/checkpoint_shard.c src/io/consolidate.c
noinst_HEADERS += src/io/h5_tensor.h src/io/consolidate.h
pkginclude_HEADERS += include/icsparse/checkpoint.h

check_PROGRAMS += tests/unit/test_checkpoint
tests_unit_test_checkpoint_SOURCES = tests/unit/test_checkpoint.c
tests_unit_test_checkpoint_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_checkpoint
TESTS += tests/integration/test_consolidate.sh
dist_noinst_SCRIPTS += tests/integration/test_consolidate.sh
TESTS += tests/integration/test_checkpoint_shard.sh
dist_noinst_SCRIPTS += tests/integration/test_checkpoint_shard.sh
