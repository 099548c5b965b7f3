/*
 * CUDA device discovery, behind a plain C interface (no CUDA headers here,
 * so C sources and tests include it in every build). Without CUDA in the
 * build every query answers "no device".
 */
#ifndef ICS_BACKEND_CUDA_DEVICE_H
#define ICS_BACKEND_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices (0 without CUDA, a driver or a GPU). When
 * there are none, why (e.g. "no CUDA-capable device is detected") is
 * written to reason. */
int ics_cuda_device_count(char *reason, size_t reason_size);
/* Name and compute capability of device i ("NVIDIA H100 (sm_90)"). */
int ics_cuda_device_name(int device, char *buf, size_t size);

/* y[i] = max(x[i], 0) on the device (device pointers); a smoke test of the
 * toolchain until the CUDA op table lands. Returns 0 or a CUDA error code. */
int ics_cuda_relu_forward(long long n, const float *x, float *y);
/* Host-to-device round trip of relu over n floats (for tests). */
int ics_cuda_relu_host(long long n, const float *x, float *y, char *reason, size_t reason_size);

#ifdef __cplusplus
}
#endif
#endif
