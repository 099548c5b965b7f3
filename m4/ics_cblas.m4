# ICS_REQUIRE_CBLAS: a BLAS with the cblas interface (OpenBLAS).
AC_DEFUN([ICS_REQUIRE_CBLAS], [
  PKG_CHECK_MODULES([BLAS], [openblas], [],
    [AC_MSG_ERROR([OpenBLAS not found: install it (Debian: apt-get install libopenblas-dev)])])
  ics_save_LIBS="$LIBS"; ics_save_CPPFLAGS="$CPPFLAGS"
  LIBS="$BLAS_LIBS $LIBS"; CPPFLAGS="$BLAS_CFLAGS $CPPFLAGS"
  AC_CHECK_HEADER([cblas.h], [], [AC_MSG_ERROR([cblas.h not found: install libopenblas-dev])])
  AC_CHECK_FUNC([cblas_sgemm], [], [AC_MSG_ERROR([cblas_sgemm does not link: install libopenblas-dev])])
  AC_CHECK_FUNCS([openblas_set_num_threads])
  LIBS="$ics_save_LIBS"; CPPFLAGS="$ics_save_CPPFLAGS"
])
