/*
 * Inference fusion (src/nn/fused.c, src/models/plan.c): conv -> BN [->
 * ReLU/ReLU6], conv -> ReLU and linear -> ReLU groups run as one kernel
 * call, the BN (current running statistics) and the activation applied by
 * the kernel where it writes its output.
 *
 *  - the kernels' epilogues (conv2d_forward_fused on every conv path,
 *    linear_forward_fused) give conv2d_forward + batchnorm_forward_eval +
 *    relu_forward / relu6_forward, NaN included, with 1 and 2 threads;
 *  - for every arch, evaluation logits with fusion equal those without
 *    (ICSPARSE_NO_FUSION=1), in inference plans and in training plans run
 *    in evaluation mode;
 *  - the epilogue follows the model: running statistics moved by a
 *    training forward, parameters moved by an SGD step, statistics written
 *    directly;
 *  - an op table without the fused entries (the CUDA fallback) gives the
 *    unfused values; QAT models are never fused; the planner shares one
 *    buffer per group in inference plans.
 *
 * Exactness: the epilogue computes the BN's coefficients with the BN op's
 * own code and applies the same float operations, so fused == unfused bit
 * for bit, except on the pointwise (1x1) path, whose GEMM runs in row
 * blocks that OpenBLAS may round differently from one whole GEMM. There a
 * conv output moves by a change of summation order (|a - b| <= 2 (K + 1)
 * u sum|t|, u = 2^-24) and a whole model's logits by what float32 rounding
 * does to them anyway: test_models_torch measures ~5e-7 of the largest
 * logit between icsparse and float64 torch, so two float32 summation
 * orders are within twice that; we allow 1e-5 of the largest logit
 * (test_models_torch's own eval tolerance). A real fault (a skipped or
 * doubled BN or activation, a stale statistic) moves logits by O(1).
 */
#include "ics_build_config.h"
#include "test_util.h"

#include <icsparse/model.h>
#include <icsparse/qat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "models/model_internal.h"

#define FUSED_TOL 1e-5

typedef struct arch_case {
    const char *arch;
    int classes, in_c, h, w, cifar;
    float width;
    int batch;
} arch_case;

/* Small inputs for every arch key (checked against ics_model_arch_names
 * below, so a new arch needs an entry here). */
static const arch_case arch_cases[] = {
    {"resnet18", 10, 3, 16, 16, 1, 1.0f, 2},
    {"resnet34", 10, 3, 16, 16, 1, 1.0f, 2},
    {"resnet50", 10, 3, 16, 16, 1, 1.0f, 2},
    {"resnet101", 10, 3, 16, 16, 1, 1.0f, 2},
    {"mobilenet_v2", 10, 3, 32, 32, 0, 0.5f, 2},
    {"vgg11_bn", 10, 3, 32, 32, 0, 1.0f, 2},
    {"vgg16_bn", 10, 3, 32, 32, 0, 1.0f, 2},
    {"simple_cnn", 10, 1, 28, 28, 0, 1.0f, 3},
    {"lenet", 10, 1, 28, 28, 0, 1.0f, 3},
    {NULL, 0, 0, 0, 0, 0, 0.0f, 0}};

static ics_model *make_case(const arch_case *c)
{
    return ics_test_model(c->arch, c->classes, c->in_c, c->h, c->w, c->cifar, c->width);
}

static const arch_case *case_of(const char *arch)
{
    for (const arch_case *c = arch_cases; c->arch; c++)
        if (strcmp(c->arch, arch) == 0) return c;
    return NULL;
}

/* Weights uniform with He's variance 2 / fan_in (activations keep their
 * scale through the depth; cheaper than ics_model_init_params's normal
 * draws for vgg's 130M weights), then non-trivial BN parameters and
 * statistics and conv/linear biases, so that every term of the epilogue
 * matters (gamma 1, beta 0, mean 0, var 1 would make it the identity). */
