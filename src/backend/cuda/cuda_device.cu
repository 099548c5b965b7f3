/* CUDA device discovery and a first kernel: see cuda_device.h. */
#include "backend/cuda/cuda_device.h"

#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int ics_cuda_device_count(char *reason, size_t reason_size)
{
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess) {
        if (reason) snprintf(reason, reason_size, "%s", cudaGetErrorString(rc));
        cudaGetLastError(); /* clear the sticky error */
        return 0;
    }
    if (count == 0 && reason) snprintf(reason, reason_size, "no CUDA device");
    return count;
}

extern "C" int ics_cuda_device_name(int device, char *buf, size_t size)
{
    cudaDeviceProp prop;
    cudaError_t rc = cudaGetDeviceProperties(&prop, device);
    if (rc != cudaSuccess) return (int)rc;
    snprintf(buf, size, "%s (sm_%d%d)", prop.name, prop.major, prop.minor);
    return 0;
}

static __global__ void relu_kernel(long long n, const float *x, float *y)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

extern "C" int ics_cuda_relu_forward(long long n, const float *x, float *y)
{
    if (n <= 0) return 0;
    int threads = 256;
    long long blocks = (n + threads - 1) / threads;
    relu_kernel<<<(unsigned)blocks, threads>>>(n, x, y);
    return (int)cudaGetLastError();
}

extern "C" int ics_cuda_relu_host(long long n, const float *x, float *y, char *reason, size_t reason_size)
{
    float *dx = NULL, *dy = NULL;
    size_t bytes = (size_t)n * sizeof(float);
    cudaError_t rc = cudaMalloc(&dx, bytes);
    if (rc == cudaSuccess) rc = cudaMalloc(&dy, bytes);
    if (rc == cudaSuccess) rc = cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice);
    if (rc == cudaSuccess) rc = (cudaError_t)ics_cuda_relu_forward(n, dx, dy);
    if (rc == cudaSuccess) rc = cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost);
    if (rc != cudaSuccess && reason) snprintf(reason, reason_size, "%s", cudaGetErrorString(rc));
    cudaFree(dx);
    cudaFree(dy);
    return (int)rc;
}
