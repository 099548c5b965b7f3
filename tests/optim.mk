# tests/optim.mk: optimizers, schedules, EMA (against PyTorch) and the
# training loggers (metrics.jsonl, TensorBoard event files).
check_PROGRAMS += tests/unit/test_optim
tests_unit_test_optim_SOURCES = tests/unit/test_optim.c
tests_unit_test_optim_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_optim

check_PROGRAMS += tests/unit/test_optim_config
tests_unit_test_optim_config_SOURCES = tests/unit/test_optim_config.c
tests_unit_test_optim_config_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_optim_config
EXTRA_DIST += tests/torchref/optim_ref.py

check_PROGRAMS += tests/unit/test_logs tests/unit/test_logs_tensorboard
tests_unit_test_logs_SOURCES = tests/unit/test_logs.c
tests_unit_test_logs_LDADD = $(ICS_TEST_LIBS)
tests_unit_test_logs_tensorboard_SOURCES = tests/unit/test_logs_tensorboard.c
tests_unit_test_logs_tensorboard_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_logs tests/unit/test_logs_tensorboard
EXTRA_DIST += tests/tools/tb_read.py