static void perturb(ics_model *m, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *t = ics_model_tensor(m, i);
        float *d = ics_model_tensor_data(m, i);
        size_t n = (size_t)t->numel;
        if (t->kind == ICS_TENSOR_WEIGHT) {
            float bound = sqrtf(6.0f * (float)t->shape[0] / (float)t->numel);
            ics_test_fill_uniform(d, n, -bound, bound, &s);
        }
        if (t->kind == ICS_TENSOR_BN_WEIGHT) ics_test_fill_uniform(d, n, 0.5f, 1.5f, &s);
        if (t->kind == ICS_TENSOR_BN_BIAS) ics_test_fill_uniform(d, n, -0.2f, 0.2f, &s);
        if (t->kind == ICS_TENSOR_BIAS) ics_test_fill_uniform(d, n, -0.1f, 0.1f, &s);
        if (t->kind == ICS_TENSOR_BUFFER) {
            if (strstr(t->name, "running_var")) ics_test_fill_uniform(d, n, 0.5f, 1.5f, &s);
            else ics_test_fill_uniform(d, n, -0.1f, 0.1f, &s);
        }
    }
}

static float *random_input(ics_model *m, int batch, uint64_t seed)
{
    const ics_model_options *o = ics_model_get_options(m);
    size_t n = (size_t)batch * o->in_h * o->in_w * o->in_channels;
    float *x = malloc(n * sizeof *x);
    ics_test_fill_uniform(x, n, -1.0f, 1.0f, &seed);
    return x;
}

static void set_fusion(int on)
{
    if (on) unsetenv("ICSPARSE_NO_FUSION");
    else setenv("ICSPARSE_NO_FUSION", "1", 1);
}

/* Plans (inference or training), runs one evaluation-mode forward and
 * copies the logits into out; returns the plan's fused group count, or -1. */
static int eval_logits(ics_model *m, const float *x, int batch, int training_plan, int fusion,
                       float *out)
{
    ics_error err;
    const float *logits;
    set_fusion(fusion);
    ics_status st = ics_model_plan(m, batch, training_plan, &err);
    set_fusion(1);
    if (st != ICS_OK) {
        fprintf(stderr, "plan: %s\n", err.message);
        return -1;
    }
    ics_model_set_training(m, 0);
    if (ics_model_forward(m, x, batch, &logits, &err) != ICS_OK) {
        fprintf(stderr, "forward: %s\n", err.message);
        return -1;
    }
    memcpy(out, logits, (size_t)batch * ics_model_get_options(m)->num_classes * sizeof(float));
    return m->plan.fused_groups;
}

/* max |got - want| <= tol * max |want|, reported with the label. */
static int close_to(const char *label, const float *got, const float *want, size_t n, double tol)
{
    double scale = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= worst)) {
            worst = e;
            at = i;
        }
    }
    int ok = worst <= tol * scale;
    if (!ok)
        fprintf(stderr, "%s: |fused - unfused| %.3g at %zu (%g vs %g), largest logit %.3g, tolerance %.3g\n",
                label, worst, at, (double)got[at], (double)want[at], scale, tol * scale);
    return ok;
}

/* ---- kernels ------------------------------------------------------------ */

/* The unfused ops the epilogue stands for, in place on y. */
static void reference_epilogue(const ics_backend_ops *ops, const ics_epilogue *ep, int64_t rows,
                               int channels, float *y)
{
    if (ep->bn_gamma)
        ops->batchnorm_forward_eval(rows, channels, y, ep->bn_gamma, ep->bn_beta, ep->bn_mean, ep->bn_var,
                                    ep->bn_eps, y);
    if (ep->act == ICS_ACT_RELU) ops->relu_forward(rows * channels, y, y);
    if (ep->act == ICS_ACT_RELU6) ops->relu6_forward(rows * channels, y, y);
}

/* Whether y matches want: NaN where want has NaN, and otherwise equal bits
 * (exact) or within atol. */
static int matches(const float *y, const float *want, size_t n, int exact, double atol)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(want[i]) || isnan(y[i])) {
            if (!(isnan(want[i]) && isnan(y[i]))) return 0;
        } else if (exact ? memcmp(&y[i], &want[i], sizeof *y) != 0 : !(fabs((double)y[i] - want[i]) <= atol)) {
            return 0;
        }
    }
    return 1;
}

/* A BN over C channels: gamma, beta, running mean, running variance. */
typedef struct bn_params {
    float *p;
    ics_epilogue ep;
    double max_scale; /* max gamma / sqrt(var + eps) */
} bn_params;

