# src/dist: MPI (and NCCL) in one place.
libicsparse_la_SOURCES += src/dist/dist.c
noinst_HEADERS += src/dist/dist.h
