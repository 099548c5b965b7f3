# src/sparsify/manager.mk: the recipe manager (modifiers at training time)
libicsparse_la_SOURCES += \
	src/sparsify/manager.c \
	src/sparsify/mask.c \
	src/sparsify/modifier_lr.c \
	src/sparsify/modifier_weight_decay.c \
	src/sparsify/modifier_pruning.c \
	src/sparsify/modifier_trainable.c \
	src/sparsify/modifier_distillation.c \
	src/sparsify/modifier_quantization.c \
	src/sparsify/checkpoint_quant.c
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

# the manager in a user's own training loop (public API only), run by a test
noinst_PROGRAMS += examples/manager_loop
examples_manager_loop_SOURCES = examples/manager_loop.c
examples_manager_loop_LDADD = libicsparse.la
TESTS += tests/integration/test_manager_example.sh
dist_noinst_SCRIPTS += tests/integration/test_manager_example.sh
EXTRA_DIST += tests/fixtures/manager/example.yaml tests/fixtures/manager/mobilenet-acdc-torchvision.yaml

# one-shot sparsification of a checkpoint (icsparse-export --one-shot)
libicsparse_la_SOURCES += src/sparsify/oneshot.c
noinst_HEADERS += src/sparsify/oneshot.h