static void bn_params_init(bn_params *b, int channels, uint64_t *s)
{
    b->p = malloc(4 * (size_t)channels * sizeof(float));
    ics_test_fill_uniform(b->p, (size_t)channels, 0.5f, 1.5f, s);
    ics_test_fill_uniform(b->p + channels, (size_t)channels, -1.0f, 1.0f, s);
    ics_test_fill_uniform(b->p + 2 * channels, (size_t)channels, -1.0f, 1.0f, s);
    ics_test_fill_uniform(b->p + 3 * channels, (size_t)channels, 0.5f, 1.5f, s);
    memset(&b->ep, 0, sizeof b->ep);
    b->ep.bn_eps = 1e-5f;
    b->max_scale = 0;
    for (int c = 0; c < channels; c++)
        b->max_scale = fmax(b->max_scale, b->p[c] / sqrt(b->p[3 * channels + c] + 1e-5));
}

/* Sets the epilogue of variant v (0..5): without or with BN, times no
 * activation, ReLU, ReLU6. */
static void bn_params_variant(bn_params *b, int channels, int v)
{
    const int bn = v / 3;
    b->ep.bn_gamma = bn ? b->p : NULL;
    b->ep.bn_beta = bn ? b->p + channels : NULL;
    b->ep.bn_mean = bn ? b->p + 2 * channels : NULL;
    b->ep.bn_var = bn ? b->p + 3 * channels : NULL;
    b->ep.act = (ics_activation)(v % 3);
}

/* conv2d_forward_fused == conv2d_forward, then batchnorm_forward_eval, then
 * the activation, on every conv path (pointwise in one and in several row
 * blocks, depthwise, small-K direct, im2col with groups and stride), with
 * and without bias and BN, NaN inputs propagating, 1 and 2 threads. Bit
 * for bit, except on the pointwise path (see the top of this file: the
 * bound of two float32 sums of the same K + 1 terms, |t| <= 3 with |x| <= 1,
 * |w| <= 3, |b| <= 2, times the largest BN scale; ReLU and ReLU6 do not
 * increase a difference). */
