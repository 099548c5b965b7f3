/*
 * Finite-difference gradient checks of every CPU op's backward, with no
 * reference but the op's own forward (runs without PyTorch).
 *
 * For an op y = f(inputs) and a fixed random upstream gradient r, the
 * scalar L = sum_i r_i * y_i (summed in double) has dL/dinput = the op's
 * backward applied to dy = r. For a few random coordinates of every input
 * we compare that with the central difference (L(v+h) - L(v-h)) / (v+h -
 * (v-h)), the denominator taken after rounding v+-h to float32.
 *
 * Tolerance: |numeric - analytic| <= 2e-3 * max(1, |analytic|). Why it is
 * enough and not loose: the error of a central difference is truncation
 * h^2/6 * f''' plus rounding. Conv, linear, pools, flatten, dropout and the
 * activations away from their kinks are (piecewise) linear, so truncation
 * is zero; BN and softmax are smooth with O(1) third derivatives on these
 * O(1) inputs, so with h = 1e-2 truncation is ~2e-5. Rounding: only outputs
 * that depend on the perturbed value change (the others are recomputed
 * bit-identically and cancel); each carries ~u*|y| = 6e-8*|y| error, and
 * m of them add ~sqrt(m)*u*|y|, divided by 2h = 2e-2 that is < 1e-4 for the
 * m <= ~500 outputs here. A wrong gradient (a missed term, a transposed
 * index, a wrong scale) is off by O(1) relative.
 *
 * Piecewise-linear ops are checked away from their kinks: ReLU/ReLU6 inputs
 * within 2h of 0 or 6 are not sampled, and max pooling inputs are distinct
 * values at least 5h apart, so +-h never changes a window's argmax.
 */
#include "ics_build_config.h"
#include "test_util.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_H 1e-2f
#define FD_SAMPLES 6
#define FD_RTOL 2e-3

static const ics_backend_ops *ops;
static uint64_t rng = 777;

static float *rnd(int64_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    ics_test_fill_uniform(x, (size_t)n, lo, hi, &rng);
    return x;
}

static float *zeros(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }

static int64_t rand_index(int64_t n)
{
    float f;
    ics_test_fill_uniform(&f, 1, 0.0f, 1.0f, &rng);
    int64_t i = (int64_t)(f * (float)n);
    return i >= n ? n - 1 : i;
}

/* One problem: inputs to perturb, their analytic gradients, and a forward
 * that writes the outputs. */
#define MAX_INPUTS 3
typedef struct fd_problem fd_problem;
struct fd_problem {
    const char *name;
    int n_inputs;
    const char *input_names[MAX_INPUTS];
    float *inputs[MAX_INPUTS];
    int64_t sizes[MAX_INPUTS];
    float *grads[MAX_INPUTS];
    int64_t out_size;
    float *r; /* upstream gradient */
    void (*forward)(const fd_problem *p, float *y);
    /* Optional: 1 when coordinate i of input k may be sampled (kinks). */
    int (*samplable)(const fd_problem *p, int k, int64_t i);
    const void *ctx;
};

static double loss_of(const fd_problem *p, float *y)
{
    p->forward(p, y);
    double l = 0;
    for (int64_t i = 0; i < p->out_size; i++) l += (double)p->r[i] * y[i];
    return l;
}

/* Samples FD_SAMPLES coordinates of every input; returns the worst
 * |numeric - analytic| / max(1, |analytic|). */
static double fd_check(const fd_problem *p)
{
    float *y = malloc(sizeof(float) * (size_t)p->out_size);
    double worst = 0;
    for (int k = 0; k < p->n_inputs; k++) {
        for (int s = 0; s < FD_SAMPLES; s++) {
            int64_t i = rand_index(p->sizes[k]);
            for (int tries = 0; p->samplable && !p->samplable(p, k, i) && tries < 1000; tries++)
                i = rand_index(p->sizes[k]);
            float *v = &p->inputs[k][i];
            const float saved = *v;
            const float up = saved + FD_H, down = saved - FD_H;
            *v = up;
            const double lp = loss_of(p, y);
            *v = down;
            const double lm = loss_of(p, y);
            *v = saved;
            const double numeric = (lp - lm) / ((double)up - (double)down);
            const double analytic = p->grads[k][i];
            const double err = fabs(numeric - analytic) / fmax(1.0, fabs(analytic));
            if (err > FD_RTOL)
                fprintf(stderr, "%s: d/d%s[%lld]: numeric %.7g analytic %.7g\n", p->name,
                        p->input_names[k], (long long)i, numeric, analytic);
            if (err > worst) worst = err;
        }
    }
    free(y);
    return worst;
}

