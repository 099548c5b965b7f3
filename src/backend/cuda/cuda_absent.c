/* The CUDA device queries in a build without CUDA: no device, and why. */
#include "ics_build_config.h"
#include "backend/cuda/cuda_device.h"

#include <stdio.h>

int ics_cuda_device_count(char *reason, size_t reason_size)
{
    if (reason) snprintf(reason, reason_size, "icsparse was built without CUDA (--without-cuda)");
    return 0;
}

int ics_cuda_device_name(int device, char *buf, size_t size)
{
    (void)device;
    if (size) buf[0] = '\0';
    return -1;
}

int ics_cuda_relu_forward(long long n, const float *x, float *y)
{
    (void)n, (void)x, (void)y;
    return -1;
}

int ics_cuda_relu_host(long long n, const float *x, float *y, char *reason, size_t reason_size)
{
    (void)n, (void)x, (void)y;
    if (reason) snprintf(reason, reason_size, "built without CUDA");
    return -1;
}
