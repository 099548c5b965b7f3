/*
 * src/backend/cpu/cpu_conv2d.c: conv2d forward and backward on NHWC
 * activations with PyTorch's OIHW weights.
 *
 * Three paths, chosen by shape (docs/DESIGN-ENGINE.md):
 *  - pointwise (1x1, stride 1, no padding, one group): in NHWC the input is
 *    already the GEMM operand, y[NHW, Cout] = x[NHW, Cin] * W^T, no copy;
 *  - depthwise (groups == in_c == out_c): direct kernels (cpu_depthwise.c),
 *    since a per-channel GEMM would have K = KH*KW ~ 9 and be all overhead;
 *  - tiny K = in_c*KH*KW (the first layer on 1 or 3 channels): direct
 *    kernels too (cpu_conv_smallk.c), for the same reason;
 *  - everything else: im2col (cpu_im2col.c) into the workspace, one GEMM per
 *    group, processed a few images at a time so the column matrix stays
 *    under COL_CHUNK_BYTES however large the batch.
 * Forward:  y   = col * Wp^T          (Wp: the weight permuted to (kh,kw,c))
 * Backward: dWp = dy^T * col,  dcol = dy * Wp, dx = col2im(dcol).
 * conv2d_forward_fused adds an epilogue (an evaluation-mode BN, then ReLU
 * or ReLU6) that every path applies to the part of y it has just written:
 * per chunk of images (im2col), per row block (pointwise), per output row
 * (direct kernels). The model uses it for conv + BN + ReLU at inference.
 */
#include "ics_build_config.h"

#include "backend/cpu/cpu_ops.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Upper bound of one chunk's column matrix (always at least one image).
 * Small enough that the column matrix is still in cache (L2 + L3) when the
 * GEMM packs it right after im2col wrote it: measured on the small CNN's
 * 32->64 3x3 layer and a ResNet 64->64 3x3 layer, one thread, 0.5-4 MiB
 * chunks ran 1.5x faster than 32 MiB ones. Large enough that the GEMMs keep
 * ~1000+ rows to split between threads. Also bounds the workspace whatever
 * the batch. Changed only by the test hook below. */
#define COL_CHUNK_BYTES ((size_t)4 << 20)
static size_t col_chunk_bytes = COL_CHUNK_BYTES;

/* Test hook (see cpu_ops.h): 0 restores the default. */
void cpu_conv2d_set_chunk_bytes(size_t bytes) { col_chunk_bytes = bytes ? bytes : COL_CHUNK_BYTES; }

/* Workspace offsets are rounded to cache lines. */
#define ALIGN_BYTES ((size_t)64)

