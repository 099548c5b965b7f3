pkginclude_HEADERS += include/icsparse/status.h