static void test_conv_epilogue(void)
{
    static const ics_conv2d_desc shapes[] = {
        /* batch, in h w c, out h w c (filled), kernel, stride, pad, groups */
        {3, 7, 5, 16, 0, 0, 24, 1, 1, 1, 1, 0, 0, 1},    /* pointwise, one block */
        {2, 48, 48, 8, 0, 0, 64, 1, 1, 1, 1, 0, 0, 1},   /* pointwise, 2 row blocks */
        {2, 9, 8, 12, 0, 0, 12, 3, 3, 2, 2, 1, 1, 12},   /* depthwise, stride 2 */
        {3, 10, 9, 3, 0, 0, 20, 3, 3, 1, 1, 1, 1, 1},    /* small K = 27 */
        {2, 11, 7, 8, 0, 0, 12, 3, 3, 2, 1, 1, 1, 2},    /* im2col, 2 groups */
        {2, 12, 12, 16, 0, 0, 16, 3, 3, 1, 1, 1, 1, 1},  /* im2col */
        {2, 5, 5, 6, 0, 0, 10, 5, 5, 1, 1, 0, 0, 1},     /* im2col, one pixel */
    };
    const ics_backend_ops *ops = ics_backend_cpu();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ops->conv2d_forward_fused);
    int bad = 0;
    for (int threads = 1; threads <= 2; threads++) {
        ics_backend_cpu_set_threads(threads);
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            ics_conv2d_desc d = shapes[k];
            ics_conv2d_desc_finish(&d);
            size_t nx = (size_t)d.batch * d.in_h * d.in_w * d.in_c;
            size_t nw = (size_t)d.out_c * (d.in_c / d.groups) * d.kernel_h * d.kernel_w;
            int64_t rows = (int64_t)d.batch * d.out_h * d.out_w;
            size_t ny = (size_t)rows * d.out_c;
            float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc((size_t)d.out_c * sizeof *b);
            float *y = malloc(ny * sizeof *y), *want = malloc(ny * sizeof *want);
            void *ws = malloc(ops->conv2d_workspace_bytes(&d) + 64);
            uint64_t s = 100 + k;
            ics_test_fill_uniform(x, nx, -1.0f, 1.0f, &s);
            /* weights large enough that ReLU6 clips often */
            ics_test_fill_uniform(w, nw, -3.0f, 3.0f, &s);
            ics_test_fill_uniform(b, (size_t)d.out_c, -2.0f, 2.0f, &s);
            x[0] = NAN; /* image 0's corner: the other images stay finite */
            bn_params bn;
            bn_params_init(&bn, d.out_c, &s);
            const int pointwise = d.kernel_h == 1 && d.kernel_w == 1 && d.groups == 1;
            const double kk = (double)nw / d.out_c;
            const double atol = 2.0 * (kk + 1) * 0x1p-24 * (3 * kk + 2) * fmax(1.0, bn.max_scale);
            int nan = 0, clipped = 0;
            for (int v = 0; v < 6; v++) {
                bn_params_variant(&bn, d.out_c, v);
                for (int bias = 0; bias < 2; bias++) {
                    ops->conv2d_forward(&d, x, w, bias ? b : NULL, want, ws);
                    reference_epilogue(ops, &bn.ep, rows, d.out_c, want);
                    for (size_t i = 0; i < ny; i++) y[i] = 12345.0f;
                    ops->conv2d_forward_fused(&d, x, w, bias ? b : NULL, &bn.ep, y, ws);
                    if (!matches(y, want, ny, !pointwise, atol)) {
                        fprintf(stderr, "conv shape %zu epilogue %d bias %d threads %d differs\n", k, v,
                                bias, threads);
                        bad++;
                    }
                    for (size_t i = 0; i < ny && bn.ep.act == ICS_ACT_RELU6; i++) {
                        nan += isnan(y[i]);
                        clipped += y[i] == 6.0f;
                    }
                }
            }
            /* the NaN reached the output and ReLU6 clipped something */
            CU_ASSERT(nan > 0);
            CU_ASSERT(clipped > 0);
            free(bn.p);
            free(x);
            free(w);
            free(b);
            free(y);
            free(want);
            free(ws);
        }
    }
    ics_backend_cpu_set_threads(0);
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_linear_epilogue(void)
{
    const ics_backend_ops *ops = ics_backend_cpu();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ops->linear_forward_fused);
    const int n = 5, in = 37, out = 11;
    float x[5 * 37], w[11 * 37], b[11], y[55], want[55];
    uint64_t s = 7;
    ics_test_fill_uniform(x, sizeof x / sizeof *x, -1, 1, &s);
    ics_test_fill_uniform(w, sizeof w / sizeof *w, -2, 2, &s);
    ics_test_fill_uniform(b, 11, -1, 1, &s);
    x[40] = NAN;
    bn_params bn;
    bn_params_init(&bn, out, &s);
    for (int v = 0; v < 6; v++) {
        bn_params_variant(&bn, out, v);
        for (int bias = 0; bias < 2; bias++) {
            ops->linear_forward(n, in, out, x, w, bias ? b : NULL, want);
            reference_epilogue(ops, &bn.ep, n, out, want);
            ops->linear_forward_fused(n, in, out, x, w, bias ? b : NULL, &bn.ep, y);
            CU_ASSERT_EQUAL(memcmp(y, want, sizeof y), 0);
        }
    }
    free(bn.p);
}

/* ---- whole models ------------------------------------------------------- */

/* 1 when the model has a 1x1 stride-1 convolution (the GEMM path whose
 * fused form blocks its rows; see the top of this file). */
static int has_pointwise(const ics_model *m)
{
    for (int i = 0; i < ics_model_num_nodes(m); i++) {
        const ics_node *n = ics_model_node(m, i);
        if (n->kind == ICS_OP_CONV2D && n->kernel_h == 1 && n->kernel_w == 1 && n->stride_h == 1 &&
            n->stride_w == 1 && n->pad_h == 0 && n->pad_w == 0 && n->groups == 1)
            return 1;
    }
    return 0;
}

/* fused == unfused: bit for bit without pointwise convs, else FUSED_TOL. */
static int same_logits(const char *label, const ics_model *m, const float *fused, const float *plain,
                       size_t n)
{
    if (has_pointwise(m)) return close_to(label, fused, plain, n, FUSED_TOL);
    if (memcmp(fused, plain, n * sizeof *fused) == 0) return 1;
    close_to(label, fused, plain, n, 0);
    return 0;
}

/* Every arch: fused evaluation logits == unfused ones (same_logits), in
 * an inference plan and in a training plan in evaluation mode; the two
 * fused runs are the same bits (same kernels, same order). */
