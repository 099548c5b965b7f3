# src/nn: one layer per file, forward and backward side by side, over the
# op table (src/backend/backend.h); layers.c maps op kinds to them.
libicsparse_la_SOURCES += src/nn/layers.c src/nn/conv2d.c src/nn/batchnorm2d.c \
	src/nn/activation.c src/nn/pool.c src/nn/add.c src/nn/flatten.c src/nn/dropout.c \
	src/nn/linear.c src/nn/fake_quant.c src/nn/conv2d_qat.c src/nn/linear_qat.c \
	src/nn/fused.c
noinst_HEADERS += src/nn/layer.h
