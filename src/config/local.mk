# src/config: the schema, layered libconfig configuration, build information.
libicsparse_la_SOURCES += src/config/schema.c src/config/schema_core.c src/config/config.c \
	src/config/config_print.c src/config/build_info.c
noinst_HEADERS += src/config/schema.h src/config/config_internal.h src/config/build_info.h
