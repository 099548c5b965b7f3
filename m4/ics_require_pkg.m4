# ICS_REQUIRE_PKG(VAR, PKG-CONFIG-NAME, DEBIAN-PACKAGE, FUNCTION)
# A required library found through pkg-config; the error names the Debian
# package that provides it.
AC_DEFUN([ICS_REQUIRE_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$2 not found: install it (Debian: apt-get install $3)])])
  ics_save_LIBS="$LIBS"
  LIBS="$$1_LIBS $LIBS"
  AC_CHECK_FUNC([$4], [],
    [AC_MSG_ERROR([$2 found but $4 does not link: reinstall $3])])
  LIBS="$ics_save_LIBS"
])