static size_t round_up(size_t bytes) { return (bytes + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }

static int is_pointwise(const ics_conv2d_desc *d)
{
    return d->kernel_h == 1 && d->kernel_w == 1 && d->stride_h == 1 && d->stride_w == 1 &&
           d->pad_h == 0 && d->pad_w == 0 && d->groups == 1;
}

static int is_depthwise(const ics_conv2d_desc *d)
{
    return d->groups > 1 && d->groups == d->in_c && d->groups == d->out_c;
}

/* The geometry of the im2col path, derived from the descriptor and the
 * machine's worker slots alone, so the planner (workspace_bytes) and the
 * kernels agree. Workspace: the permuted weight, then per worker slot one
 * chunk's column matrix and one partial (permuted) weight gradient. */
typedef struct conv_plan {
    int cg_in, cg_out;   /* channels per group */
    int64_t k;           /* GEMM K = KH*KW*cg_in */
    int64_t pixels;      /* output pixels per image */
    int chunk_images;    /* images per column matrix */
    int chunks;          /* ceil(batch / chunk_images) */
    int slots;           /* per-thread scratch sets */
    int permute;         /* 1 when OIHW differs from (o, kh, kw, c) order */
    size_t wperm_offset, slot_offset, slot_bytes, dw_in_slot, total_bytes;
} conv_plan;

static conv_plan plan_im2col(const ics_conv2d_desc *d)
{
    conv_plan p;
    p.cg_in = d->in_c / d->groups;
    p.cg_out = d->out_c / d->groups;
    p.k = (int64_t)d->kernel_h * d->kernel_w * p.cg_in;
    p.pixels = (int64_t)d->out_h * d->out_w;
    size_t image_col_bytes = (size_t)(p.pixels * p.k) * sizeof(float);
    size_t fit = image_col_bytes ? col_chunk_bytes / image_col_bytes : (size_t)d->batch;
    if (fit < 1) fit = 1;
    p.chunk_images = fit < (size_t)d->batch ? (int)fit : d->batch;
    if (p.chunk_images < 1) p.chunk_images = 1;
    p.chunks = (d->batch + p.chunk_images - 1) / p.chunk_images;
    p.slots = cpu_worker_slots();
    if (p.slots > p.chunks) p.slots = p.chunks > 0 ? p.chunks : 1;
    /* With one input channel per group or a 1x1 kernel both orders agree. */
    p.permute = p.cg_in > 1 && d->kernel_h * d->kernel_w > 1;
    size_t weight_bytes = round_up((size_t)d->out_c * (size_t)p.k * sizeof(float));
    p.wperm_offset = 0;
    p.slot_offset = p.permute ? weight_bytes : 0;
    p.dw_in_slot = round_up((size_t)p.chunk_images * image_col_bytes);
    p.slot_bytes = p.dw_in_slot + weight_bytes;
    p.total_bytes = p.slot_offset + (size_t)p.slots * p.slot_bytes;
    return p;
}

/* See backend.h: bytes of scratch the chosen path needs. */
size_t cpu_conv2d_workspace_bytes(const ics_conv2d_desc *d)
{
    if (is_pointwise(d)) return 0;
    if (is_depthwise(d)) return cpu_depthwise_workspace_bytes(d);
    if (cpu_conv_smallk_applies(d)) return cpu_conv_smallk_workspace_bytes(d);
    return plan_im2col(d).total_bytes;
}

/* dst[o][kh][kw][c] = src[o][c][kh][kw]: OIHW to the im2col K order. */
static void permute_weight_to_khwc(const ics_conv2d_desc *d, int cg, const float *src, float *dst)
{
    const int khw = d->kernel_h * d->kernel_w;
    for (int o = 0; o < d->out_c; o++) {
        const float *s = src + (int64_t)o * cg * khw;
        float *t = dst + (int64_t)o * cg * khw;
        for (int c = 0; c < cg; c++)
            for (int k = 0; k < khw; k++) t[(int64_t)k * cg + c] = s[(int64_t)c * khw + k];
    }
}

/* rows x channels: every row set to bias (the GEMM then adds with beta=1,
 * which costs one write pass instead of a separate read-modify-write). */
static void fill_rows_with_bias(int64_t rows, int channels, const float *bias, float *y)
{
    const int parallel = rows * channels >= ICS_CPU_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; r++) memcpy(y + r * channels, bias, sizeof(float) * (size_t)channels);
}

/* dbias[c] += sum over rows of dy[r, c]. */
static void accumulate_bias_grad(int64_t rows, int channels, const float *dy, float *dbias)
{
    double sums[channels];
    cpu_channel_sums(rows, channels, dy, NULL, NULL, sums, NULL);
    for (int c = 0; c < channels; c++) dbias[c] += (float)sums[c];
}

/* How many threads share the chunks. With at least one chunk per worker,
 * each worker processes whole chunks (im2col and a single-threaded
 * GEMM on its own slot: no synchronisation inside a chunk, and its column
 * matrix stays in its own core's cache). With fewer chunks than workers
 * (a small batch of large images) the chunks run one after the other and
 * im2col and the GEMM split each chunk instead. */
