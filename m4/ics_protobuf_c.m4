# ICS_REQUIRE_PROTOBUF_C: the runtime library and protoc-c, which compiles the
# in-tree onnx.proto at build time.
AC_DEFUN([ICS_REQUIRE_PROTOBUF_C], [
  PKG_CHECK_MODULES([PROTOBUF_C], [libprotobuf-c], [],
    [AC_MSG_ERROR([protobuf-c not found: install it (Debian: apt-get install libprotobuf-c-dev)])])
  AC_CHECK_PROGS([PROTOC_C], [protoc-c], [no])
  AS_IF([test "x$PROTOC_C" = xno],
    [AC_MSG_ERROR([protoc-c not found: install it (Debian: apt-get install protobuf-c-compiler)])])
])