static void test_every_arch(void)
{
    const char *const *names = ics_model_arch_names();
    for (int a = 0; names[a]; a++) {
        const arch_case *c = case_of(names[a]);
        if (!c) {
            fprintf(stderr, "no fusion test case for arch %s\n", names[a]);
            CU_FAIL("an arch without a fusion test case");
            continue;
        }
        ics_model *m = make_case(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        perturb(m, 11);
        float *x = random_input(m, c->batch, 5);
        size_t nl = (size_t)c->batch * c->classes;
        float *plain = malloc(nl * sizeof *plain), *fused = malloc(nl * sizeof *fused);
        float *train_plan = malloc(nl * sizeof *train_plan);
        CU_ASSERT_EQUAL(eval_logits(m, x, c->batch, 0, 0, plain), 0);
        int groups = eval_logits(m, x, c->batch, 0, 1, fused);
        CU_ASSERT(groups > 0);
        char label[128];
        snprintf(label, sizeof label, "%s inference plan", c->arch);
        CU_ASSERT(same_logits(label, m, fused, plain, nl));
        CU_ASSERT_EQUAL(eval_logits(m, x, c->batch, 1, 1, train_plan), groups);
        CU_ASSERT_EQUAL(memcmp(train_plan, fused, nl * sizeof *fused), 0);
        free(plain);
        free(fused);
        free(train_plan);
        free(x);
        ics_model_destroy(m);
    }
}

/* The groups the planner finds in resnet18 (stem conv-BN-ReLU, each
 * block's conv1-bn1-ReLU, conv2-bn2 before the add, downsample conv-BN)
 * and the buffers they share in an inference plan. */
static void test_groups_and_buffers(void)
{
    ics_model *m = make_case(case_of("resnet18"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, 2, 0, &err), ICS_OK);
    /* 1 stem + 8 blocks x 2 + 3 downsamples; fc -> nothing to fuse */
    CU_ASSERT_EQUAL(m->plan.fused_groups, 20);
    int conv = ics_model_find_node(m, "conv1"), bn = ics_model_find_node(m, "bn1");
    int relu = ics_model_find_node(m, "relu");
    CU_ASSERT_EQUAL(m->plan.nodes[conv].fused_last, relu);
    CU_ASSERT_EQUAL(m->plan.nodes[bn].fused_head, conv);
    CU_ASSERT_EQUAL(m->plan.nodes[relu].fused_head, conv);
    CU_ASSERT_PTR_EQUAL(ics_model_node_output(m, conv), ics_model_node_output(m, relu));
    CU_ASSERT_PTR_EQUAL(ics_model_node_output(m, bn), ics_model_node_output(m, relu));
    int c2 = ics_model_find_node(m, "layer1.0.conv2"), b2 = ics_model_find_node(m, "layer1.0.bn2");
    CU_ASSERT_EQUAL(m->plan.nodes[c2].fused_last, b2);
    int ds = ics_model_find_node(m, "layer2.0.downsample.0");
    CU_ASSERT_EQUAL(m->plan.nodes[ds].fused_last, ds + 1);
    CU_ASSERT_EQUAL(m->plan.nodes[ics_model_find_node(m, "fc")].fused_last, -1);
    /* without fusion the conv keeps its own buffer */
    set_fusion(0);
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, 2, 0, &err), ICS_OK);
    set_fusion(1);
    CU_ASSERT_EQUAL(m->plan.fused_groups, 0);
    CU_ASSERT_PTR_NOT_EQUAL(ics_model_node_output(m, conv), ics_model_node_output(m, bn));
    CU_ASSERT_EQUAL(m->plan.nodes[conv].fused_last, -1);
    ics_model_destroy(m);

    /* lenet: conv -> ReLU (biased conv, no BN) and linear -> ReLU groups */
    m = make_case(case_of("lenet"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, 2, 0, &err), ICS_OK);
    CU_ASSERT_EQUAL(m->plan.fused_groups, 4);
    int fc = ics_model_find_node(m, "classifier.0");
    CU_ASSERT_EQUAL(m->plan.nodes[fc].fused_last, fc + 1);
    ics_model_destroy(m);
}

