# conf/: commented defaults (generated from the schema), the site template
# for sysadmins, and example job files.
confdir = $(pkgdatadir)/conf
dist_conf_DATA = conf/defaults.cfg conf/site.cfg.example conf/fashion-mnist.cfg \
	conf/cifar10-resnet18.cfg conf/imagenet-resnet50.cfg conf/fashion-mnist-long.cfg \
	conf/fashion-mnist-long-prune90.yaml conf/fashion-mnist-long-quantize.yaml

# Regenerates conf/defaults.cfg from the schema (the CLI test checks they agree).
update-defaults: src/apps/icsparse-train
	$(builddir)/src/apps/icsparse-train --print-defaults > $(srcdir)/conf/defaults.cfg
.PHONY: update-defaults
