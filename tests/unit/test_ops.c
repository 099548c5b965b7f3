/*
 * Cross-checks of every CPU op against PyTorch (Debian's python3-torch, CPU).
 *
 * main() draws all cases (fixed ones that cover the features the engine
 * needs, plus random shapes from a seed), writes their inputs as .npy into
 * one temporary directory with a manifest, and runs tests/torchref/ops_ref.py
 * ONCE (importing torch costs seconds). The script computes the forward and
 * the autograd backward in float64 from the same upstream gradients; the
 * tests then run the C ops and compare.
 *
 * Tolerances, in float32 terms: u = 2^-24 ~ 6e-8 is float32's unit
 * roundoff, and the reference is float64, so the difference is our float32
 * rounding alone. A float32 sum of n products of U(-1,1) values has error
 * about sqrt(n)*u*sum|t_i| (Higham's probabilistic bound), and sum|t_i| ~
 * n/4, so we allow u*n^1.5 absolute (a safety factor of 4) plus 1e-5
 * relative. Single-pass ops (pools, activations, flatten) are allowed a few
 * u. The tolerance is computed per output from its number of terms.
 *
 * Skips (exit 77) when $PYTHON_TORCH cannot import torch; the
 * finite-difference checks in test_ops_fd still run then.
 */
#include "ics_build_config.h"
#include "test_util.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U32 5.96e-8 /* float32 unit roundoff 2^-24 */

static const ics_backend_ops *ops;
static char *dir;
static FILE *manifest;
static uint64_t rng = 12345;
static int torch_ok;

/* ------------------------------------------------------------ helpers */

static float *rnd(int64_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    ics_test_fill_uniform(x, (size_t)n, lo, hi, &rng);
    return x;
}

static float *filled(int64_t n, float v)
{
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) x[i] = v;
    return x;
}

static int rand_int(int lo, int hi) /* inclusive */
{
    float f;
    ics_test_fill_uniform(&f, 1, 0.0f, 1.0f, &rng);
    int v = lo + (int)(f * (float)(hi - lo + 1));
    return v > hi ? hi : v;
}

static void put(const char *name, const char *what, const float *data, int ndim, int64_t d0,
                int64_t d1, int64_t d2, int64_t d3)
{
    char file[128];
    snprintf(file, sizeof file, "%s_%s", name, what);
    int64_t shape[4] = {d0, d1, d2, d3};
    if (ics_test_npy_write_f32(dir, file, data, shape, ndim) != 0) {
        fprintf(stderr, "cannot write %s/%s.npy\n", dir, file);
        exit(1);
    }
}

/* Reads <name>_<what>_ref.npy and checks it holds n elements. */
static float *ref(const char *name, const char *what, int64_t n)
{
    char file[128];
    snprintf(file, sizeof file, "%s_%s_ref", name, what);
    int64_t shape[8];
    int ndim = 0;
    float *r = ics_test_npy_read_f32(dir, file, shape, &ndim);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) count *= shape[i];
    CU_ASSERT_EQUAL(count, n);
    return r;
}

/* Absolute tolerance for a float32 sum of `terms` O(1) products. */
static double sum_atol(double terms) { return 1e-6 + U32 * pow(terms < 1 ? 1 : terms, 1.5); }

static void check(const char *name, const char *what, const float *got, const float *want,
                  int64_t n, double atol, double rtol)
{
    char label[160];
    snprintf(label, sizeof label, "%s %s", name, what);
    double worst = ics_test_compare(label, got, want, (size_t)n, atol, rtol);
    CU_ASSERT(worst <= 1.0);
}

/* want = base + delta (parameter gradients accumulate onto base). */
static float *plus(const float *base, const float *delta, int64_t n)
{
    float *r = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) r[i] = base[i] + delta[i];
    return r;
}

static float *copy(const float *src, int64_t n)
{
    float *r = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(r, src, sizeof(float) * (size_t)n);
    return r;
}

static void *workspace(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) exit(1);
    /* NaN garbage: any read of workspace that was not written shows up. */
    memset(p, 0xff, bytes ? bytes : 64);
    return p;
}

/* ------------------------------------------------------------ conv2d */

typedef struct conv_case {
    char name[16];
    ics_conv2d_desc d;
    int bias;
    float *x, *w, *b, *dy, *dw0, *db0;
} conv_case;

#define MAX_CONV 32
static conv_case convs[MAX_CONV];
static int n_convs;