static int chunk_workers(const conv_plan *p)
{
    int w = cpu_worker_count();
    if (w > p->slots) w = p->slots;
    return p->chunks >= w ? w : 1;
}

static int worker_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Forward of images [n0, n0 + count) with the given scratch column matrix;
 * the epilogue (ep may be NULL) runs over the chunk's rows of y right
 * after its GEMMs, while they are still in cache. */
static void im2col_forward_chunk(const ics_conv2d_desc *d, const conv_plan *p, const float *x,
                                 const float *wp, float beta, const cpu_epilogue *ep, int n0,
                                 int count, float *col, float *y)
{
    const int rows = (int)(count * p->pixels);
    float *yc = y + (int64_t)n0 * p->pixels * d->out_c;
    for (int g = 0; g < d->groups; g++) {
        cpu_im2col(d, x, n0, count, g * p->cg_in, p->cg_in, col);
        cpu_gemm(0, 1, rows, p->cg_out, (int)p->k, 1.0f, col, (int)p->k,
                 wp + (int64_t)g * p->cg_out * p->k, (int)p->k, beta, yc + (int64_t)g * p->cg_out,
                 d->out_c);
    }
    if (ep) cpu_epilogue_rows(ep, rows, d->out_c, yc);
}

/* Rows of a pointwise convolution with an epilogue: the GEMM runs on
 * blocks of this many bytes of output, each block's bias fill, GEMM and
 * epilogue back to back, so the GEMM adds to a bias block still in cache
 * and the epilogue reads the result from cache, instead of three passes
 * over y through memory (measured on one thread, 16 x 56 x 56
 * 64->256 and 16 x 112 x 112 16->96 with ReLU: 30 vs 44 ms and 25 vs
 * 45 ms). */
#define POINTWISE_BLOCK_BYTES ((size_t)1 << 20)

/* The pointwise path of conv2d_forward_fused: y = epilogue(x W^T + bias)
 * in row blocks, whole blocks per worker (each a single-threaded GEMM). The
 * blocks are fixed by the shape, so the result is the same for any thread
 * count; OpenBLAS may round a row differently than in one unblocked GEMM
 * (its edge kernels), so it can differ from conv2d_forward's in the last
 * bits. */
static void pointwise_forward_blocked(const ics_conv2d_desc *d, int64_t out_rows, const float *x,
                                      const float *weight, const float *bias,
                                      const cpu_epilogue *ep, float *y)
{
    int64_t block = (int64_t)(POINTWISE_BLOCK_BYTES / ((size_t)d->out_c * sizeof(float)));
    if (block < 64) block = 64;
    const int64_t blocks = (out_rows + block - 1) / block;
    int workers = cpu_worker_count();
    if (workers > blocks) workers = (int)blocks;
    if (2.0 * (double)out_rows * d->out_c * d->in_c < 2e7) workers = 1; /* as cpu_gemm */
#pragma omp parallel for schedule(static) num_threads(workers) if (workers > 1)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t r0 = b * block;
        const int rows = (int)(out_rows - r0 < block ? out_rows - r0 : block);
        float *yb = y + r0 * d->out_c;
        if (bias)
            for (int r = 0; r < rows; r++)
                memcpy(yb + (int64_t)r * d->out_c, bias, sizeof(float) * (size_t)d->out_c);
        cpu_gemm(0, 1, rows, d->out_c, d->in_c, 1.0f, x + r0 * d->in_c, d->in_c, weight, d->in_c,
                 bias ? 1.0f : 0.0f, yb, d->out_c);
        if (ep) cpu_epilogue_rows(ep, rows, d->out_c, yb);
    }
}

/* Both forward entries; `fused` selects the blocked pointwise path
 * (conv2d_forward keeps its single GEMM, and so its bits, for training). */
