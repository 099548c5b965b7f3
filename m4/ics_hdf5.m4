# ICS_REQUIRE_HDF5_PARALLEL: HDF5 built against Open MPI. Checking for
# H5Pset_fapl_mpio doubles as the "is this HDF5 parallel" test.
AC_DEFUN([ICS_REQUIRE_HDF5_PARALLEL], [
  PKG_CHECK_MODULES([HDF5], [hdf5-openmpi], [],
    [PKG_CHECK_MODULES([HDF5], [hdf5-mpi], [],
      [AC_MSG_ERROR([parallel HDF5 not found: install it (Debian: apt-get install libhdf5-openmpi-dev)])])])
  ics_save_LIBS="$LIBS"; ics_save_CPPFLAGS="$CPPFLAGS"
  LIBS="$HDF5_LIBS $LIBS"; CPPFLAGS="$HDF5_CFLAGS $CPPFLAGS"
  AC_CHECK_FUNC([H5Pset_fapl_mpio], [],
    [AC_MSG_ERROR([HDF5 is not the parallel (MPI) build: install libhdf5-openmpi-dev])])
  AC_CHECK_HEADER([hdf5.h], [], [AC_MSG_ERROR([hdf5.h not found: install libhdf5-openmpi-dev])])
  LIBS="$ics_save_LIBS"; CPPFLAGS="$ics_save_CPPFLAGS"
])