static void fd_free(fd_problem *p)
{
    for (int k = 0; k < p->n_inputs; k++) free(p->inputs[k]), free(p->grads[k]);
    free(p->r);
}

/* ------------------------------------------------------------ conv2d */

typedef struct conv_ctx {
    ics_conv2d_desc d;
    void *ws;
} conv_ctx;

static void conv_forward(const fd_problem *p, float *y)
{
    const conv_ctx *c = p->ctx;
    ops->conv2d_forward(&c->d, p->inputs[0], p->inputs[1], p->inputs[2], y, c->ws);
}

static void check_conv(int n, int h, int w, int cin, int cout, int k, int s, int pad, int groups)
{
    conv_ctx c = {.d = {.batch = n, .in_h = h, .in_w = w, .in_c = cin, .out_c = cout, .kernel_h = k,
                        .kernel_w = k, .stride_h = s, .stride_w = s, .pad_h = pad, .pad_w = pad,
                        .groups = groups}};
    ics_conv2d_desc_finish(&c.d);
    size_t wsb = ops->conv2d_workspace_bytes(&c.d);
    c.ws = malloc(wsb ? wsb : 1);
    fd_problem p = {.name = "conv2d", .n_inputs = 3, .input_names = {"x", "weight", "bias"},
                    .forward = conv_forward, .ctx = &c};
    p.sizes[0] = (int64_t)n * h * w * cin;
    p.sizes[1] = (int64_t)cout * (cin / groups) * k * k;
    p.sizes[2] = cout;
    p.out_size = (int64_t)n * c.d.out_h * c.d.out_w * cout;
    for (int i = 0; i < 3; i++) p.inputs[i] = rnd(p.sizes[i], -1, 1), p.grads[i] = zeros(p.sizes[i]);
    p.r = rnd(p.out_size, -1, 1);
    ops->conv2d_backward(&c.d, p.inputs[0], p.inputs[1], p.r, p.grads[0], p.grads[1], p.grads[2],
                         c.ws);
    CU_ASSERT(fd_check(&p) <= FD_RTOL);
    fd_free(&p);
    free(c.ws);
}

static void test_conv2d_fd(void)
{
    check_conv(2, 7, 6, 3, 4, 3, 2, 1, 1); /* small K (first layer): direct */
    check_conv(2, 6, 5, 5, 4, 3, 2, 1, 1); /* im2col */
    check_conv(2, 5, 5, 6, 4, 3, 1, 1, 2); /* groups */
    check_conv(2, 4, 5, 5, 3, 1, 1, 0, 1); /* pointwise */
    check_conv(2, 7, 7, 4, 4, 3, 2, 1, 4); /* depthwise */
}

/* ------------------------------------------------------------ batchnorm */

typedef struct bn_ctx {
    int64_t rows;
    int c;
} bn_ctx;

static void bn_forward(const fd_problem *p, float *y)
{
    const bn_ctx *b = p->ctx;
    float mean[16], invstd[16], rm[16] = {0}, rv[16] = {0};
    ops->batchnorm_forward_train(b->rows, b->c, p->inputs[0], p->inputs[1], p->inputs[2], rm, rv,
                                 0.1f, 1e-5f, y, mean, invstd);
}

static void test_batchnorm_fd(void)
{
    bn_ctx b = {.rows = 2 * 3 * 4, .c = 5};
    fd_problem p = {.name = "batchnorm", .n_inputs = 3, .input_names = {"x", "gamma", "beta"},
                    .forward = bn_forward, .ctx = &b};
    p.sizes[0] = p.out_size = b.rows * b.c;
    p.sizes[1] = p.sizes[2] = b.c;
    p.inputs[0] = rnd(p.sizes[0], -1, 1);
    p.inputs[1] = rnd(b.c, 0.5f, 1.5f);
    p.inputs[2] = rnd(b.c, -0.5f, 0.5f);
    for (int i = 0; i < 3; i++) p.grads[i] = zeros(p.sizes[i]);
    p.r = rnd(p.out_size, -1, 1);
    float mean[16], invstd[16], rm[16] = {0}, rv[16] = {0};
    float *y = malloc(sizeof(float) * (size_t)p.out_size);
    ops->batchnorm_forward_train(b.rows, b.c, p.inputs[0], p.inputs[1], p.inputs[2], rm, rv, 0.1f,
                                 1e-5f, y, mean, invstd);
    ops->batchnorm_backward(b.rows, b.c, p.inputs[0], p.r, p.inputs[1], mean, invstd, p.grads[0],
                            p.grads[1], p.grads[2]);
    CU_ASSERT(fd_check(&p) <= FD_RTOL);
    free(y);
    fd_free(&p);
}

