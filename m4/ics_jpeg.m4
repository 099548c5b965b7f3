# ICS_REQUIRE_JPEG: libjpeg-turbo (through its libjpeg API).
AC_DEFUN([ICS_REQUIRE_JPEG], [
  PKG_CHECK_MODULES([JPEG], [libjpeg], [],
    [AC_CHECK_LIB([jpeg], [jpeg_start_decompress], [JPEG_LIBS="-ljpeg"],
      [AC_MSG_ERROR([libjpeg not found: install it (Debian: apt-get install libjpeg62-turbo-dev)])])])
  AC_SUBST([JPEG_LIBS])
])
