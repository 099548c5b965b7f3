# src/dist: MPI (and NCCL) in one place.
libicsparse_la_SOURCES += src/dist/dist.c src/dist/ddp.c
noinst_HEADERS += src/dist/dist.h src/dist/ddp.h
