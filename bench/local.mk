# bench: sources of this subsystem (appended by its owner)
# Data loader throughput (owned by src/data).
noinst_PROGRAMS += bench/bench_loader
bench_bench_loader_SOURCES = bench/bench_loader.c
bench_bench_loader_LDADD = libicsparse.la
EXTRA_DIST += bench/bench_loader_ref.py bench/bench_shard.sh