static void add_conv(int n, int h, int w, int cin, int cout, int kh, int kw, int sh, int sw, int ph,
                     int pw, int groups, int bias)
{
    conv_case *c = &convs[n_convs];
    snprintf(c->name, sizeof c->name, "conv%d", n_convs);
    n_convs++;
    c->d = (ics_conv2d_desc){.batch = n, .in_h = h, .in_w = w, .in_c = cin, .out_c = cout,
                             .kernel_h = kh, .kernel_w = kw, .stride_h = sh, .stride_w = sw,
                             .pad_h = ph, .pad_w = pw, .groups = groups};
    ics_conv2d_desc_finish(&c->d);
    c->bias = bias;
    const ics_conv2d_desc *d = &c->d;
    int64_t nx = (int64_t)n * h * w * cin, nw = (int64_t)cout * (cin / groups) * kh * kw;
    int64_t ny = (int64_t)n * d->out_h * d->out_w * cout;
    c->x = rnd(nx, -1, 1);
    c->w = rnd(nw, -1, 1);
    c->b = rnd(cout, -1, 1);
    c->dy = rnd(ny, -1, 1);
    c->dw0 = rnd(nw, -1, 1);
    c->db0 = rnd(cout, -1, 1);
    put(c->name, "x", c->x, 4, n, h, w, cin);
    put(c->name, "w", c->w, 4, cout, cin / groups, kh, kw);
    put(c->name, "b", c->b, 1, cout, 0, 0, 0);
    put(c->name, "dy", c->dy, 4, n, d->out_h, d->out_w, cout);
    fprintf(manifest, "conv name=%s sh=%d sw=%d ph=%d pw=%d groups=%d bias=%d\n", c->name, sh, sw,
            ph, pw, groups, bias);
}

/* Runs one conv case forward and backward and compares with torch. */
static void check_conv_case(const conv_case *c)
{
    const ics_conv2d_desc *d = &c->d;
    const int cg_in = d->in_c / d->groups, cg_out = d->out_c / d->groups;
    const int64_t nx = (int64_t)d->batch * d->in_h * d->in_w * d->in_c;
    const int64_t nw = (int64_t)d->out_c * cg_in * d->kernel_h * d->kernel_w;
    const int64_t ny = (int64_t)d->batch * d->out_h * d->out_w * d->out_c;
    void *ws = workspace(ops->conv2d_workspace_bytes(d));
    float *y = filled(ny, NAN), *dx = filled(nx, NAN);
    float *dw = copy(c->dw0, nw), *db = copy(c->db0, d->out_c);
    ops->conv2d_forward(d, c->x, c->w, c->bias ? c->b : NULL, y, ws);
    ops->conv2d_backward(d, c->x, c->w, c->dy, dx, dw, c->bias ? db : NULL, ws);

    const double k_fwd = (double)cg_in * d->kernel_h * d->kernel_w + 1;
    const double k_dx = (double)cg_out * d->kernel_h * d->kernel_w;
    const double k_dw = (double)d->batch * d->out_h * d->out_w;
    float *ry = ref(c->name, "y", ny), *rdx = ref(c->name, "dx", nx), *rdw = ref(c->name, "dw", nw);
    float *want_dw = plus(c->dw0, rdw, nw);
    check(c->name, "y", y, ry, ny, sum_atol(k_fwd), 1e-5);
    check(c->name, "dx", dx, rdx, nx, sum_atol(k_dx), 1e-5);
    check(c->name, "dw (accumulated)", dw, want_dw, nw, sum_atol(k_dw), 1e-5);
    if (c->bias) {
        float *rdb = ref(c->name, "db", d->out_c), *want_db = plus(c->db0, rdb, d->out_c);
        check(c->name, "db (accumulated)", db, want_db, d->out_c, sum_atol(k_dw), 1e-5);
        free(rdb);
        free(want_db);
    }
    /* dx == NULL (first layer) must give the same weight gradient. */
    float *dw2 = copy(c->dw0, nw);
    ops->conv2d_backward(d, c->x, c->w, c->dy, NULL, dw2, NULL, ws);
    check(c->name, "dw without dx", dw2, want_dw, nw, sum_atol(k_dw), 1e-5);
    /* and dweight == NULL (frozen weight) the same dx. */
    float *dx2 = filled(nx, NAN);
    ops->conv2d_backward(d, c->x, c->w, c->dy, dx2, NULL, NULL, ws);
    check(c->name, "dx without dw", dx2, rdx, nx, sum_atol(k_dx), 1e-5);
    free(ws), free(y), free(dx), free(dw), free(db), free(ry), free(rdx), free(rdw);
    free(want_dw), free(dw2), free(dx2);
}

static void test_conv2d(void)
{
    /* Round 0 with the default chunking (one chunk at these sizes), round
     * 1 with chunks of one image, round 2 of two images (a remainder when
     * the batch is 3): the multi-chunk path must give the same. */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < n_convs; i++) {
            const ics_conv2d_desc *d = &convs[i].d;
            const size_t image_col = sizeof(float) * (size_t)d->out_h * (size_t)d->out_w *
                                     (size_t)d->kernel_h * (size_t)d->kernel_w *
                                     (size_t)(d->in_c / d->groups);
            cpu_conv2d_set_chunk_bytes(round == 0 ? 0 : (size_t)round * image_col);
            check_conv_case(&convs[i]);
        }
    cpu_conv2d_set_chunk_bytes(0);
}