/* ------------------------------------------------------------ activations */

static void relu_fwd(const fd_problem *p, float *y) { ops->relu_forward(p->out_size, p->inputs[0], y); }
static void relu6_fwd(const fd_problem *p, float *y) { ops->relu6_forward(p->out_size, p->inputs[0], y); }

static int away_from_kinks(const fd_problem *p, int k, int64_t i)
{
    const float v = p->inputs[k][i];
    return fabsf(v) > 2 * FD_H && fabsf(v - 6.0f) > 2 * FD_H;
}

static void check_activation(const char *name, void (*fwd)(const fd_problem *, float *),
                             void (*bwd)(int64_t, const float *, const float *, float *))
{
    const int64_t n = 200;
    fd_problem p = {.name = name, .n_inputs = 1, .input_names = {"x"}, .forward = fwd,
                    .samplable = away_from_kinks, .out_size = n};
    p.sizes[0] = n;
    p.inputs[0] = rnd(n, -3, 9);
    p.grads[0] = zeros(n);
    p.r = rnd(n, -1, 1);
    float *y = malloc(sizeof(float) * n);
    fwd(&p, y);
    bwd(n, y, p.r, p.grads[0]);
    CU_ASSERT(fd_check(&p) <= FD_RTOL);
    free(y);
    fd_free(&p);
}

static void test_activations_fd(void)
{
    check_activation("relu", relu_fwd, ops->relu_backward);
    check_activation("relu6", relu6_fwd, ops->relu6_backward);
}

/* ------------------------------------------------------------ dropout */

static const uint8_t *drop_mask;
static void dropout_fwd(const fd_problem *p, float *y)
{
    ops->dropout_forward(p->out_size, 0.25f, p->inputs[0], drop_mask, y);
}

static void test_dropout_fd(void)
{
    const int64_t n = 100;
    uint8_t mask[100];
    float *m = rnd(n, 0, 1);
    for (int i = 0; i < n; i++) mask[i] = m[i] > 0.25f;
    free(m);
    drop_mask = mask;
    fd_problem p = {.name = "dropout", .n_inputs = 1, .input_names = {"x"}, .forward = dropout_fwd,
                    .out_size = n};
    p.sizes[0] = n;
    p.inputs[0] = rnd(n, -1, 1);
    p.grads[0] = zeros(n);
    p.r = rnd(n, -1, 1);
    ops->dropout_backward(n, 0.25f, p.r, mask, p.grads[0]);
    CU_ASSERT(fd_check(&p) <= FD_RTOL);
    fd_free(&p);
}

/* ------------------------------------------------------------ pools */

typedef struct pool_ctx {
    ics_pool2d_desc d;
    int32_t *argmax;
} pool_ctx;

static void maxpool_fwd(const fd_problem *p, float *y)
{
    const pool_ctx *c = p->ctx;
    ops->maxpool2d_forward(&c->d, p->inputs[0], y, c->argmax);
}
static void avgpool_fwd(const fd_problem *p, float *y)
{
    const pool_ctx *c = p->ctx;
    ops->avgpool2d_forward(&c->d, p->inputs[0], y);
}
static void adaptive_fwd(const fd_problem *p, float *y)
{
    const ics_pool2d_desc *d = &((const pool_ctx *)p->ctx)->d;
    ops->adaptive_avgpool2d_forward(d->batch, d->in_h, d->in_w, d->channels, d->out_h, d->out_w,
                                    p->inputs[0], y);
}

