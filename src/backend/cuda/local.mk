# src/backend/cuda: the CUDA twin of the CPU op table (cuDNN, cuBLAS, .cu
# kernels). .cu files are compiled by nvcc into libtool objects
# (tools/nvcc-lt.sh); without CUDA, cuda_absent.c answers "no device".
noinst_HEADERS += src/backend/cuda/cuda_device.h
EXTRA_DIST += tools/nvcc-lt.sh src/backend/cuda/cuda_device.cu
if HAVE_CUDA
libicsparse_la_SOURCES += src/backend/cuda/cuda_device.cu
else
libicsparse_la_SOURCES += src/backend/cuda/cuda_absent.c
endif

SUFFIXES = .cu
NVCC_CPPFLAGS = -I$(top_srcdir)/src -I$(top_srcdir)/include -I$(top_builddir) $(CUDA_CFLAGS)
.cu.lo:
	$(AM_V_GEN)$(SHELL) $(top_srcdir)/tools/nvcc-lt.sh $@ $(NVCC) $(NVCCFLAGS) $(NVCC_CPPFLAGS) -c $<
