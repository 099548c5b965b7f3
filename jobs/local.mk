# jobs: one sbatch script per pipeline step, the pipeline submitter (which
# is also the local executor), sweeps and their collector, and the shared
# shell library they source. Installed together under
# $(pkglibexecdir)/jobs so that each script finds lib/ beside it.
jobsdir = $(pkglibexecdir)/jobs
dist_jobs_SCRIPTS = \
	jobs/convert.sbatch jobs/shard.sbatch jobs/train.sbatch jobs/compose.sbatch \
	jobs/consolidate.sbatch jobs/eval.sbatch jobs/export.sbatch \
	jobs/submit-pipeline jobs/submit-sweep jobs/sweep-task.sbatch jobs/collect-sweep
jobslibdir = $(jobsdir)/lib
dist_jobslib_DATA = jobs/lib/common.sh jobs/lib/config.sh jobs/lib/step.sh jobs/lib/pipeline.sh \
	jobs/lib/sweep.sh jobs/lib/collect_sweep.py
TESTS += tests/integration/test_jobs_local.sh
EXTRA_DIST += tests/integration/test_jobs_local.sh
EXTRA_DIST += tests/integration/test_jobs_stubs.sh
# The embedded default pipeline's run file and its two stage recipes, a
# one-stage variant and the example sweep over it.
dist_conf_DATA += conf/run-fashion-mnist.cfg conf/run-fashion-mnist-prune.yaml \
	conf/run-fashion-mnist-quantize.yaml conf/run-fashion-mnist-prune.cfg \
	conf/run-sweep-fashion-mnist.cfg
EXTRA_DIST += jobs/.shellcheckrc