static void conv2d_forward(const ics_conv2d_desc *d, const float *x, const float *weight,
                           const float *bias, const cpu_epilogue *ep, int fused, float *y,
                           void *workspace)
{
    const int64_t out_rows = (int64_t)d->batch * d->out_h * d->out_w;
    if (out_rows == 0) return;
    if (is_depthwise(d)) {
        cpu_depthwise_forward(d, x, weight, bias, ep, y, workspace);
        return;
    }
    if (!is_pointwise(d) && cpu_conv_smallk_applies(d)) {
        cpu_conv_smallk_forward(d, x, weight, bias, ep, y, workspace);
        return;
    }
    if (is_pointwise(d) && fused) {
        pointwise_forward_blocked(d, out_rows, x, weight, bias, ep, y);
        return;
    }
    const float beta = bias ? 1.0f : 0.0f;
    if (bias) fill_rows_with_bias(out_rows, d->out_c, bias, y);
    if (is_pointwise(d)) {
        cpu_gemm(0, 1, (int)out_rows, d->out_c, d->in_c, 1.0f, x, d->in_c, weight, d->in_c, beta, y,
                 d->out_c);
        return;
    }
    const conv_plan p = plan_im2col(d);
    char *ws = workspace;
    const float *wp = weight;
    if (p.permute) {
        permute_weight_to_khwc(d, p.cg_in, weight, (float *)(ws + p.wperm_offset));
        wp = (const float *)(ws + p.wperm_offset);
    }
    const int workers = chunk_workers(&p);
#pragma omp parallel num_threads(workers) if (workers > 1)
    {
        float *col = (float *)(ws + p.slot_offset + (size_t)worker_id() * p.slot_bytes);
#pragma omp for schedule(static)
        for (int chunk = 0; chunk < p.chunks; chunk++) {
            const int n0 = chunk * p.chunk_images;
            const int count = d->batch - n0 < p.chunk_images ? d->batch - n0 : p.chunk_images;
            im2col_forward_chunk(d, &p, x, wp, beta, ep, n0, count, col, y);
        }
    }
}

/* See backend.h. */
void cpu_conv2d_forward(const ics_conv2d_desc *d, const float *x, const float *weight,
                        const float *bias, float *y, void *workspace)
{
    conv2d_forward(d, x, weight, bias, NULL, 0, y, workspace);
}

/* See backend.h: every path applies the epilogue where it writes y. */
void cpu_conv2d_forward_fused(const ics_conv2d_desc *d, const float *x, const float *weight,
                              const float *bias, const ics_epilogue *ep, float *y, void *workspace)
{
    if (d->out_c <= 0) return;
    float scale[d->out_c], shift[d->out_c];
    cpu_epilogue e;
    conv2d_forward(d, x, weight, bias, cpu_epilogue_resolve(ep, d->out_c, scale, shift, &e), 1, y,
                   workspace);
}

/* Backward of images [n0, n0 + count): the chunk's weight gradient is added
 * to dwp (or written, when first), and its dx rows are written. */
static void im2col_backward_chunk(const ics_conv2d_desc *d, const conv_plan *p, const float *x,
                                  const float *wp, const float *dy, int n0, int count, int first,
                                  float *col, float *dwp, float *dx)
{
    const int rows = (int)(count * p->pixels);
    const float *dyc = dy + (int64_t)n0 * p->pixels * d->out_c;
    for (int g = 0; g < d->groups; g++) {
        const float *dyg = dyc + (int64_t)g * p->cg_out;
        if (dwp) {
            cpu_im2col(d, x, n0, count, g * p->cg_in, p->cg_in, col);
            cpu_gemm(1, 0, p->cg_out, (int)p->k, rows, 1.0f, dyg, d->out_c, col, (int)p->k,
                     first ? 0.0f : 1.0f, dwp + (int64_t)g * p->cg_out * p->k, (int)p->k);
        }
        if (dx) {
            cpu_gemm(0, 0, rows, (int)p->k, p->cg_out, 1.0f, dyg, d->out_c,
                     wp + (int64_t)g * p->cg_out * p->k, (int)p->k, 0.0f, col, (int)p->k);
            cpu_col2im(d, col, n0, count, g * p->cg_in, p->cg_in, dx);
        }
    }
}

