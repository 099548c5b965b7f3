# src/sparsify/manager.mk: the recipe manager (modifiers at training time)
