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
