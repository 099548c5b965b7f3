# src/core: errors, allocation, logging, RNG, threads, tensors.
libicsparse_la_SOURCES += src/core/status.c src/core/alloc.c src/core/log.c
noinst_HEADERS += src/core/alloc.h src/core/log.h
