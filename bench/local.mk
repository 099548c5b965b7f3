# bench: sources of this subsystem (appended by its owner)
# Data loader throughput (owned by src/data).
noinst_PROGRAMS += bench/bench_loader
bench_bench_loader_SOURCES = bench/bench_loader.c
bench_bench_loader_LDADD = libicsparse.la
EXTRA_DIST += bench/bench_loader_ref.py bench/bench_shard.sh
# Whole-model training/inference throughput beside PyTorch (owned by src/models).
noinst_PROGRAMS += bench/bench_models
bench_bench_models_SOURCES = bench/bench_models.c
bench_bench_models_LDADD = libicsparse.la
EXTRA_DIST += bench/torch_models.py
dist_noinst_SCRIPTS += bench/run-engine-bench
# ONNX export time and onnxruntime throughput of the export (owned by src/export).
noinst_PROGRAMS += bench/bench_export
bench_bench_export_SOURCES = bench/bench_export.c
bench_bench_export_LDADD = libicsparse.la
EXTRA_DIST += bench/bench_export_ort.py
dist_noinst_SCRIPTS += bench/run-export-bench
# Op-level throughput beside PyTorch (owned by src/backend/cpu).
noinst_PROGRAMS += bench/bench_ops
bench_bench_ops_SOURCES = bench/bench_ops.c
bench_bench_ops_LDADD = libicsparse.la
EXTRA_DIST += tests/torchref/ops_bench.py
