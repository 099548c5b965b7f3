# src/export: sources of this subsystem (appended by its owner)

# Exports of a model: ONNX (written through protobuf-c), the PyTorch .pth
# state_dict, TorchScript, the deployment and SparseZoo directories (with
# .npz samples), and the public API over them.
# onnx.proto (the format spec, from the PyPI onnx package) is compiled by
# protoc-c into the build tree; export_onnx.c includes "export/onnx.pb-c.h",
# found through -I$(top_builddir)/src.
libicsparse_la_SOURCES += src/export/export_onnx.c src/export/export_pth.c \
	src/export/export_torchscript.c src/export/export_npz.c \
	src/export/export_dir.c src/export/export_zoo.c src/export/export_api.c
noinst_HEADERS += src/export/export_internal.h src/export/export_npz.h
pkginclude_HEADERS += include/icsparse/export.h
nodist_libicsparse_la_SOURCES = src/export/onnx.pb-c.c src/export/onnx.pb-c.h
BUILT_SOURCES += src/export/onnx.pb-c.c src/export/onnx.pb-c.h
CLEANFILES += src/export/onnx.pb-c.c src/export/onnx.pb-c.h
EXTRA_DIST += src/export/onnx.proto

# One protoc-c run makes both files; the header depends on the source so a
# parallel make does not run protoc-c twice at once.
src/export/onnx.pb-c.c: $(top_srcdir)/src/export/onnx.proto
	@$(MKDIR_P) src/export
	$(AM_V_GEN)$(PROTOC_C) --proto_path=$(top_srcdir)/src/export --c_out=src/export \
		$(top_srcdir)/src/export/onnx.proto
src/export/onnx.pb-c.h: src/export/onnx.pb-c.c
	@test -f $@ || { rm -f src/export/onnx.pb-c.c; $(MAKE) $(AM_MAKEFLAGS) src/export/onnx.pb-c.c; }

# The int8 QDQ ONNX graph of QAT models, written over the fp32 writer's
# builder and walk (export_onnx_internal.h).
libicsparse_la_SOURCES += src/export/export_onnx_qdq.c
noinst_HEADERS += src/export/export_onnx_internal.h

# torch's _metadata (the module tree and each class's _version) of the .pth
# state_dicts, derived per architecture (export_pth_metadata.h).
libicsparse_la_SOURCES += src/export/export_pth_metadata.c
noinst_HEADERS += src/export/export_pth_metadata.h
