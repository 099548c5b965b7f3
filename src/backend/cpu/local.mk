# src/backend/cpu: the CPU op table (NHWC float32 kernels, GEMM via OpenBLAS,
# OpenMP loops). One op family per file; cpu_ops.h lists the kernels.
libicsparse_la_SOURCES += src/backend/cpu/cpu_backend.c src/backend/cpu/cpu_gemm.c src/backend/cpu/cpu_reduce.c \
	src/backend/cpu/cpu_conv2d.c src/backend/cpu/cpu_conv_smallk.c src/backend/cpu/cpu_im2col.c src/backend/cpu/cpu_depthwise.c \
	src/backend/cpu/cpu_batchnorm.c src/backend/cpu/cpu_batchnorm_sync.c src/backend/cpu/cpu_activation.c \
	src/backend/cpu/cpu_elementwise.c src/backend/cpu/cpu_pool.c \
	src/backend/cpu/cpu_adaptive_pool.c src/backend/cpu/cpu_linear.c \
	src/backend/cpu/cpu_softmax_xent.c
noinst_HEADERS += src/backend/cpu/cpu_ops.h src/backend/backend.h