/* Copies m's parameters and buffers into ref (same arch and options). */
static void copy_state(ics_model *ref, ics_model *m)
{
    size_t np, nb, np2, nb2;
    float *p = ics_model_params(m, &np), *b = ics_model_buffers(m, &nb);
    float *p2 = ics_model_params(ref, &np2), *b2 = ics_model_buffers(ref, &nb2);
    CU_ASSERT_EQUAL_FATAL(np, np2);
    CU_ASSERT_EQUAL_FATAL(nb, nb2);
    memcpy(p2, p, np * sizeof *p);
    memcpy(b2, b, nb * sizeof *b);
}

/* Largest |a - b| over max |b|. */
static double rel_change(const float *a, const float *b, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return e / s;
}

/* The epilogue follows the model between evaluations: a training forward
 * moves BN's running statistics, an SGD step moves the weights and BN's
 * gamma and beta, and a direct write moves the statistics again; after
 * each, the fused evaluation (training plan in eval mode, as the
 * trainer's validation runs, and a separate inference plan) matches an
 * unfused model holding the same state, and differs from the evaluation
 * before the change. */
static void epilogue_follows(const char *arch)
{
    const arch_case *c = case_of(arch);
    ics_model *m = make_case(c), *ref = make_case(c), *inf = make_case(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    CU_ASSERT_PTR_NOT_NULL_FATAL(inf);
    ics_model_init_params(m, 8);
    perturb(m, 21);
    const int batch = 4;
    float *x = random_input(m, batch, 9);
    size_t nl = (size_t)batch * c->classes;
    float *before = malloc(nl * sizeof *before), *after = malloc(nl * sizeof *after);
    float *want = malloc(nl * sizeof *want), *dy = malloc(nl * sizeof *dy);
    uint64_t s = 31;
    ics_test_fill_uniform(dy, nl, -1, 1, &s);
    ics_error err;
    const float *logits;
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, batch, 1, &err), ICS_OK);
    CU_ASSERT(m->plan.fused_groups > 0);
    set_fusion(0);
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(ref, batch, 0, &err), ICS_OK);
    set_fusion(1);
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(inf, batch, 0, &err), ICS_OK);

    for (int stage = 0; stage < 3; stage++) {
        ics_model_set_training(m, 0);
        CU_ASSERT_EQUAL_FATAL(ics_model_forward(m, x, batch, &logits, &err), ICS_OK);
        memcpy(before, logits, nl * sizeof *before);
        if (stage == 0) {
            /* a training forward: batch statistics move the running ones */
            ics_model_set_training(m, 1);
            CU_ASSERT_EQUAL_FATAL(ics_model_forward(m, x, batch, &logits, &err), ICS_OK);
            ics_model_zero_grad(m);
            CU_ASSERT_EQUAL_FATAL(ics_model_backward(m, dy, &err), ICS_OK);
        } else if (stage == 1) {
            /* an SGD step on every parameter (BN's gamma and beta too) */
            size_t np;
            float *p = ics_model_params(m, &np);
            const float *g = ics_model_grads(m, NULL);
            for (size_t i = 0; i < np; i++) p[i] -= 0.5f * g[i];
        } else {
            /* statistics written directly (a checkpoint load does this) */
            size_t nb;
            float *b = ics_model_buffers(m, &nb);
            for (size_t i = 0; i < nb; i++) b[i] = b[i] * 1.5f + 0.05f;
        }
        ics_model_set_training(m, 0);
        CU_ASSERT_EQUAL_FATAL(ics_model_forward(m, x, batch, &logits, &err), ICS_OK);
        memcpy(after, logits, nl * sizeof *after);
        copy_state(ref, m);
        CU_ASSERT_EQUAL_FATAL(ics_model_forward(ref, x, batch, &logits, &err), ICS_OK);
        memcpy(want, logits, nl * sizeof *want);
        char label[128];
        snprintf(label, sizeof label, "%s stage %d", arch, stage);
        CU_ASSERT(same_logits(label, m, after, want, nl));
        CU_ASSERT(rel_change(after, before, nl) > 1e-3);
        /* an inference plan of the same state: the same bits */
        copy_state(inf, m);
        CU_ASSERT_EQUAL_FATAL(ics_model_forward(inf, x, batch, &logits, &err), ICS_OK);
        CU_ASSERT_EQUAL(memcmp(logits, after, nl * sizeof *after), 0);
    }
    free(before);
    free(after);
    free(want);
    free(dy);
    free(x);
    ics_model_destroy(m);
    ics_model_destroy(ref);
    ics_model_destroy(inf);
}

