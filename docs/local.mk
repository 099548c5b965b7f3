# docs: the user and design documents (some are listed by their subsystem's
# fragment; the rest here).
EXTRA_DIST += docs/TRAINING.md docs/DATASETS.md docs/PERFORMANCE.md docs/RECIPES.md docs/FORMATS-PTH.md \
	docs/DESIGN-ENGINE.md docs/SPARSIFICATION.md docs/EXPORT.md
