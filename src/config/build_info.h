#ifndef ICS_CONFIG_BUILD_INFO_H
#define ICS_CONFIG_BUILD_INFO_H
#include <stddef.h>
/* Fills buf with the version and build features (what --version prints):
 * CUDA, cuDNN, NCCL, BLAS, OpenMP, MPI and HDF5 versions. */
void ics_build_info(char *buf, size_t size);
#endif