static void check_pool(int kind, int ceil, int include_pad)
{
    pool_ctx c = {.d = {.batch = 2, .in_h = 7, .in_w = 6, .channels = 3, .kernel_h = 3,
                        .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1,
                        .ceil_mode = ceil, .count_include_pad = include_pad}};
    if (kind == 2)
        c.d.out_h = 3, c.d.out_w = 4; /* adaptive, non-divisible */
    else
        ics_pool2d_desc_finish(&c.d);
    const int64_t nx = (int64_t)c.d.batch * c.d.in_h * c.d.in_w * c.d.channels;
    const int64_t ny = (int64_t)c.d.batch * c.d.out_h * c.d.out_w * c.d.channels;
    c.argmax = malloc(sizeof(int32_t) * (size_t)ny);
    fd_problem p = {.name = kind == 0 ? "maxpool" : kind == 1 ? "avgpool" : "adaptive_avgpool",
                    .n_inputs = 1, .input_names = {"x"}, .out_size = ny, .ctx = &c,
                    .forward = kind == 0 ? maxpool_fwd : kind == 1 ? avgpool_fwd : adaptive_fwd};
    p.sizes[0] = nx;
    p.inputs[0] = rnd(nx, -1, 1);
    if (kind == 0) {
        /* Distinct values 5h apart, in a shuffled order (Fisher-Yates). */
        for (int64_t i = 0; i < nx; i++) p.inputs[0][i] = (float)i * 5 * FD_H;
        for (int64_t i = nx - 1; i > 0; i--) {
            int64_t j = rand_index(i + 1);
            float t = p.inputs[0][i];
            p.inputs[0][i] = p.inputs[0][j], p.inputs[0][j] = t;
        }
    }
    p.grads[0] = zeros(nx);
    p.r = rnd(ny, -1, 1);
    float *y = malloc(sizeof(float) * (size_t)ny);
    p.forward(&p, y);
    if (kind == 0)
        ops->maxpool2d_backward(&c.d, p.r, c.argmax, p.grads[0]);
    else if (kind == 1)
        ops->avgpool2d_backward(&c.d, p.r, p.grads[0]);
    else
        ops->adaptive_avgpool2d_backward(c.d.batch, c.d.in_h, c.d.in_w, c.d.channels, c.d.out_h,
                                         c.d.out_w, p.r, p.grads[0]);
    CU_ASSERT(fd_check(&p) <= FD_RTOL);
    free(y), free(c.argmax);
    fd_free(&p);
}

static void test_pools_fd(void)
{
    check_pool(0, 0, 1);
    check_pool(0, 1, 1);
    check_pool(1, 1, 1);
    check_pool(1, 0, 0);
    check_pool(2, 0, 0);
}

/* ------------------------------------------------------------ flatten, linear */

static void flatten_fwd(const fd_problem *p, float *y) { ops->flatten_forward(2, 3, 4, 5, p->inputs[0], y); }

static void test_flatten_fd(void)
{
    const int64_t n = 2 * 3 * 4 * 5;
    fd_problem p = {.name = "flatten", .n_inputs = 1, .input_names = {"x"}, .forward = flatten_fwd,
                    .out_size = n};
    p.sizes[0] = n;
    p.inputs[0] = rnd(n, -1, 1);
    p.grads[0] = zeros(n);
    p.r = rnd(n, -1, 1);
    ops->flatten_backward(2, 3, 4, 5, p.r, p.grads[0]);
    CU_ASSERT(fd_check(&p) <= FD_RTOL);
    fd_free(&p);
}

static void linear_fwd(const fd_problem *p, float *y)
{
    ops->linear_forward(3, 7, 4, p->inputs[0], p->inputs[1], p->inputs[2], y);
}

static void test_linear_fd(void)
{
    fd_problem p = {.name = "linear", .n_inputs = 3, .input_names = {"x", "weight", "bias"},
                    .forward = linear_fwd, .out_size = 3 * 4};
    p.sizes[0] = 3 * 7, p.sizes[1] = 4 * 7, p.sizes[2] = 4;
    for (int i = 0; i < 3; i++) p.inputs[i] = rnd(p.sizes[i], -1, 1), p.grads[i] = zeros(p.sizes[i]);
    p.r = rnd(p.out_size, -1, 1);
    ops->linear_backward(3, 7, 4, p.inputs[0], p.inputs[1], p.r, p.grads[0], p.grads[1], p.grads[2]);
    CU_ASSERT(fd_check(&p) <= FD_RTOL);
    fd_free(&p);
}

/* ------------------------------------------------------------ cross-entropy */

static const int32_t xent_labels[4] = {3, 0, 6, 2};
static float xent_ls;

static void xent_fwd(const fd_problem *p, float *y)
{
    float probs[4 * 7];
    y[0] = ops->softmax_xent_forward(4, 7, p->inputs[0], xent_labels, xent_ls, probs);
}

