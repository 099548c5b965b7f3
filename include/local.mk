pkginclude_HEADERS += include/icsparse/status.h include/icsparse/config.h
