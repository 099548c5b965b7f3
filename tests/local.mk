# tests/: CUnit unit suites (one program per module), integration scripts
# (tests/integration/*.sh), and PyTorch cross-checks. Each area keeps its own
# fragment below.
TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = bash
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	PYTHON_TORCH='$(PYTHON_TORCH)'; export PYTHON_TORCH; \
	PYTHON_TENSORBOARD='$(PYTHON_TORCH)'; export PYTHON_TENSORBOARD; \
	MPIRUN='$(MPIRUN)'; export MPIRUN; \
	OMPI_ALLOW_RUN_AS_ROOT=1; export OMPI_ALLOW_RUN_AS_ROOT; \
	OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM; \
	OMPI_MCA_rmaps_base_oversubscribe=1; export OMPI_MCA_rmaps_base_oversubscribe; \
	OMPI_MCA_mca_base_component_disable_dlclose=1; export OMPI_MCA_mca_base_component_disable_dlclose; \
	ICSPARSE_SITE_CONFIG=/dev/null/none; export ICSPARSE_SITE_CONFIG; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0; export ASAN_OPTIONS; \
	LSAN_OPTIONS=suppressions='$(abs_top_srcdir)/tests/lsan.supp':print_suppressions=0; export LSAN_OPTIONS; \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1; export UBSAN_OPTIONS;

# Shared test helpers (CUnit runner, temp dirs, PyTorch reference exchange).
check_LTLIBRARIES = libicstest.la
libicstest_la_SOURCES = tests/unit/test_util.c tests/unit/test_util.h
libicstest_la_LIBADD = libicsparse.la $(CUNIT_LIBS)
ICS_TEST_LIBS = libicstest.la libicsparse.la $(CUNIT_LIBS)

EXTRA_DIST += tests/run-integration.sh.in tests/lsan.supp
dist_noinst_SCRIPTS += tests/lib.sh

include $(top_srcdir)/tests/core.mk
include $(top_srcdir)/tests/ops.mk
include $(top_srcdir)/tests/models.mk
include $(top_srcdir)/tests/qat.mk
include $(top_srcdir)/tests/optim.mk
include $(top_srcdir)/tests/trajectory.mk
include $(top_srcdir)/tests/data.mk
include $(top_srcdir)/tests/recipe.mk
include $(top_srcdir)/tests/formats.mk
include $(top_srcdir)/tests/export.mk
include $(top_srcdir)/tests/accuracy.mk