/* ------------------------------------------------------------ batchnorm */

typedef struct bn_case {
    char name[16];
    int n, h, w, c;
    float momentum, eps;
    float *x, *gamma, *beta, *rm, *rv, *dy, *dg0, *db0;
} bn_case;

#define MAX_BN 8
static bn_case bns[MAX_BN];
static int n_bns;

static void add_bn(int n, int h, int w, int c, float momentum, float eps, float shift)
{
    bn_case *b = &bns[n_bns];
    snprintf(b->name, sizeof b->name, "bn%d", n_bns);
    n_bns++;
    b->n = n, b->h = h, b->w = w, b->c = c, b->momentum = momentum, b->eps = eps;
    int64_t nx = (int64_t)n * h * w * c;
    b->x = rnd(nx, -1 + shift, 1 + shift);
    b->gamma = rnd(c, 0.5f, 1.5f);
    b->beta = rnd(c, -0.5f, 0.5f);
    b->rm = rnd(c, -0.2f, 0.2f);
    b->rv = rnd(c, 0.5f, 1.5f);
    b->dy = rnd(nx, -1, 1);
    b->dg0 = rnd(c, -1, 1);
    b->db0 = rnd(c, -1, 1);
    put(b->name, "x", b->x, 4, n, h, w, c);
    put(b->name, "gamma", b->gamma, 1, c, 0, 0, 0);
    put(b->name, "beta", b->beta, 1, c, 0, 0, 0);
    put(b->name, "rm", b->rm, 1, c, 0, 0, 0);
    put(b->name, "rv", b->rv, 1, c, 0, 0, 0);
    put(b->name, "dy", b->dy, 4, n, h, w, c);
    fprintf(manifest, "bn name=%s momentum=%.9g eps=%.9g\n", b->name, (double)momentum, (double)eps);
}

static void test_batchnorm(void)
{
    for (int i = 0; i < n_bns; i++) {
        const bn_case *b = &bns[i];
        const int64_t rows = (int64_t)b->n * b->h * b->w, nx = rows * b->c;
        float *y = filled(nx, NAN), *ye = filled(nx, NAN), *dx = filled(nx, NAN);
        float *rm = copy(b->rm, b->c), *rv = copy(b->rv, b->c);
        float *mean = filled(b->c, NAN), *invstd = filled(b->c, NAN);
        float *dg = copy(b->dg0, b->c), *dbt = copy(b->db0, b->c);
        ops->batchnorm_forward_eval(rows, b->c, b->x, b->gamma, b->beta, b->rm, b->rv, b->eps, ye);
        ops->batchnorm_forward_train(rows, b->c, b->x, b->gamma, b->beta, rm, rv, b->momentum,
                                     b->eps, y, mean, invstd);
        ops->batchnorm_backward(rows, b->c, b->x, b->dy, b->gamma, mean, invstd, dx, dg, dbt);
        /* Normalised values are O(1..3); the statistics are double sums, so
         * what remains is a few float32 roundings per element. The dx
         * formula subtracts two means of n terms: allow sum_atol(rows)/rows
         * on top (the relative error of a mean), which is tiny. */
        float *r;
        check(b->name, "y eval", ye, r = ref(b->name, "yeval", nx), nx, 1e-5, 1e-5), free(r);
        check(b->name, "y train", y, r = ref(b->name, "y", nx), nx, 2e-5, 1e-5), free(r);
        check(b->name, "running_mean", rm, r = ref(b->name, "rm", b->c), b->c, 1e-6, 1e-5), free(r);
        check(b->name, "running_var", rv, r = ref(b->name, "rv", b->c), b->c, 1e-6, 1e-5), free(r);
        check(b->name, "dx", dx, r = ref(b->name, "dx", nx), nx, 3e-5, 1e-4), free(r);
        float *rd = ref(b->name, "dgamma", b->c), *want = plus(b->dg0, rd, b->c);
        check(b->name, "dgamma (accumulated)", dg, want, b->c, sum_atol((double)rows) * 3, 1e-5);
        free(rd), free(want);
        rd = ref(b->name, "dbeta", b->c), want = plus(b->db0, rd, b->c);
        check(b->name, "dbeta (accumulated)", dbt, want, b->c, sum_atol((double)rows), 1e-5);
        free(rd), free(want);
        free(y), free(ye), free(dx), free(rm), free(rv), free(mean), free(invstd), free(dg), free(dbt);
    }
}

/* ------------------------------------------------------------ pools */

typedef struct pool_case {
    char name[16];
    int max, adaptive;
    ics_pool2d_desc d;
    float *x, *dy;
} pool_case;

