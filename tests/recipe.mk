# tests/recipe.mk: SparseML recipe loader, schemas, compose, selectors.
check_PROGRAMS += tests/unit/test_recipe
tests_unit_test_recipe_SOURCES = tests/unit/test_recipe.c
tests_unit_test_recipe_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_recipe
EXTRA_DIST += tests/fixtures/recipes/staged.yaml tests/fixtures/recipes/all-modifiers.yaml \
	tests/fixtures/recipes/frontmatter.md tests/fixtures/recipes/frontmatter-valid.md
TESTS += tests/integration/test_recipe_compose.sh
dist_noinst_SCRIPTS += tests/integration/test_recipe_compose.sh
