# ICS_REQUIRE_CUNIT: Debian's CUnit ships no pkg-config file: fall back to
# AC_CHECK_LIB.
AC_DEFUN([ICS_REQUIRE_CUNIT], [
  PKG_CHECK_MODULES([CUNIT], [cunit], [],
    [AC_CHECK_LIB([cunit], [CU_initialize_registry], [CUNIT_LIBS="-lcunit"],
      [AC_MSG_ERROR([CUnit not found: install it (Debian: apt-get install libcunit1-dev)])])])
  AC_CHECK_HEADER([CUnit/Basic.h], [], [AC_MSG_ERROR([CUnit/Basic.h not found: install libcunit1-dev])])
  AC_SUBST([CUNIT_LIBS])
])