#define MAX_POOL 24
static pool_case pools[MAX_POOL];
static int n_pools;

static pool_case *new_pool(const char *prefix, int n, int h, int w, int c)
{
    pool_case *p = &pools[n_pools];
    snprintf(p->name, sizeof p->name, "%s%d", prefix, n_pools);
    n_pools++;
    memset(&p->d, 0, sizeof p->d);
    p->d.batch = n, p->d.in_h = h, p->d.in_w = w, p->d.channels = c;
    p->x = rnd((int64_t)n * h * w * c, -1, 1);
    put(p->name, "x", p->x, 4, n, h, w, c);
    return p;
}

static void pool_dy(pool_case *p)
{
    const ics_pool2d_desc *d = &p->d;
    p->dy = rnd((int64_t)d->batch * d->out_h * d->out_w * d->channels, -1, 1);
    put(p->name, "dy", p->dy, 4, d->batch, d->out_h, d->out_w, d->channels);
}

static void add_pool(int max, int n, int h, int w, int c, int k, int s, int pad, int ceil,
                     int include_pad)
{
    pool_case *p = new_pool(max ? "max" : "avg", n, h, w, c);
    p->max = max;
    p->d.kernel_h = p->d.kernel_w = k;
    p->d.stride_h = p->d.stride_w = s;
    p->d.pad_h = p->d.pad_w = pad;
    p->d.ceil_mode = ceil;
    p->d.count_include_pad = include_pad;
    ics_pool2d_desc_finish(&p->d);
    pool_dy(p);
    fprintf(manifest, "%s name=%s kh=%d kw=%d sh=%d sw=%d ph=%d pw=%d ceil=%d include_pad=%d\n",
            max ? "maxpool" : "avgpool", p->name, k, k, s, s, pad, pad, ceil, include_pad);
}

static void add_adaptive(int n, int h, int w, int c, int oh, int ow)
{
    pool_case *p = new_pool("adapt", n, h, w, c);
    p->adaptive = 1;
    p->d.out_h = oh, p->d.out_w = ow;
    pool_dy(p);
    fprintf(manifest, "adaptive name=%s oh=%d ow=%d\n", p->name, oh, ow);
}

static void test_pools(void)
{
    for (int i = 0; i < n_pools; i++) {
        const pool_case *p = &pools[i];
        const ics_pool2d_desc *d = &p->d;
        const int64_t nx = (int64_t)d->batch * d->in_h * d->in_w * d->channels;
        const int64_t ny = (int64_t)d->batch * d->out_h * d->out_w * d->channels;
        float *y = filled(ny, NAN), *dx = filled(nx, NAN), *r;
        /* A mean of m values is m float32 additions and one product; a
         * max is exact; dx sums at most k*k window contributions. */
        const double atol = 1e-6;
        if (p->max) {
            int32_t *idx = malloc(sizeof(int32_t) * (size_t)(ny ? ny : 1));
            ops->maxpool2d_forward(d, p->x, y, idx);
            ops->maxpool2d_backward(d, p->dy, idx, dx);
            float *fidx = malloc(sizeof(float) * (size_t)(ny ? ny : 1));
            for (int64_t j = 0; j < ny; j++) fidx[j] = (float)idx[j];
            check(p->name, "y", y, r = ref(p->name, "y", ny), ny, 0, 0), free(r);
            check(p->name, "argmax", fidx, r = ref(p->name, "idx", ny), ny, 0, 0), free(r);
            free(idx), free(fidx);
        } else if (p->adaptive) {
            ops->adaptive_avgpool2d_forward(d->batch, d->in_h, d->in_w, d->channels, d->out_h,
                                            d->out_w, p->x, y);
            ops->adaptive_avgpool2d_backward(d->batch, d->in_h, d->in_w, d->channels, d->out_h,
                                             d->out_w, p->dy, dx);
            check(p->name, "y", y, r = ref(p->name, "y", ny), ny, atol, 1e-5), free(r);
        } else {
            ops->avgpool2d_forward(d, p->x, y);
            ops->avgpool2d_backward(d, p->dy, dx);
            check(p->name, "y", y, r = ref(p->name, "y", ny), ny, atol, 1e-5), free(r);
        }
        check(p->name, "dx", dx, r = ref(p->name, "dx", nx), nx, atol, 1e-5), free(r);
        free(y), free(dx);
    }
}

/* ------------------------------------------------------------ linear */

typedef struct linear_case {
    char name[16];
    int n, in, out, bias;
    float *x, *w, *b, *dy, *dw0, *db0;
} linear_case;

#define MAX_LINEAR 6
static linear_case linears[MAX_LINEAR];
static int n_linears;