/* See backend.h. */
void cpu_conv2d_backward(const ics_conv2d_desc *d, const float *x, const float *weight,
                         const float *dy, float *dx, float *dweight, float *dbias,
                         void *workspace)
{
    const int64_t out_rows = (int64_t)d->batch * d->out_h * d->out_w;
    if (is_depthwise(d)) {
        cpu_depthwise_backward(d, x, weight, dy, dx, dweight, dbias, workspace);
        return;
    }
    if (!is_pointwise(d) && cpu_conv_smallk_applies(d)) {
        cpu_conv_smallk_backward(d, x, weight, dy, dx, dweight, dbias, workspace);
        return;
    }
    if (dbias && out_rows > 0) accumulate_bias_grad(out_rows, d->out_c, dy, dbias);
    if (is_pointwise(d)) {
        const int rows = (int)out_rows;
        if (dweight && rows > 0)
            cpu_gemm(1, 0, d->out_c, d->in_c, rows, 1.0f, dy, d->out_c, x, d->in_c, 1.0f, dweight,
                     d->in_c);
        if (dx && rows > 0)
            cpu_gemm(0, 0, rows, d->in_c, d->out_c, 1.0f, dy, d->out_c, weight, d->in_c, 0.0f, dx,
                     d->in_c);
        return;
    }
    if (out_rows == 0) {
        /* No output pixel reads any input: dx is all zero, dW gets nothing. */
        if (dx) memset(dx, 0, sizeof(float) * (size_t)d->batch * d->in_h * d->in_w * d->in_c);
        return;
    }
    const conv_plan p = plan_im2col(d);
    char *ws = workspace;
    const float *wp = weight;
    if (p.permute && dx) {
        permute_weight_to_khwc(d, p.cg_in, weight, (float *)(ws + p.wperm_offset));
        wp = (const float *)(ws + p.wperm_offset);
    }
    const int workers = chunk_workers(&p);
    int used[workers]; /* 1 when worker w wrote its partial weight gradient */
    for (int w = 0; w < workers; w++) used[w] = 0;
#pragma omp parallel num_threads(workers) if (workers > 1)
    {
        const int w = worker_id();
        char *slot = ws + p.slot_offset + (size_t)w * p.slot_bytes;
        float *col = (float *)slot;
        float *dwp = dweight ? (float *)(slot + p.dw_in_slot) : NULL;
#pragma omp for schedule(static)
        for (int chunk = 0; chunk < p.chunks; chunk++) {
            const int n0 = chunk * p.chunk_images;
            const int count = d->batch - n0 < p.chunk_images ? d->batch - n0 : p.chunk_images;
            im2col_backward_chunk(d, &p, x, wp, dy, n0, count, !used[w], col, dwp, dx);
            used[w] = 1;
        }
    }
    if (!dweight) return;
    /* dweight += the workers' partials, added in worker order (the same
     * static chunk split every call: deterministic for a thread count),
     * permuted back to OIHW when the K order differs. */
    const int khw = d->kernel_h * d->kernel_w;
    const int64_t wsize = (int64_t)d->out_c * p.k;
    for (int w = 0; w < workers; w++) {
        if (!used[w]) continue;
        const float *part = (const float *)(ws + p.slot_offset + (size_t)w * p.slot_bytes + p.dw_in_slot);
        if (!p.permute) {
            for (int64_t i = 0; i < wsize; i++) dweight[i] += part[i];
            continue;
        }
        for (int o = 0; o < d->out_c; o++) {
            const float *s = part + (int64_t)o * p.k;
            float *t = dweight + (int64_t)o * p.k;
            for (int c = 0; c < p.cg_in; c++)
                for (int k = 0; k < khw; k++) t[(int64_t)c * khw + k] += s[(int64_t)k * p.cg_in + c];
        }
    }
}
