# src/io: sources of this subsystem (appended by its owner)

# PyTorch file formats (.pth reader/writer): zip container, CRC-32, pickle.
libicsparse_la_SOURCES += src/io/crc32.c src/io/zip_reader.c src/io/zip_writer.c \
	src/io/pickle_value.c src/io/pickle_reader.c src/io/pickle_builtins.c \
	src/io/pickle_writer.c src/io/pth_reader.c src/io/pth_legacy.c src/io/pth_writer.c
noinst_HEADERS += src/io/zip_format.h src/io/zip_reader.h src/io/zip_writer.h \
	src/io/pickle_value.h src/io/pickle_reader.h src/io/pickle_builtins.h \
	src/io/pickle_writer.h src/io/pth_reader.h src/io/pth_internal.h src/io/pth_writer.h