static void add_linear(int n, int in, int out, int bias)
{
    linear_case *l = &linears[n_linears];
    snprintf(l->name, sizeof l->name, "lin%d", n_linears);
    n_linears++;
    l->n = n, l->in = in, l->out = out, l->bias = bias;
    l->x = rnd((int64_t)n * in, -1, 1);
    l->w = rnd((int64_t)out * in, -1, 1);
    l->b = rnd(out, -1, 1);
    l->dy = rnd((int64_t)n * out, -1, 1);
    l->dw0 = rnd((int64_t)out * in, -1, 1);
    l->db0 = rnd(out, -1, 1);
    put(l->name, "x", l->x, 2, n, in, 0, 0);
    put(l->name, "w", l->w, 2, out, in, 0, 0);
    put(l->name, "b", l->b, 1, out, 0, 0, 0);
    put(l->name, "dy", l->dy, 2, n, out, 0, 0);
    fprintf(manifest, "linear name=%s bias=%d\n", l->name, bias);
}

static void test_linear(void)
{
    for (int i = 0; i < n_linears; i++) {
        const linear_case *l = &linears[i];
        const int64_t nx = (int64_t)l->n * l->in, ny = (int64_t)l->n * l->out, nw = (int64_t)l->out * l->in;
        float *y = filled(ny, NAN), *dx = filled(nx, NAN);
        float *dw = copy(l->dw0, nw), *db = copy(l->db0, l->out);
        ops->linear_forward(l->n, l->in, l->out, l->x, l->w, l->bias ? l->b : NULL, y);
        ops->linear_backward(l->n, l->in, l->out, l->x, l->w, l->dy, dx, dw, l->bias ? db : NULL);
        float *r, *want;
        check(l->name, "y", y, r = ref(l->name, "y", ny), ny, sum_atol(l->in + 1), 1e-5), free(r);
        check(l->name, "dx", dx, r = ref(l->name, "dx", nx), nx, sum_atol(l->out), 1e-5), free(r);
        r = ref(l->name, "dw", nw), want = plus(l->dw0, r, nw);
        check(l->name, "dw (accumulated)", dw, want, nw, sum_atol(l->n), 1e-5), free(r), free(want);
        if (l->bias) {
            r = ref(l->name, "db", l->out), want = plus(l->db0, r, l->out);
            check(l->name, "db (accumulated)", db, want, l->out, sum_atol(l->n), 1e-5);
            free(r), free(want);
        }
        free(y), free(dx), free(dw), free(db);
    }
}

/* ------------------------------------------- flatten, dropout, elementwise */

static struct { char name[16]; int n, h, w, c; float *x, *dy; } flat[3];
static int n_flat;

static void add_flatten(int n, int h, int w, int c)
{
    snprintf(flat[n_flat].name, 16, "flat%d", n_flat);
    flat[n_flat].n = n, flat[n_flat].h = h, flat[n_flat].w = w, flat[n_flat].c = c;
    int64_t nx = (int64_t)n * h * w * c;
    flat[n_flat].x = rnd(nx, -1, 1);
    flat[n_flat].dy = rnd(nx, -1, 1);
    put(flat[n_flat].name, "x", flat[n_flat].x, 4, n, h, w, c);
    put(flat[n_flat].name, "dy", flat[n_flat].dy, 2, n, (int64_t)h * w * c, 0, 0);
    fprintf(manifest, "flatten name=%s\n", flat[n_flat].name);
    n_flat++;
}

static void test_flatten(void)
{
    for (int i = 0; i < n_flat; i++) {
        const int64_t nx = (int64_t)flat[i].n * flat[i].h * flat[i].w * flat[i].c;
        float *y = filled(nx, NAN), *dx = filled(nx, NAN), *r;
        ops->flatten_forward(flat[i].n, flat[i].h, flat[i].w, flat[i].c, flat[i].x, y);
        ops->flatten_backward(flat[i].n, flat[i].h, flat[i].w, flat[i].c, flat[i].dy, dx);
        /* A permutation: exact. */
        check(flat[i].name, "y", y, r = ref(flat[i].name, "y", nx), nx, 0, 0), free(r);
        check(flat[i].name, "dx", dx, r = ref(flat[i].name, "dx", nx), nx, 0, 0), free(r);
        free(y), free(dx);
    }
}

#define DROP_N 1001
static float *drop_x, *drop_dy, *drop_maskf;
static uint8_t drop_mask[DROP_N];
static const float drop_p = 0.3f;

static void add_dropout(void)
{
    drop_x = rnd(DROP_N, -1, 1);
    drop_dy = rnd(DROP_N, -1, 1);
    drop_maskf = rnd(DROP_N, 0, 1);
    for (int i = 0; i < DROP_N; i++) {
        drop_mask[i] = drop_maskf[i] >= drop_p;
        drop_maskf[i] = drop_mask[i];
    }
    put("drop", "x", drop_x, 1, DROP_N, 0, 0, 0);
    put("drop", "dy", drop_dy, 1, DROP_N, 0, 0, 0);
    put("drop", "mask", drop_maskf, 1, DROP_N, 0, 0, 0);
    fprintf(manifest, "dropout name=drop p=%.9g\n", (double)drop_p);
}

