# tests/export.mk: export tests (ONNX, .pth, TorchScript, deployment and SparseZoo
# directories, CLI).
EXPORT_TEST_CKPT = tests/unit/test_export_ckpt.c tests/unit/test_export_ckpt.h

# API and CLI behaviour without Python: errors, refusals, atomic writes,
# allocation failures, the ONNX bytes decoded by protobuf-c.
check_PROGRAMS += tests/unit/test_export
tests_unit_test_export_SOURCES = tests/unit/test_export.c $(EXPORT_TEST_CKPT)
tests_unit_test_export_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_export

# Numerics against onnx.checker, onnxruntime, torch and icsparse-eval.
check_PROGRAMS += tests/unit/test_export_onnx
tests_unit_test_export_onnx_SOURCES = tests/unit/test_export_onnx.c $(EXPORT_TEST_CKPT)
tests_unit_test_export_onnx_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_export_onnx
dist_noinst_DATA += tests/torchref/export_check.py

# TorchScript archives (every architecture) and SparseZoo samples against
# torch.jit.load, onnxruntime, numpy and icsparse-eval.
check_PROGRAMS += tests/unit/test_export_torchscript
tests_unit_test_export_torchscript_SOURCES = tests/unit/test_export_torchscript.c $(EXPORT_TEST_CKPT)
tests_unit_test_export_torchscript_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_export_torchscript
dist_noinst_DATA += tests/torchref/torchscript_check.py

# The TorchScript archive, the .npz writer and the SparseZoo samples
# without Python: the archive read back with src/io's reader, refusals,
# allocation failures, the CLI's new options.
check_PROGRAMS += tests/unit/test_export_ts
tests_unit_test_export_ts_SOURCES = tests/unit/test_export_ts.c $(EXPORT_TEST_CKPT)
tests_unit_test_export_ts_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_export_ts

# int8 QDQ ONNX of QAT models: the layout and the refusals without Python,
# and every architecture against onnx.checker, onnxruntime (as written and
# optimized to QLinearConv) and icsparse-eval.
check_PROGRAMS += tests/unit/test_export_qdq
tests_unit_test_export_qdq_SOURCES = tests/unit/test_export_qdq.c $(EXPORT_TEST_CKPT)
tests_unit_test_export_qdq_LDADD = $(ICS_TEST_LIBS)
TESTS += tests/unit/test_export_qdq
dist_noinst_DATA += tests/torchref/export_qdq_check.py
# the QAT .pth and SparseZoo directory (round trip, torch strict load, samples)
dist_noinst_DATA += tests/torchref/export_qat_pth_check.py
