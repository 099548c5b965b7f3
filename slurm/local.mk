# slurm: a one-node test cluster (slurm.conf template, start and stop
# scripts) and its integration test with real daemons.
slurmdir = $(pkgdatadir)/slurm
dist_slurm_SCRIPTS = slurm/start-cluster.sh slurm/stop-cluster.sh
dist_slurm_DATA = slurm/slurm.conf.in slurm/README.md
TESTS += tests/integration/test_slurm_cluster.sh
EXTRA_DIST += tests/integration/test_slurm_cluster.sh
EXTRA_DIST += docs/CLUSTER.md