static void test_dropout(void)
{
    float *y = filled(DROP_N, NAN), *dx = filled(DROP_N, NAN), *r;
    ops->dropout_forward(DROP_N, drop_p, drop_x, drop_mask, y);
    ops->dropout_backward(DROP_N, drop_p, drop_dy, drop_mask, dx);
    /* One product by 1/(1-p), itself rounded: 2u relative. */
    check("dropout", "y", y, r = ref("drop", "y", DROP_N), DROP_N, 0, 4 * U32), free(r);
    check("dropout", "dx", dx, r = ref("drop", "dx", DROP_N), DROP_N, 0, 4 * U32), free(r);
    /* In place, as backend.h allows. */
    float *inplace = copy(drop_x, DROP_N);
    ops->dropout_forward(DROP_N, drop_p, inplace, drop_mask, inplace);
    CU_ASSERT(memcmp(inplace, y, sizeof(float) * DROP_N) == 0);
    free(y), free(dx), free(inplace);
}

#define ELEM_N 777
static float *el_x, *el_b, *el_dy;

static void add_elementwise(void)
{
    /* [-3, 9] covers both ReLU6 limits. */
    el_x = rnd(ELEM_N, -3, 9);
    el_b = rnd(ELEM_N, -1, 1);
    el_dy = rnd(ELEM_N, -1, 1);
    put("elem", "x", el_x, 1, ELEM_N, 0, 0, 0);
    put("elem", "b", el_b, 1, ELEM_N, 0, 0, 0);
    put("elem", "dy", el_dy, 1, ELEM_N, 0, 0, 0);
    fprintf(manifest, "elementwise name=elem\n");
}

static void test_elementwise(void)
{
    float *y = filled(ELEM_N, NAN), *dx = filled(ELEM_N, NAN), *r;
    ops->relu_forward(ELEM_N, el_x, y);
    ops->relu_backward(ELEM_N, y, el_dy, dx);
    check("relu", "y", y, r = ref("elem", "relu", ELEM_N), ELEM_N, 0, 0), free(r);
    check("relu", "dx", dx, r = ref("elem", "drelu", ELEM_N), ELEM_N, 0, 0), free(r);
    ops->relu6_forward(ELEM_N, el_x, y);
    ops->relu6_backward(ELEM_N, y, el_dy, dx);
    check("relu6", "y", y, r = ref("elem", "relu6", ELEM_N), ELEM_N, 0, 0), free(r);
    check("relu6", "dx", dx, r = ref("elem", "drelu6", ELEM_N), ELEM_N, 0, 0), free(r);
    ops->add_forward(ELEM_N, el_x, el_b, y);
    /* One float32 addition of float32 inputs: correctly rounded. */
    check("add", "y", y, r = ref("elem", "add", ELEM_N), ELEM_N, 0, U32), free(r);
    float *acc = copy(el_b, ELEM_N);
    ops->accumulate(ELEM_N, el_x, acc);
    CU_ASSERT(memcmp(acc, y, sizeof(float) * ELEM_N) == 0);
    /* In place forward and backward (y == x, dx == dy). */
    float *io = copy(el_x, ELEM_N), *g = copy(el_dy, ELEM_N);
    ops->relu_forward(ELEM_N, io, io);
    ops->relu_backward(ELEM_N, io, g, g);
    check("relu in place", "dx", g, r = ref("elem", "drelu", ELEM_N), ELEM_N, 0, 0), free(r);
    free(y), free(dx), free(acc), free(io), free(g);
}

/* ------------------------------------------------------------ cross-entropy */

typedef struct xent_case {
    char name[16];
    int n, k;
    float ls;
    float *z;
    int32_t *labels;
} xent_case;

static xent_case xents[4];
static int n_xents;

static void add_xent(int n, int k, float ls, float spread)
{
    xent_case *x = &xents[n_xents];
    snprintf(x->name, sizeof x->name, "xent%d", n_xents);
    n_xents++;
    x->n = n, x->k = k, x->ls = ls;
    x->z = rnd((int64_t)n * k, -spread, spread);
    x->labels = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) x->labels[i] = rand_int(0, k - 1);
    put(x->name, "z", x->z, 2, n, k, 0, 0);
    int64_t shape[1] = {n};
    char file[64];
    snprintf(file, sizeof file, "%s_labels", x->name);
    if (ics_test_npy_write_i32(dir, file, x->labels, shape, 1) != 0) exit(1);
    fprintf(manifest, "xent name=%s ls=%.9g\n", x->name, (double)ls);
}

