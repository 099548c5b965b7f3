# src/io/import.mk: importing PyTorch and SparseZoo checkpoints (and the W&B bridge tests)
libicsparse_la_SOURCES += src/io/pth_import.c src/io/pth_import_qat.c
noinst_HEADERS += src/io/pth_import.h src/io/pth_import_internal.h

check_PROGRAMS += tests/unit/test_pth_import
tests_unit_test_pth_import_SOURCES = tests/unit/test_pth_import.c
tests_unit_test_pth_import_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_pth_import
EXTRA_DIST += tests/torchref/import_make.py

TESTS += tests/integration/test_import.sh
dist_noinst_SCRIPTS += tests/integration/test_import.sh

TESTS += tests/integration/test_wandb.sh
dist_noinst_SCRIPTS += tests/integration/test_wandb.sh tools/wandb-bridge