static void check_xent(float ls)
{
    xent_ls = ls;
    fd_problem p = {.name = "softmax_xent", .n_inputs = 1, .input_names = {"logits"},
                    .forward = xent_fwd, .out_size = 1};
    p.sizes[0] = 4 * 7;
    p.inputs[0] = rnd(p.sizes[0], -2, 2);
    p.grads[0] = zeros(p.sizes[0]);
    p.r = malloc(sizeof(float));
    p.r[0] = 1.0f;
    float probs[4 * 7];
    ops->softmax_xent_forward(4, 7, p.inputs[0], xent_labels, ls, probs);
    ops->softmax_xent_backward(4, 7, probs, xent_labels, ls, 1.0f, p.grads[0]);
    /* The gradients are O(1/N) here, so compare them scaled to O(1): the
     * tolerance's max(1, |g|) would otherwise hide a wrong answer. */
    for (int64_t i = 0; i < p.sizes[0]; i++) p.grads[0][i] *= 4;
    p.r[0] = 4.0f;
    CU_ASSERT(fd_check(&p) <= FD_RTOL);
    fd_free(&p);
}

static void test_xent_fd(void)
{
    check_xent(0.0f);
    check_xent(0.1f);
}

/* Determinism: BN, bias and depthwise/small-K gradients give the same bits
 * with 1 and 2 threads (their reductions split by shape, not threads). */
static void test_thread_count_independence(void)
{
    const int64_t rows = 4 * 9 * 9;
    const int c = 24;
    float *x = rnd(rows * c, -1, 1), *g = rnd(c, 0.5f, 1.5f), *b = rnd(c, -1, 1);
    float *dy = rnd(rows * c, -1, 1);
    float *y[2], *dx[2], dg[2][24], db[2][24], mean[24], invstd[24], rm[24], rv[24];
    ics_conv2d_desc d = {.batch = 4, .in_h = 9, .in_w = 9, .in_c = c, .out_c = c, .kernel_h = 3,
                         .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1,
                         .groups = c};
    ics_conv2d_desc_finish(&d);
    float *w = rnd(c * 9, -1, 1), dw[2][24 * 9], dcb[2][24];
    void *ws = malloc(ops->conv2d_workspace_bytes(&d));
    for (int t = 0; t < 2; t++) {
        ics_backend_cpu_set_threads(t + 1);
        CU_ASSERT_EQUAL(ics_backend_cpu_threads(), t + 1);
        y[t] = zeros(rows * c), dx[t] = zeros(rows * c);
        memset(dg[t], 0, sizeof dg[t]), memset(db[t], 0, sizeof db[t]);
        memset(dw[t], 0, sizeof dw[t]), memset(dcb[t], 0, sizeof dcb[t]);
        ops->batchnorm_forward_train(rows, c, x, g, b, rm, rv, 0.1f, 1e-5f, y[t], mean, invstd);
        ops->batchnorm_backward(rows, c, x, dy, g, mean, invstd, dx[t], dg[t], db[t]);
        ops->conv2d_backward(&d, x, w, dy, NULL, dw[t], dcb[t], ws);
    }
    ics_backend_cpu_set_threads(0);
    CU_ASSERT(memcmp(y[0], y[1], sizeof(float) * (size_t)(rows * c)) == 0);
    CU_ASSERT(memcmp(dx[0], dx[1], sizeof(float) * (size_t)(rows * c)) == 0);
    CU_ASSERT(memcmp(dg[0], dg[1], sizeof dg[0]) == 0);
    CU_ASSERT(memcmp(db[0], db[1], sizeof db[0]) == 0);
    CU_ASSERT(memcmp(dw[0], dw[1], sizeof dw[0]) == 0);
    CU_ASSERT(memcmp(dcb[0], dcb[1], sizeof dcb[0]) == 0);
    for (int t = 0; t < 2; t++) free(y[t]), free(dx[t]);
    free(x), free(g), free(b), free(dy), free(w), free(ws);
}

/* The im2col path splits the batch between threads and adds their weight
 * gradients in a fixed order: two runs with the same thread count give the
 * same bits (backend.h's promise), with several chunks per worker. */
