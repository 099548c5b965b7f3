# examples/: programs that use only the public headers, each run by a test.
# (manager_loop is built by src/sparsify/manager.mk, train_api by
# src/train/trainer.mk.)
noinst_PROGRAMS += examples/export_api
examples_export_api_SOURCES = examples/export_api.c
examples_export_api_LDADD = libicsparse.la
TESTS += tests/integration/test_export_api_example.sh
dist_noinst_SCRIPTS += tests/integration/test_export_api_example.sh