static void test_follows_simple_cnn(void) { epilogue_follows("simple_cnn"); }
static void test_follows_resnet18(void) { epilogue_follows("resnet18"); }
static void test_follows_mobilenet_v2(void) { epilogue_follows("mobilenet_v2"); }

/* An op table without conv2d_forward_fused / linear_forward_fused (what a
 * device table may leave out) falls back to the unfused ops in place on
 * the group's buffer: the unfused logits, bit for bit, while the fused
 * table gives same_logits. */
static void test_fallback_without_fused_entries(void)
{
    static const char *const archs[] = {"mobilenet_v2", "lenet", "resnet18"};
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        const arch_case *c = case_of(archs[a]);
        ics_model *m = make_case(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        ics_model_init_params(m, 4);
        perturb(m, 5);
        float *x = random_input(m, c->batch, 6);
        size_t nl = (size_t)c->batch * c->classes;
        float *fused = malloc(nl * sizeof *fused), *fallback = malloc(nl * sizeof *fallback);
        float *unfused = malloc(nl * sizeof *unfused);
        CU_ASSERT(eval_logits(m, x, c->batch, 0, 1, fused) > 0);
        CU_ASSERT_EQUAL(eval_logits(m, x, c->batch, 0, 0, unfused), 0);
        ics_backend_ops plain = *ics_backend_cpu();
        plain.conv2d_forward_fused = NULL;
        plain.linear_forward_fused = NULL;
        m->ops = &plain;
        CU_ASSERT(eval_logits(m, x, c->batch, 0, 1, fallback) > 0);
        CU_ASSERT_EQUAL(memcmp(unfused, fallback, nl * sizeof *fused), 0);
        CU_ASSERT(same_logits(archs[a], m, fused, fallback, nl));
        m->ops = ics_backend_cpu();
        free(fused);
        free(fallback);
        free(unfused);
        free(x);
        ics_model_destroy(m);
    }
}

/* A QAT model is never fused (its conv folds its BN into the quantized
 * weight itself): no groups, and the same bits with and without the
 * switch, in evaluation mode. */
static void test_qat_not_fused(void)
{
    const arch_case *c = case_of("resnet18");
    ics_model *m = make_case(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    ics_model_init_params(m, 2);
    perturb(m, 3);
    ics_qat_options q;
    ics_qat_options_default(&q);
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_model_qat_prepare(m, &q, &err), ICS_OK);
    float *x = random_input(m, c->batch, 4);
    size_t nl = (size_t)c->batch * c->classes;
    float *a = malloc(nl * sizeof *a), *b = malloc(nl * sizeof *b);
    CU_ASSERT_EQUAL(eval_logits(m, x, c->batch, 0, 1, a), 0);
    CU_ASSERT_EQUAL(eval_logits(m, x, c->batch, 0, 0, b), 0);
    CU_ASSERT_EQUAL(memcmp(a, b, nl * sizeof *a), 0);
    CU_ASSERT_EQUAL(eval_logits(m, x, c->batch, 1, 1, b), 0);
    CU_ASSERT_EQUAL(memcmp(a, b, nl * sizeof *a), 0);
    free(a);
    free(b);
    free(x);
    ics_model_destroy(m);
}

int main(void)
{
    static const ics_test_case kernels[] = {
        {"conv2d_forward_fused == conv + BN + activation", test_conv_epilogue},
        {"linear_forward_fused == linear + BN + activation", test_linear_epilogue},
        {NULL, NULL}};
    static const ics_test_case models[] = {
        {"every arch: fused == unfused", test_every_arch},
        {"groups and shared buffers", test_groups_and_buffers},
        {"epilogue follows simple_cnn's state", test_follows_simple_cnn},
        {"epilogue follows resnet18's state", test_follows_resnet18},
        {"epilogue follows mobilenet_v2's state", test_follows_mobilenet_v2},
        {"op table without fused entries", test_fallback_without_fused_entries},
        {"QAT models are not fused", test_qat_not_fused},
        {NULL, NULL}};
    ics_test_add_suite("fused kernels", kernels);
    ics_test_add_suite("fused models", models);
    return ics_test_main("test_models_fused");
}
