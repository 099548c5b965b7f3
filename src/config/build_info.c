/* What this build of icsparse contains: see build_info.h. */
#include "ics_build_config.h"
#include "config/build_info.h"
#include "dist/dist.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#ifdef HAVE_CUDA
#define CUDA_TEXT "yes"
#else
#define CUDA_TEXT "no"
#endif
#ifdef HAVE_CUDNN
#define CUDNN_TEXT "yes"
#else
#define CUDNN_TEXT "no"
#endif
#ifdef HAVE_NCCL
#define NCCL_TEXT "yes"
#else
#define NCCL_TEXT "no"
#endif
#ifdef _OPENMP
#define OPENMP_TEXT "yes"
#else
#define OPENMP_TEXT "no"
#endif

void ics_build_info(char *buf, size_t size)
{
    unsigned major = 0, minor = 0, release = 0;
    H5get_libversion(&major, &minor, &release);
    char mpi[256];
    ics_dist_library_version(mpi, sizeof mpi);
    snprintf(buf, size,
             "icsparse %s\n"
             "build features: CUDA %s, cuDNN %s, NCCL %s, BLAS %s (cblas), OpenMP %s\n"
             "libraries: %s; HDF5 %u.%u.%u (parallel)\n",
             PACKAGE_VERSION, CUDA_TEXT, CUDNN_TEXT, NCCL_TEXT, ICS_BLAS_NAME, OPENMP_TEXT, mpi, major,
             minor, release);
}
