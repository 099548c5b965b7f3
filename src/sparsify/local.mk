# src/sparsify: SparseML recipes (loader, eval() grammar, variables,
# modifier schemas, selectors, compose, YAML writer, explain).
libicsparse_la_SOURCES += \
	src/sparsify/recipe_yaml.c \
	src/sparsify/recipe_expr.c \
	src/sparsify/recipe_value.c \
	src/sparsify/recipe_vars.c \
	src/sparsify/recipe_modifiers.c \
	src/sparsify/recipe_fields.c \
	src/sparsify/recipe_bind.c \
	src/sparsify/recipe_bind_pruning.c \
	src/sparsify/recipe_load.c \
	src/sparsify/recipe_schedule.c \
	src/sparsify/recipe_select.c \
	src/sparsify/recipe_compose.c \
	src/sparsify/recipe_write.c \
	src/sparsify/recipe_explain.c
noinst_HEADERS += src/sparsify/recipe_internal.h
pkginclude_HEADERS += include/icsparse/recipe.h

# icsparse-compose: --explain and staged composition (its main() is in src/apps)
bin_PROGRAMS += src/apps/icsparse-compose
src_apps_icsparse_compose_SOURCES = src/apps/icsparse-compose.c
src_apps_icsparse_compose_LDADD = $(ICS_APP_LIBS)
