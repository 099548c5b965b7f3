/*
 * src/backend/cpu/cpu_gemm.c: one threading runtime, not two.
 *
 * OpenBLAS (Debian's pthread build) keeps its own worker threads, which
 * spin for a while after each GEMM; libgomp's workers spin after each
 * parallel region too. Interleaving the two (im2col in OpenMP, GEMM in
 * OpenBLAS, chunk after chunk) keeps about twice as many threads busy as
 * there are cores: measured on the 2-core machines under load, a ResNet
 * 3x3 layer with 2+2 threads burnt ~8x the CPU time of one thread. So the
 * BLAS runs single-threaded, called from inside our OpenMP workers, and
 * every large GEMM is split here into row blocks, one per thread. A row
 * block of C is computed by the same kernel with the same K order
 * whichever thread runs it, so the result does not depend on the thread
 * count.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Fewer rows than this per block cost more in BLAS call and packing
 * overhead than the parallelism gains. */
#define MIN_ROWS_PER_BLOCK 64
/* Below this many flops (~0.2 ms on one core) a GEMM runs on the calling
 * thread: waking a team costs more than it saves. */
#define MIN_PARALLEL_FLOPS 2e7

/* See cpu_ops.h. */
int cpu_worker_slots(void)
{
#ifdef _OPENMP
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}

/* See cpu_ops.h. */
int cpu_worker_count(void)
{
#ifdef _OPENMP
    int t = omp_get_max_threads(), slots = cpu_worker_slots();
    return t < slots ? t : slots;
#else
    return 1;
#endif
}

/* See cpu_ops.h. Idempotent; cheap enough to call from every entry point
 * that hands out the table. */
void cpu_blas_single_threaded(void)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    static int done;
    if (!done) {
        openblas_set_num_threads(1);
        done = 1;
    }
#endif
}

/* See cpu_ops.h. */
void cpu_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    int blocks = cpu_worker_count();
#ifdef _OPENMP
    if (omp_in_parallel()) blocks = 1; /* already inside a conv worker */
#endif
    if (2.0 * m * n * k < MIN_PARALLEL_FLOPS) blocks = 1;
    if (blocks > m / MIN_ROWS_PER_BLOCK) blocks = m / MIN_ROWS_PER_BLOCK;
    if (blocks <= 1) {
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(blocks)
    for (int t = 0; t < blocks; t++) {
        const int r0 = (int)((int64_t)m * t / blocks), r1 = (int)((int64_t)m * (t + 1) / blocks);
        /* Rows of op(A): rows of A, or columns of A when transposed. */
        const float *at = trans_a ? a + r0 : a + (int64_t)r0 * lda;
        cblas_sgemm(CblasRowMajor, ta, tb, r1 - r0, n, k, alpha, at, lda, b, ldb, beta,
                    c + (int64_t)r0 * ldc, ldc);
    }
}
