# ICS_CHECK_CUDA: --with-cuda[=DIR] (default: check /usr/local/cuda).
# Found: nvcc compiles the .cu sources, HAVE_CUDA is defined and the CUDA
# backend (cuBLAS, cuDNN, NCCL where present) is linked. Asked for explicitly
# but missing: an error. Not asked and missing: a CPU-only build.
AC_DEFUN([ICS_CHECK_CUDA], [
  AC_ARG_WITH([cuda],
    [AS_HELP_STRING([--with-cuda@<:@=DIR@:>@], [CUDA toolkit (default: check /usr/local/cuda)])],
    [], [with_cuda=check])
  have_cuda=no; have_cudnn=no; have_cublas=no; have_nccl=no
  ics_cuda_summary="no (CPU-only build)"; ics_cudnn_summary=no; ics_cublas_summary=no; ics_nccl_summary=no
  AS_CASE(["$with_cuda"],
    [no], [ics_cuda_summary="no (--without-cuda)"],
    [yes|check], [CUDA_HOME=/usr/local/cuda],
    [CUDA_HOME="$with_cuda"])
  AS_IF([test "x$with_cuda" != xno], [
    AC_PATH_PROG([NVCC], [nvcc], [no], [$CUDA_HOME/bin:$PATH])
    AS_IF([test "x$NVCC" != xno && test -f "$CUDA_HOME/include/cuda_runtime.h"], [
      have_cuda=yes
      CUDA_CFLAGS="-I$CUDA_HOME/include"
      CUDA_LIBDIR="$CUDA_HOME/lib64"
      CUDA_LIBS="-L$CUDA_LIBDIR -Wl,-rpath,$CUDA_LIBDIR -lcudart"
      ics_cuda_summary="yes ($NVCC)"
      ics_save_LIBS="$LIBS"
      LIBS="-L$CUDA_LIBDIR $LIBS"
      AC_CHECK_LIB([cublas], [cublasCreate_v2],
        [have_cublas=yes; CUDA_LIBS="$CUDA_LIBS -lcublas"; ics_cublas_summary=yes])
      AS_IF([test -f "$CUDA_HOME/include/cudnn.h"],
        [AC_CHECK_LIB([cudnn], [cudnnCreate],
          [have_cudnn=yes; CUDA_LIBS="$CUDA_LIBS -lcudnn"; ics_cudnn_summary=yes])])
      AS_IF([test -f "$CUDA_HOME/include/nccl.h"],
        [AC_CHECK_LIB([nccl], [ncclCommInitRank],
          [have_nccl=yes; CUDA_LIBS="$CUDA_LIBS -lnccl"; ics_nccl_summary=yes])])
      LIBS="$ics_save_LIBS"
      CUDA_LIBS="$CUDA_LIBS -lstdc++"
    ], [
      AS_IF([test "x$with_cuda" != xcheck],
        [AC_MSG_ERROR([--with-cuda given but nvcc or cuda_runtime.h not found under $CUDA_HOME])])
      ics_cuda_summary="no (not found under $CUDA_HOME)"
    ])
  ])
  AS_IF([test "x$have_cuda" = xyes], [AC_DEFINE([HAVE_CUDA], [1], [CUDA backend built])])
  AS_IF([test "x$have_cudnn" = xyes], [AC_DEFINE([HAVE_CUDNN], [1], [cuDNN available])])
  AS_IF([test "x$have_cublas" = xyes], [AC_DEFINE([HAVE_CUBLAS], [1], [cuBLAS available])])
  AS_IF([test "x$have_nccl" = xyes], [AC_DEFINE([HAVE_NCCL], [1], [NCCL available])])
  AM_CONDITIONAL([HAVE_CUDA], [test "x$have_cuda" = xyes])
  AM_CONDITIONAL([HAVE_CUDNN], [test "x$have_cudnn" = xyes])
  AM_CONDITIONAL([HAVE_NCCL], [test "x$have_nccl" = xyes])
  AC_ARG_VAR([NVCCFLAGS], [flags for nvcc])
  AS_IF([test "x$NVCCFLAGS" = x], [NVCCFLAGS="-O3 -std=c++17"])
  AC_SUBST([CUDA_CFLAGS])
  AC_SUBST([CUDA_LIBS])
  AC_SUBST([CUDA_HOME])
])