static void test_xent(void)
{
    for (int i = 0; i < n_xents; i++) {
        const xent_case *x = &xents[i];
        const int64_t nz = (int64_t)x->n * x->k;
        float *probs = filled(nz, NAN), *dz = filled(nz, NAN), *dz_half = filled(nz, NAN), *r;
        float loss = ops->softmax_xent_forward(x->n, x->k, x->z, x->labels, x->ls, probs);
        ops->softmax_xent_backward(x->n, x->k, probs, x->labels, x->ls, 1.0f, dz);
        ops->softmax_xent_backward(x->n, x->k, probs, x->labels, x->ls, 0.5f, dz_half);
        /* The loss sums in double: a few u relative. Probabilities and
         * gradients are single float32 expressions of exp: ~4u. */
        check(x->name, "loss", &loss, r = ref(x->name, "loss", 1), 1, 1e-6, 1e-6), free(r);
        check(x->name, "probs", probs, r = ref(x->name, "probs", nz), nz, 1e-7, 1e-5), free(r);
        r = ref(x->name, "dz", nz);
        check(x->name, "dlogits", dz, r, nz, 1e-7 / x->n, 1e-5);
        for (int64_t j = 0; j < nz; j++) r[j] *= 0.5f;
        check(x->name, "dlogits scale 0.5", dz_half, r, nz, 1e-7 / x->n, 1e-5);
        free(r), free(probs), free(dz), free(dz_half);
    }
}

/* ------------------------------------------------------------ main */

static void draw_random_convs(int count)
{
    for (int i = 0; i < count; i++) {
        int groups = rand_int(1, 3);
        int cin = groups * rand_int(1, 3), cout = groups * rand_int(1, 3);
        int k = rand_int(1, 4), s = rand_int(1, 3), p = rand_int(0, k / 2);
        int kw = rand_int(1, 4) > 1 ? k : rand_int(1, 3);
        int h = rand_int(k, 12), w = rand_int(kw, 12);
        add_conv(rand_int(1, 3), h, w, cin, cout, k, kw, s, rand_int(1, 3), p, rand_int(0, kw / 2),
                 groups, rand_int(0, 1));
    }
}

static void free_cases(void)
{
    for (int i = 0; i < n_convs; i++)
        free(convs[i].x), free(convs[i].w), free(convs[i].b), free(convs[i].dy), free(convs[i].dw0),
            free(convs[i].db0);
    for (int i = 0; i < n_bns; i++)
        free(bns[i].x), free(bns[i].gamma), free(bns[i].beta), free(bns[i].rm), free(bns[i].rv),
            free(bns[i].dy), free(bns[i].dg0), free(bns[i].db0);
    for (int i = 0; i < n_pools; i++) free(pools[i].x), free(pools[i].dy);
    for (int i = 0; i < n_linears; i++)
        free(linears[i].x), free(linears[i].w), free(linears[i].b), free(linears[i].dy),
            free(linears[i].dw0), free(linears[i].db0);
    for (int i = 0; i < n_flat; i++) free(flat[i].x), free(flat[i].dy);
    for (int i = 0; i < n_xents; i++) free(xents[i].z), free(xents[i].labels);
    free(drop_x), free(drop_dy), free(drop_maskf), free(el_x), free(el_b), free(el_dy);
}

