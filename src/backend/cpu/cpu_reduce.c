/*
 * src/backend/cpu/cpu_reduce.c: per-channel sums over the rows of an NHWC
 * tensor (BN statistics, BN backward, bias gradients).
 *
 * Why slices: a parallel reduction is only reproducible when the split of
 * the rows and the order of combining does not depend on the thread count.
 * The rows are cut into ICS_CPU_REDUCE_SLICES fixed slices; each slice
 * sums its rows in order (in double, so 10^5..10^7 terms keep ~1e-9
 * relative error), and the slices are added in slice order. Channels are
 * processed in blocks so the partials live on the stack (no allocation in a
 * void kernel) and the inner loop runs over contiguous channels (SIMD).
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <string.h>

#define CHANNEL_BLOCK 128

/* See cpu_ops.h. */
ICS_CPU_SIMD_CLONES
void cpu_channel_sums(int64_t rows, int channels, const float *a, const float *b,
                      const float *shift, double *sum_a, double *sum_ab)
{
    int slices = rows < ICS_CPU_REDUCE_SLICES ? (int)rows : ICS_CPU_REDUCE_SLICES;
    if (slices < 1) {
        memset(sum_a, 0, sizeof(double) * (size_t)channels);
        if (sum_ab) memset(sum_ab, 0, sizeof(double) * (size_t)channels);
        return;
    }
    int parallel = rows * (int64_t)channels >= ICS_CPU_PARALLEL_MIN;
    for (int c0 = 0; c0 < channels; c0 += CHANNEL_BLOCK) {
        int cb = channels - c0 < CHANNEL_BLOCK ? channels - c0 : CHANNEL_BLOCK;
        double part_a[ICS_CPU_REDUCE_SLICES][CHANNEL_BLOCK];
        double part_ab[ICS_CPU_REDUCE_SLICES][CHANNEL_BLOCK];
#pragma omp parallel for schedule(static) if (parallel)
        for (int s = 0; s < slices; s++) {
            int64_t r0 = rows * s / slices, r1 = rows * (s + 1) / slices;
            double *pa = part_a[s], *pab = part_ab[s];
            float sh[CHANNEL_BLOCK];
            for (int c = 0; c < cb; c++) {
                pa[c] = 0;
                pab[c] = 0;
                sh[c] = shift ? shift[c0 + c] : 0.0f;
            }
            for (int64_t r = r0; r < r1; r++) {
                const float *ar = a + r * channels + c0;
                if (sum_ab) {
                    const float *br = b + r * channels + c0;
#pragma omp simd
                    for (int c = 0; c < cb; c++) {
                        pa[c] += ar[c];
                        pab[c] += (double)ar[c] * ((double)br[c] - sh[c]);
                    }
                } else {
#pragma omp simd
                    for (int c = 0; c < cb; c++) pa[c] += ar[c];
                }
            }
        }
        for (int c = 0; c < cb; c++) {
            double ta = 0, tab = 0;
            for (int s = 0; s < slices; s++) {
                ta += part_a[s][c];
                tab += part_ab[s][c];
            }
            sum_a[c0 + c] = ta;
            if (sum_ab) sum_ab[c0 + c] = tab;
        }
    }
}
