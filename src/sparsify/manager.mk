# src/sparsify/manager.mk: the recipe manager (modifiers at training time)
libicsparse_la_SOURCES += \
	src/sparsify/manager.c \
	src/sparsify/mask.c \
	src/sparsify/modifier_lr.c \
	src/sparsify/modifier_weight_decay.c \
	src/sparsify/modifier_pruning.c \
	src/sparsify/modifier_trainable.c \
	src/sparsify/modifier_distillation.c
noinst_HEADERS += src/sparsify/manager_internal.h src/sparsify/mask.h
pkginclude_HEADERS += include/icsparse/manager.h

# tests: the manager on real models and a real training loop; PyTorch
# references for the distillation loss and the LR schedulers
check_PROGRAMS += tests/unit/test_manager
tests_unit_test_manager_SOURCES = tests/unit/test_manager.c
tests_unit_test_manager_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_manager

check_PROGRAMS += tests/unit/test_manager_torch
tests_unit_test_manager_torch_SOURCES = tests/unit/test_manager_torch.c
tests_unit_test_manager_torch_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_manager_torch
EXTRA_DIST += tests/torchref/manager_ref.py
