# tests/export.mk: export tests
