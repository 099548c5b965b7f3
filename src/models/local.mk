# src/models: the model graph, tensor slabs, memory planner, forward and
# backward, and the architectures by arch key (one file per family); the
# seeded RNG (src/core/rng.*) lives here too as its first user.
libicsparse_la_SOURCES += src/core/rng.c src/models/graph.c src/models/model.c \
	src/models/plan.c src/models/exec.c src/models/resnet.c src/models/mobilenet_v2.c \
	src/models/vgg.c src/models/simple_cnn.c src/models/lenet.c src/models/qat.c
noinst_HEADERS += src/core/rng.h src/models/model_internal.h
pkginclude_HEADERS += include/icsparse/model.h include/icsparse/qat.h
EXTRA_DIST += docs/DESIGN-MODEL.md
