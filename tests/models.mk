# tests/models.mk: tests of this area (owned by its author)
