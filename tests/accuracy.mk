# tests/accuracy.mk: the shipped Fashion-MNIST example reaches its accuracy
# (conf/fashion-mnist.cfg, 5 epochs on 2 ranks, test top-1 >= 91%) on the
# whole dataset from Debian's dataset-fashion-mnist package. A few minutes
# of training: skipped (SKIP) in sanitizer builds, see the script's header.
TESTS += tests/integration/test_accuracy.sh
dist_noinst_SCRIPTS += tests/integration/test_accuracy.sh
