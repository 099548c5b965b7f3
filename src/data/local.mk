# src/data: the HDF5 dataset format, converters (one per source format),
# shards and manifest, the prefetching loader and its augmentations.
libicsparse_la_SOURCES += src/data/sha256.c src/data/h5attr.c src/data/dataset.c src/data/idx.c \
	src/data/convert.c
noinst_HEADERS += src/data/sha256.h src/data/rng.h src/data/h5attr.h src/data/dataset.h \
	src/data/raw.h src/data/idx.h src/data/convert.h
libicsparse_la_SOURCES += src/config/schema_data.c