int main(void)
{
    if (!ics_test_have_torch()) {
        printf("test_ops: SKIP: $PYTHON_TORCH (%s) cannot import torch\n",
               getenv("PYTHON_TORCH") ? getenv("PYTHON_TORCH") : "/usr/bin/python3");
        return 77;
    }
    const char *seed = getenv("ICS_TEST_SEED");
    if (seed && *seed) rng = strtoull(seed, NULL, 10);
    printf("test_ops: seed %llu (set ICS_TEST_SEED to repeat another)\n", (unsigned long long)rng);
    ops = ics_backend_cpu();
    dir = ics_test_tmpdir("ops");
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    manifest = fopen(path, "w");
    if (!manifest) return 1;

    /* conv2d: n h w cin cout kh kw sh sw ph pw groups bias */
    add_conv(3, 9, 11, 4, 6, 3, 3, 1, 1, 1, 1, 1, 1);  /* 3x3 same, odd sizes */
    add_conv(1, 9, 7, 4, 6, 3, 3, 2, 2, 1, 1, 1, 0);   /* stride 2, batch 1, no bias */
    add_conv(3, 5, 6, 8, 5, 1, 1, 1, 1, 0, 0, 1, 1);   /* pointwise GEMM path */
    add_conv(2, 7, 9, 6, 4, 1, 1, 2, 2, 0, 0, 1, 0);   /* 1x1 stride 2 (downsample) */
    add_conv(2, 15, 13, 3, 5, 7, 7, 2, 2, 3, 3, 1, 0); /* ResNet stem shape */
    add_conv(2, 8, 8, 1, 4, 3, 3, 1, 1, 0, 0, 1, 1);   /* one input channel, pad 0: small K */
    add_conv(3, 9, 8, 3, 8, 3, 3, 2, 2, 1, 1, 1, 1);   /* RGB 3x3 stride 2: small K */
    add_conv(3, 9, 10, 4, 6, 3, 3, 1, 1, 1, 1, 2, 1);  /* groups 2 */
    add_conv(2, 7, 7, 6, 6, 3, 3, 1, 1, 1, 1, 3, 0);   /* groups 3 */
    add_conv(3, 9, 11, 8, 8, 3, 3, 1, 1, 1, 1, 8, 1);  /* depthwise */
    add_conv(1, 10, 9, 5, 5, 3, 3, 2, 2, 1, 1, 5, 0);  /* depthwise stride 2 */
    add_conv(2, 6, 7, 3, 3, 5, 5, 1, 1, 2, 2, 3, 1);   /* depthwise 5x5 */
    add_conv(2, 6, 6, 3, 6, 3, 3, 1, 1, 1, 1, 3, 1);   /* groups = in_c, multiplier 2 */
    add_conv(2, 8, 9, 4, 3, 2, 3, 2, 1, 1, 0, 1, 1);   /* non-square kernel/stride/pad */
    draw_random_convs(6);
    /* batchnorm: n h w c momentum eps shift */
    add_bn(3, 5, 7, 6, 0.1f, 1e-5f, 0.0f);
    add_bn(1, 4, 4, 130, 0.01f, 1e-3f, 0.0f); /* more channels than a block */
    add_bn(8, 1, 1, 5, 0.1f, 1e-5f, 3.0f);    /* BN1d-like, offset mean */
    /* pools: max n h w c k s pad ceil include_pad */
    add_pool(1, 2, 7, 9, 3, 2, 2, 0, 0, 1);
    add_pool(1, 3, 9, 9, 5, 3, 2, 1, 0, 1); /* ResNet's stem pool */
    add_pool(1, 2, 8, 7, 4, 3, 2, 1, 1, 1); /* ceil_mode */
    add_pool(1, 1, 6, 6, 2, 2, 2, 0, 1, 1); /* ceil_mode, exact */
    add_pool(0, 2, 7, 9, 3, 2, 2, 0, 0, 1);
    add_pool(0, 2, 9, 8, 4, 3, 2, 1, 0, 1); /* count_include_pad */
    add_pool(0, 2, 9, 8, 4, 3, 2, 1, 0, 0); /* exclude pad */
    add_pool(0, 2, 8, 7, 3, 3, 2, 1, 1, 1); /* ceil_mode with pad */
    add_pool(0, 1, 5, 5, 2, 2, 2, 0, 1, 0); /* ceil_mode, clipped windows */
    add_adaptive(3, 7, 7, 8, 1, 1);          /* global average pool */
    add_adaptive(2, 10, 7, 3, 3, 4);         /* non-divisible: overlapping cells */
    add_adaptive(2, 4, 5, 2, 6, 7);          /* upsampling direction */
    /* linear, flatten, dropout, elementwise, cross-entropy */
    add_linear(5, 37, 11, 1);
    add_linear(1, 64, 10, 0);
    add_linear(7, 300, 13, 1);
    add_flatten(2, 3, 4, 5);
    add_flatten(3, 1, 1, 7);
    add_dropout();
    add_elementwise();
    add_xent(9, 10, 0.0f, 4.0f);
    add_xent(9, 10, 0.1f, 4.0f);
    add_xent(4, 1000, 0.2f, 30.0f); /* large logits: needs the max shift */
    fclose(manifest);

    torch_ok = ics_test_run_torch("tests/torchref/ops_ref.py", dir) == 0;
    if (!torch_ok) {
        fprintf(stderr, "test_ops: the PyTorch reference failed; inputs kept in %s\n", dir);
        free_cases();
        free(dir);
        return 1;
    }
    static const ics_test_case cases[] = {
        {"conv2d forward/backward (pointwise, small K, im2col, groups, depthwise)", test_conv2d},
        {"batchnorm train/eval/backward and running stats", test_batchnorm},
        {"max/avg/adaptive pooling", test_pools},
        {"linear", test_linear},
        {"flatten order", test_flatten},
        {"dropout with a given mask", test_dropout},
        {"relu, relu6, add, accumulate", test_elementwise},
        {"softmax cross-entropy with label smoothing", test_xent},
        {NULL, NULL}};
    ics_test_add_suite("ops vs PyTorch", cases);
    int rc = ics_test_main("test_ops");
    if (rc == 0)
        ics_test_rmtree(dir);
    else
        fprintf(stderr, "test_ops: inputs and references kept in %s\n", dir);
    free_cases();
    free(dir);
    return rc;
}
