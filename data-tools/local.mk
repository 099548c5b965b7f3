# data-tools: icsparse-convert and dataset tools (icsparse-shard's main is
# src/apps/icsparse-shard.c, registered here with the other data tools).
bin_PROGRAMS += data-tools/icsparse-convert
data_tools_icsparse_convert_SOURCES = data-tools/icsparse-convert.c
data_tools_icsparse_convert_LDADD = $(ICS_APP_LIBS)
bin_PROGRAMS += src/apps/icsparse-shard
src_apps_icsparse_shard_SOURCES = src/apps/icsparse-shard.c
src_apps_icsparse_shard_LDADD = $(ICS_APP_LIBS)