static void test_im2col_repeatable(void)
{
    ics_conv2d_desc d = {.batch = 6, .in_h = 9, .in_w = 9, .in_c = 8, .out_c = 12, .kernel_h = 3,
                         .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1,
                         .groups = 1};
    ics_conv2d_desc_finish(&d);
    const int64_t nx = 6 * 9 * 9 * 8, ny = 6 * 9 * 9 * 12, nw = 12 * 8 * 9;
    float *x = rnd(nx, -1, 1), *w = rnd(nw, -1, 1), *dy = rnd(ny, -1, 1);
    float *dw[2], *dx[2];
    cpu_conv2d_set_chunk_bytes(sizeof(float) * 81 * 72); /* one image per chunk */
    ics_backend_cpu_set_threads(2);
    void *ws = malloc(ops->conv2d_workspace_bytes(&d));
    for (int run = 0; run < 2; run++) {
        dw[run] = zeros(nw), dx[run] = zeros(nx);
        ops->conv2d_backward(&d, x, w, dy, dx[run], dw[run], NULL, ws);
    }
    CU_ASSERT(memcmp(dw[0], dw[1], sizeof(float) * (size_t)nw) == 0);
    CU_ASSERT(memcmp(dx[0], dx[1], sizeof(float) * (size_t)nx) == 0);
    cpu_conv2d_set_chunk_bytes(0);
    ics_backend_cpu_set_threads(0);
    for (int run = 0; run < 2; run++) free(dw[run]), free(dx[run]);
    free(x), free(w), free(dy), free(ws);
}

/* The shape helpers follow PyTorch's formulas; every expected value below
 * is what torch 1.13 gives for the same arguments. */
static void test_output_shapes(void)
{
    ics_conv2d_desc d = {.batch = 1, .in_h = 224, .in_w = 223, .in_c = 3, .out_c = 64, .kernel_h = 7,
                         .kernel_w = 7, .stride_h = 2, .stride_w = 2, .pad_h = 3, .pad_w = 3,
                         .groups = 1};
    ics_conv2d_desc_finish(&d);
    CU_ASSERT_EQUAL(d.out_h, 112);
    CU_ASSERT_EQUAL(d.out_w, 112);
    /* max_pool2d(kernel (3, 2), stride 2, padding (1, 0)) on 112 x 5. */
    ics_pool2d_desc p = {.batch = 1, .in_h = 112, .in_w = 5, .channels = 1, .kernel_h = 3,
                         .kernel_w = 2, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 0};
    ics_pool2d_desc_finish(&p);
    CU_ASSERT_EQUAL(p.out_h, 56);
    CU_ASSERT_EQUAL(p.out_w, 2);
    p.ceil_mode = 1; /* ceil adds the partial windows: 57 x 3 */
    ics_pool2d_desc_finish(&p);
    CU_ASSERT_EQUAL(p.out_h, 57);
    CU_ASSERT_EQUAL(p.out_w, 3);
    p.in_h = 7; /* 7 + 2 - 3 = 6 -> 3 + 1 = 4, last start 6 < 7 + 1 kept */
    ics_pool2d_desc_finish(&p);
    CU_ASSERT_EQUAL(p.out_h, 4);
    p.in_h = 4, p.kernel_h = 2; /* span 4 -> 3 windows, last start 4 < 5 kept */
    ics_pool2d_desc_finish(&p);
    CU_ASSERT_EQUAL(p.out_h, 3);
    p.in_h = 5; /* span 5 -> ceil 4 windows, but the 4th starts at 6 >= 5 + 1
                 * (inside the right padding): torch drops it, 3 */
    ics_pool2d_desc_finish(&p);
    CU_ASSERT_EQUAL(p.out_h, 3);
}

int main(void)
{
    ops = ics_backend_cpu();
    static const ics_test_case cases[] = {
        {"conv2d (small K, im2col, groups, pointwise, depthwise)", test_conv2d_fd},
        {"batchnorm (training statistics)", test_batchnorm_fd},
        {"relu, relu6", test_activations_fd},
        {"dropout", test_dropout_fd},
        {"max, avg, adaptive pooling", test_pools_fd},
        {"flatten", test_flatten_fd},
        {"linear", test_linear_fd},
        {"softmax cross-entropy", test_xent_fd},
        {"bitwise equal for 1 and 2 threads", test_thread_count_independence},
        {"im2col backward repeatable with 2 threads", test_im2col_repeatable},
        {"output shapes follow PyTorch", test_output_shapes},
        {NULL, NULL}};
    ics_test_add_suite("ops finite differences", cases);
    return ics_test_main("test_ops_fd");
}
