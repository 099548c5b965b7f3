# tests/optim.mk: tests of this area (owned by its author)
