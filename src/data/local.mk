# src/data: the HDF5 dataset format, converters (one per source format),
# shards and manifest, the prefetching loader and its augmentations.
libicsparse_la_SOURCES += src/data/sha256.c src/data/h5attr.c src/data/dataset.c src/data/idx.c \
	src/data/convert.c src/data/catalog.c src/data/source.c src/data/tar.c src/data/cifar.c \
	src/data/folder.c src/data/download.c src/data/shard.c src/data/augment.c src/data/loader.c src/data/image_decode.c src/data/data_config.c
noinst_HEADERS += src/data/sha256.h src/data/rng.h src/data/h5attr.h src/data/dataset.h \
	src/data/raw.h src/data/idx.h src/data/convert.h src/data/catalog.h src/data/source.h \
	src/data/tar.h src/data/download.h src/data/shard.h src/data/augment.h src/data/loader.h src/data/image_decode.h src/data/data_config.h
libicsparse_la_SOURCES += src/config/schema_data.c
