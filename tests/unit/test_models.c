/*
 * The model engine without PyTorch: graph shapes and tensor tables against
 * torchvision's published parameter counts, tensor flags, initialization
 * statistics, the RNG, the planner (inference plans reuse memory, results
 * do not depend on the plan), gradient accumulation, dropout and BN modes,
 * a finite-difference gradient check, every error message, and every
 * allocation failure path.
 */
#include "ics_build_config.h"
#include "test_util.h"

#include <icsparse/model.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "models/model_internal.h"

static ics_model *make(const char *arch, int classes, int in_c, int h, int w, int cifar)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = classes;
    o.in_channels = in_c;
    o.in_h = h;
    o.in_w = w;
    o.cifar_stem = cifar;
    ics_model *m = NULL;
    ics_error err;
    if (ics_model_create(arch, &o, &m, &err) != ICS_OK) fprintf(stderr, "%s: %s\n", arch, err.message);
    return m;
}

static size_t trainable(ics_model *m)
{
    size_t n = 0;
    ics_model_params(m, &n);
    return n;
}

/* torchvision's documented parameter counts (1000 classes, 3 channels). */
static void test_parameter_counts_match_torchvision(void)
{
    static const struct { const char *arch; size_t params; } known[] = {
        {"resnet18", 11689512},  {"resnet34", 21797672},     {"resnet50", 25557032},
        {"resnet101", 44549160}, {"mobilenet_v2", 3504872}, {"vgg11_bn", 132868840},
        {"vgg16_bn", 138365992}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        ics_model *m = make(known[i].arch, 1000, 3, 224, 224, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        if (trainable(m) != known[i].params)
            fprintf(stderr, "%s: %zu parameters, torchvision has %zu\n", known[i].arch, trainable(m),
                    known[i].params);
        CU_ASSERT_EQUAL(trainable(m), known[i].params);
        ics_model_destroy(m);
    }
    /* every arch key builds */
    for (const char *const *a = ics_model_arch_names(); *a; a++) {
        ics_model *m = make(*a, 10, 3, 64, 64, 0);
        CU_ASSERT_PTR_NOT_NULL(m);
        CU_ASSERT_STRING_EQUAL(ics_model_arch(m), *a);
        ics_model_destroy(m);
    }
}

/* Output shapes from PyTorch's size formulas. */
static void test_shapes(void)
{
    ics_model *m = make("resnet50", 1000, 3, 224, 224, 0);
    int pool = ics_model_find_node(m, "avgpool");
    const ics_node *before = ics_model_node(m, ics_model_node(m, pool)->inputs[0]);
    CU_ASSERT_EQUAL(before->out_h, 7);
    CU_ASSERT_EQUAL(before->out_c, 2048);
    const ics_node *mp = ics_model_node(m, ics_model_find_node(m, "maxpool"));
    CU_ASSERT_EQUAL(mp->out_h, 56);
    ics_model_destroy(m);

    m = make("resnet50", 10, 3, 32, 32, 1);
    CU_ASSERT_EQUAL(ics_model_find_node(m, "maxpool"), -1); /* the CIFAR stem has none */
    const ics_node *c1 = ics_model_node(m, ics_model_find_node(m, "conv1"));
    CU_ASSERT_EQUAL(c1->kernel_h, 3);
    CU_ASSERT_EQUAL(c1->stride_h, 1);
    pool = ics_model_find_node(m, "avgpool");
    CU_ASSERT_EQUAL(ics_model_node(m, ics_model_node(m, pool)->inputs[0])->out_h, 4);
    /* v1.5: the stride is on conv2 */
    CU_ASSERT_EQUAL(ics_model_node(m, ics_model_find_node(m, "layer2.0.conv1"))->stride_h, 1);
    CU_ASSERT_EQUAL(ics_model_node(m, ics_model_find_node(m, "layer2.0.conv2"))->stride_h, 2);
    ics_model_destroy(m);

    m = make("simple_cnn", 10, 1, 28, 28, 0);
    const ics_node *fc = ics_model_node(m, ics_model_find_node(m, "classifier"));
    CU_ASSERT_EQUAL(ics_model_node(m, fc->inputs[0])->out_c, 64 * 7 * 7);
    CU_ASSERT_EQUAL(fc->out_c, 10);
    ics_model_destroy(m);

    m = make("mobilenet_v2", 10, 3, 224, 224, 0);
    const ics_node *last = ics_model_node(m, ics_model_find_node(m, "features.18.0"));
    CU_ASSERT_EQUAL(last->out_h, 7);
    CU_ASSERT_EQUAL(last->out_c, 1280);
    const ics_node *dw = ics_model_node(m, ics_model_find_node(m, "features.2.conv.1.0"));
    CU_ASSERT_EQUAL(dw->groups, 96); /* depthwise over 16 * 6 channels */
    ics_model_destroy(m);
}

/* The graph is walkable: inputs precede their nodes; adds join the block
 * input (or its downsample) and the main branch. */
static void test_graph_is_topological(void)
{
    ics_model *m = make("resnet18", 10, 3, 32, 32, 1);
    int adds = 0;
    CU_ASSERT_EQUAL(ics_model_node(m, 0)->kind, ICS_OP_INPUT);
    for (int i = 1; i < ics_model_num_nodes(m); i++) {
        const ics_node *n = ics_model_node(m, i);
        CU_ASSERT(n->num_inputs >= 1);
        for (int k = 0; k < n->num_inputs; k++) CU_ASSERT(n->inputs[k] < i);
        if (n->kind == ICS_OP_ADD) adds++;
        CU_ASSERT_STRING_NOT_EQUAL(ics_op_kind_name(n->kind), "unknown");
    }
    CU_ASSERT_EQUAL(adds, 8);
    const ics_node *logits = ics_model_node(m, ics_model_num_nodes(m) - 1);
    CU_ASSERT_STRING_EQUAL(logits->name, "fc");
    CU_ASSERT_PTR_NULL(ics_model_node(m, -1));
    CU_ASSERT_PTR_NULL(ics_model_node(m, ics_model_num_nodes(m)));
    ics_model_destroy(m);
}

/* Flags, slabs and lookups. */
static void test_tensor_table(void)
{
    ics_model *m = make("resnet18", 10, 3, 32, 32, 1);
    int w = ics_model_find_tensor(m, "layer1.0.conv1.weight");
    int g = ics_model_find_tensor(m, "layer1.0.bn1.weight");
    int rv = ics_model_find_tensor(m, "layer1.0.bn1.running_var");
    int nb = ics_model_find_tensor(m, "layer1.0.bn1.num_batches_tracked");
    int fcb = ics_model_find_tensor(m, "fc.bias");
    CU_ASSERT(w >= 0 && g >= 0 && rv >= 0 && nb >= 0 && fcb >= 0);
    CU_ASSERT_EQUAL(ics_model_find_tensor(m, "layer1.0.conv1.bias"), -1);
    const ics_tensor_info *tw = ics_model_tensor(m, w);
    CU_ASSERT(tw->prunable && tw->weight_decay && tw->kind == ICS_TENSOR_WEIGHT);
    CU_ASSERT_EQUAL(tw->ndim, 4);
    CU_ASSERT_EQUAL(tw->shape[1], 64);
    const ics_tensor_info *tg = ics_model_tensor(m, g);
    CU_ASSERT(!tg->prunable && !tg->weight_decay && tg->kind == ICS_TENSOR_BN_WEIGHT);
    const ics_tensor_info *tb = ics_model_tensor(m, fcb);
    CU_ASSERT(!tb->prunable && !tb->weight_decay && tb->kind == ICS_TENSOR_BIAS);
    CU_ASSERT_EQUAL(ics_model_tensor(m, nb)->ndim, 0);
    CU_ASSERT_PTR_NULL(ics_model_tensor_grad(m, rv));
    CU_ASSERT_PTR_NULL(ics_model_tensor_data(m, nb));
    CU_ASSERT_PTR_NOT_NULL(ics_model_tensor_counter(m, nb));
    CU_ASSERT_PTR_NULL(ics_model_tensor_counter(m, w));
    CU_ASSERT_EQUAL(ics_model_tensor_data(m, rv)[0], 1.0f); /* torch starts running_var at 1 */
    /* parameters tile the slab in table order, gradients at the same offsets */
    size_t np = 0, expect = 0;
    float *params = ics_model_params(m, &np);
    float *grads = ics_model_grads(m, NULL);
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *t = ics_model_tensor(m, i);
        if (t->kind == ICS_TENSOR_BUFFER || t->kind == ICS_TENSOR_COUNTER) continue;
        CU_ASSERT_EQUAL(t->offset, expect);
        CU_ASSERT_PTR_EQUAL(ics_model_tensor_data(m, i), params + expect);
        CU_ASSERT_PTR_EQUAL(ics_model_tensor_grad(m, i), grads + expect);
        expect += (size_t)t->numel;
    }
    CU_ASSERT_EQUAL(expect, np);
    size_t ncount = 0;
    ics_model_counters(m, &ncount);
    CU_ASSERT_EQUAL(ncount, 20); /* 20 BN layers in resnet18 */
    ics_model_destroy(m);
}

/* Seeded and reproducible; torchvision's distributions (checked on their
 * moments, since exact equality with torch's generator is not a goal). */
static void test_init(void)
{
    ics_model *a = make("resnet18", 10, 3, 32, 32, 1), *b = make("resnet18", 10, 3, 32, 32, 1);
    ics_model_init_params(a, 7);
    ics_model_init_params(b, 7);
    size_t n;
    float *pa = ics_model_params(a, &n), *pb = ics_model_params(b, NULL);
    CU_ASSERT_EQUAL(memcmp(pa, pb, n * sizeof(float)), 0);
    ics_model_init_params(b, 8);
    CU_ASSERT_NOT_EQUAL(memcmp(pa, pb, n * sizeof(float)), 0);
    /* kaiming_normal(fan_out): layer4.0.conv2 is 512x512x3x3, std sqrt(2/4608) */
    int i = ics_model_find_tensor(a, "layer4.0.conv2.weight");
    const float *w = ics_model_tensor_data(a, i);
    int64_t cnt = ics_model_tensor(a, i)->numel;
    double s = 0, s2 = 0;
    for (int64_t k = 0; k < cnt; k++) s += w[k], s2 += (double)w[k] * w[k];
    double mean = s / cnt, sd = sqrt(s2 / cnt - mean * mean);
    CU_ASSERT(fabs(sd / sqrt(2.0 / 4608.0) - 1.0) < 0.01);
    CU_ASSERT(fabs(mean) < 0.01 * sd);
    /* fc: U(-1/sqrt(512), 1/sqrt(512)) */
    i = ics_model_find_tensor(a, "fc.weight");
    w = ics_model_tensor_data(a, i);
    double bound = 1.0 / sqrt(512.0), mx = 0;
    for (int64_t k = 0; k < ics_model_tensor(a, i)->numel; k++) mx = fmax(mx, fabs(w[k]));
    CU_ASSERT(mx <= bound && mx > 0.95 * bound);
    CU_ASSERT_EQUAL(ics_model_tensor_data(a, ics_model_find_tensor(a, "bn1.weight"))[5], 1.0f);
    CU_ASSERT_EQUAL(ics_model_tensor_data(a, ics_model_find_tensor(a, "bn1.bias"))[5], 0.0f);
    ics_model_destroy(a);
    ics_model_destroy(b);
    /* mobilenet_v2 / vgg: linear N(0, 0.01), bias 0 */
    ics_model *m = make("mobilenet_v2", 1000, 3, 224, 224, 0);
    ics_model_init_params(m, 3);
    i = ics_model_find_tensor(m, "classifier.1.weight");
    w = ics_model_tensor_data(m, i);
    cnt = ics_model_tensor(m, i)->numel;
    s2 = 0;
    for (int64_t k = 0; k < cnt; k++) s2 += (double)w[k] * w[k];
    CU_ASSERT(fabs(sqrt(s2 / cnt) / 0.01 - 1.0) < 0.01);
    CU_ASSERT_EQUAL(ics_model_tensor_data(m, ics_model_find_tensor(m, "classifier.1.bias"))[3], 0.0f);
    ics_model_destroy(m);
}

static void test_rng(void)
{
    ics_rng a, b;
    ics_rng_init(&a, 1, 0, 0);
    ics_rng_init(&b, 1, 0, 0);
    for (int i = 0; i < 100; i++) CU_ASSERT_EQUAL(ics_rng_next(&a), ics_rng_next(&b));
    /* neighbouring (seed, rank, stream) triples give unrelated streams */
    ics_rng c[4];
    ics_rng_init(&c[0], 1, 0, 0);
    ics_rng_init(&c[1], 0, 1, 0);
    ics_rng_init(&c[2], 0, 0, 1);
    ics_rng_init(&c[3], 1, 1, 0);
    uint64_t first[4];
    for (int i = 0; i < 4; i++) first[i] = ics_rng_next(&c[i]);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++) CU_ASSERT_NOT_EQUAL(first[i], first[j]);
    /* moments: uniform mean 1/2 var 1/12; normal mean 0 var 1 (n = 200k,
     * standard errors ~0.0007 and ~0.003) */
    const int n = 200000;
    double su = 0, su2 = 0, sn = 0, sn2 = 0;
    int below_ok = 1, hist[7] = {0};
    for (int i = 0; i < n; i++) {
        double u = ics_rng_uniform(&a), z = ics_rng_normal(&a);
        if (u < 0 || u >= 1) below_ok = 0;
        su += u, su2 += u * u, sn += z, sn2 += z * z;
        uint64_t k = ics_rng_below(&a, 7);
        if (k >= 7) below_ok = 0;
        else hist[k]++;
    }
    CU_ASSERT(below_ok);
    CU_ASSERT(fabs(su / n - 0.5) < 0.005);
    CU_ASSERT(fabs(su2 / n - su * su / n / n - 1.0 / 12) < 0.002);
    CU_ASSERT(fabs(sn / n) < 0.01);
    CU_ASSERT(fabs(sn2 / n - 1.0) < 0.02);
    for (int k = 0; k < 7; k++) CU_ASSERT(abs(hist[k] - n / 7) < 800); /* ~5 sigma */
    CU_ASSERT_EQUAL(ics_rng_below(&a, 1), 0);
}

static float *random_input(ics_model *m, int batch, uint64_t seed)
{
    const ics_model_options *o = ics_model_get_options(m);
    size_t count = (size_t)batch * o->in_h * o->in_w * o->in_channels;
    float *x = malloc(count * sizeof *x);
    ics_test_fill_uniform(x, count, -1.0f, 1.0f, &seed);
    return x;
}

/* An inference plan shares memory between tensors whose lifetimes do not
 * overlap, so it is much smaller than a training plan; the logits do not
 * depend on the plan, and a smaller batch than planned works. */
static void test_plans(void)
{
    ics_model *m = make("resnet18", 10, 3, 32, 32, 1);
    ics_model_init_params(m, 1);
    float *x = random_input(m, 4, 99);
    ics_error err;
    const float *logits;
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, 4, 0, &err), ICS_OK);
    size_t eval_bytes = ics_model_arena_bytes(m);
    CU_ASSERT(ics_model_workspace_bytes(m) > 0);
    CU_ASSERT_FALSE(ics_model_is_training(m));
    CU_ASSERT_EQUAL_FATAL(ics_model_forward(m, x, 4, &logits, &err), ICS_OK);
    float eval_logits[40];
    memcpy(eval_logits, logits, sizeof eval_logits);
    /* batch 1 of a batch-4 plan: the first row again */
    CU_ASSERT_EQUAL_FATAL(ics_model_forward(m, x, 1, &logits, &err), ICS_OK);
    ICS_ASSERT_CLOSE("batch 1", logits, eval_logits, 10, 1e-5, 1e-5);

    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, 4, 1, &err), ICS_OK);
    size_t train_bytes = ics_model_arena_bytes(m);
    CU_ASSERT(ics_model_is_training(m));
    /* resnet18 at 32x32 keeps ~all activations for backward; inference
     * needs only a few live at a time */
    CU_ASSERT(eval_bytes * 4 < train_bytes);
    ics_model_set_training(m, 0);
    CU_ASSERT_EQUAL_FATAL(ics_model_forward(m, x, 4, &logits, &err), ICS_OK);
    CU_ASSERT_EQUAL(memcmp(logits, eval_logits, sizeof eval_logits), 0);
    /* a node output stays readable after forward in a training plan */
    CU_ASSERT_PTR_NOT_NULL(ics_model_node_output(m, 1));
    /* ReLU runs in place on the BN output (nothing else reads it), not on
     * a block output that also feeds the shortcut */
    int bn1 = ics_model_find_node(m, "bn1"), relu = ics_model_find_node(m, "relu");
    CU_ASSERT_EQUAL(relu, bn1 + 1);
    CU_ASSERT_PTR_EQUAL(ics_model_node_output(m, relu), ics_model_node_output(m, bn1));
    CU_ASSERT_PTR_NOT_EQUAL(ics_model_node_output(m, bn1), ics_model_node_output(m, bn1 - 1));
    int conv = ics_model_find_node(m, "layer1.0.conv1");
    const float *block_in = ics_model_node_output(m, ics_model_node(m, conv)->inputs[0]);
    CU_ASSERT_PTR_EQUAL(block_in, ics_model_node_output(m, relu));
    int add = -1;
    for (int i = conv; i < ics_model_num_nodes(m) && add < 0; i++)
        if (ics_model_node(m, i)->kind == ICS_OP_ADD) add = i;
    /* add -> relu in place; that relu's output then feeds two nodes */
    CU_ASSERT_PTR_EQUAL(ics_model_node_output(m, add + 1), ics_model_node_output(m, add));
    CU_ASSERT_PTR_NULL(ics_model_node_output(m, -1));
    free(x);
    ics_model_destroy(m);
}

/* Parameter gradients accumulate: two backward passes give exactly twice
 * one (g + g is exact in floating point); zero_grad clears them. BN counts
 * training batches only. */
static void test_accumulation_and_bn_modes(void)
{
    ics_model *m = make("simple_cnn", 10, 1, 12, 12, 0);
    ics_model_init_params(m, 2);
    float *x = random_input(m, 3, 5);
    float dy[30];
    uint64_t s = 11;
    ics_test_fill_uniform(dy, 30, -1, 1, &s);
    ics_error err;
    const float *logits;
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, 3, 1, &err), ICS_OK);
    size_t n;
    float *g = ics_model_grads(m, &n);
    float *once = malloc(n * sizeof *once);
    ics_model_zero_grad(m);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, 3, &logits, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_model_backward(m, dy, &err), ICS_OK);
    memcpy(once, g, n * sizeof *once);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, 3, &logits, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_model_backward(m, dy, &err), ICS_OK);
    int exact = 1, nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (g[i] != 2 * once[i]) exact = 0;
        if (once[i] != 0) nonzero++;
    }
    CU_ASSERT(exact);
    CU_ASSERT(nonzero > (int)n / 2);
    ics_model_zero_grad(m);
    for (size_t i = 0; i < n; i++)
        if (g[i] != 0) exact = 0;
    CU_ASSERT(exact);
    int64_t *counter = ics_model_tensor_counter(m, ics_model_find_tensor(m, "features.1.num_batches_tracked"));
    CU_ASSERT_EQUAL(*counter, 2);
    float *rm = ics_model_tensor_data(m, ics_model_find_tensor(m, "features.1.running_mean"));
    float before = rm[0];
    ics_model_set_training(m, 0);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, 3, &logits, &err), ICS_OK);
    CU_ASSERT_EQUAL(*counter, 2);
    CU_ASSERT_EQUAL(rm[0], before);
    free(once);
    free(x);
    ics_model_destroy(m);
}

/* Dropout: a fraction p dropped in training, reproducible per seed, new
 * masks each step, the identity in evaluation. */
static void test_dropout(void)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_channels = 1;
    o.in_h = o.in_w = 8;
    o.dropout = 0.25f;
    ics_model *m = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_model_create("simple_cnn", &o, &m, &err), ICS_OK);
    ics_model_init_params(m, 4);
    int d = ics_model_find_node(m, "dropout");
    CU_ASSERT_FATAL(d > 0);
    CU_ASSERT_EQUAL(ics_model_node(m, d)->dropout_p, 0.25f);
    int batch = 64;
    size_t count = (size_t)batch * 64 * 2 * 2;
    float *x = random_input(m, batch, 8);
    const float *logits;
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, batch, 1, &err), ICS_OK);
    ics_model_set_dropout_seed(m, 5, 0);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, batch, &logits, &err), ICS_OK);
    uint8_t *first = malloc(count);
    memcpy(first, ics_model_dropout_mask(m, d), count);
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) kept += first[i];
    /* 16384 draws: 1 - p = 0.75 within ~6 standard errors (0.0034 each) */
    CU_ASSERT(fabs((double)kept / count - 0.75) < 0.02);
    /* y = x * mask / (1 - p) */
    const float *in = ics_model_node_output(m, ics_model_node(m, d)->inputs[0]);
    const float *out = ics_model_node_output(m, d);
    int scaled = 1;
    for (size_t i = 0; i < count; i++)
        if (fabsf(out[i] - (first[i] ? in[i] / 0.75f : 0.0f)) > 1e-6f * (1 + fabsf(in[i]))) scaled = 0;
    CU_ASSERT(scaled);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, batch, &logits, &err), ICS_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(first, ics_model_dropout_mask(m, d), count), 0);
    ics_model_set_dropout_seed(m, 5, 0);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, batch, &logits, &err), ICS_OK);
    CU_ASSERT_EQUAL(memcmp(first, ics_model_dropout_mask(m, d), count), 0);
    ics_model_set_training(m, 0);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, batch, &logits, &err), ICS_OK);
    in = ics_model_node_output(m, ics_model_node(m, d)->inputs[0]);
    out = ics_model_node_output(m, d);
    CU_ASSERT_EQUAL(memcmp(in, out, count * sizeof(float)), 0);
    CU_ASSERT_PTR_NULL(ics_model_dropout_mask(m, 1)); /* not a dropout node */
    free(first);
    free(x);
    ics_model_destroy(m);
}

/* Central differences of L = sum(logits * dy) in train mode (BN with batch
 * statistics, so parameters move the outputs through the batch mean and
 * variance too). float32 forward with h = 1e-2 gives O(h^2) truncation and
 * ~1e-5 rounding on |L| ~ 1: agreement to 2% of the gradient's scale. */
static void test_finite_differences(void)
{
    ics_model *m = make("simple_cnn", 5, 2, 8, 8, 0);
    ics_model_init_params(m, 6);
    int batch = 4;
    float *x = random_input(m, batch, 13);
    float dy[20];
    uint64_t s = 17;
    ics_test_fill_uniform(dy, 20, -1, 1, &s);
    ics_error err;
    const float *logits;
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, batch, 1, &err), ICS_OK);
    ics_model_zero_grad(m);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, batch, &logits, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_model_backward(m, dy, &err), ICS_OK);
    const char *names[] = {"features.0.weight", "features.1.weight", "features.1.bias",
                           "features.4.weight", "features.5.bias", "classifier.weight",
                           "classifier.bias"};
    int bad = 0;
    for (size_t t = 0; t < sizeof names / sizeof names[0]; t++) {
        int i = ics_model_find_tensor(m, names[t]);
        float *w = ics_model_tensor_data(m, i);
        const float *g = ics_model_tensor_grad(m, i);
        int64_t n = ics_model_tensor(m, i)->numel;
        double scale = 0;
        for (int64_t k = 0; k < n; k++) scale = fmax(scale, fabs(g[k]));
        for (int probe = 0; probe < 3; probe++) {
            int64_t k = (int64_t)((probe * 7919 + t * 104729) % (uint64_t)n);
            float saved = w[k];
            double l[2];
            for (int side = 0; side < 2; side++) {
                w[k] = saved + (side ? -1e-2f : 1e-2f);
                ics_model_forward(m, x, batch, &logits, &err);
                double sum = 0;
                for (int j = 0; j < 20; j++) sum += (double)logits[j] * dy[j];
                l[side] = sum;
            }
            w[k] = saved;
            double fd = (l[0] - l[1]) / 2e-2;
            if (fabs(fd - g[k]) > 0.02 * scale + 1e-4) {
                fprintf(stderr, "%s[%lld]: backward %g, finite difference %g\n", names[t],
                        (long long)k, (double)g[k], fd);
                bad++;
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(x);
    ics_model_destroy(m);
}

/* Every error message of the model API, with its context. */
static void test_errors(void)
{
    ics_model_options o;
    ics_model *m = NULL;
    ics_error err;
    CU_ASSERT_EQUAL(ics_model_create("resnet19", NULL, &m, &err), ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "unknown model arch 'resnet19'"));
    CU_ASSERT_PTR_NULL(m);
    ics_model_options_default(&o);
    o.num_classes = -1;
    CU_ASSERT_EQUAL(ics_model_create("resnet18", &o, &m, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "num_classes must be >= 1, got -1"));
    ics_model_options_default(&o);
    o.in_channels = -3;
    CU_ASSERT_EQUAL(ics_model_create("resnet18", &o, &m, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "in_channels must be >= 1, got -3"));
    ics_model_options_default(&o);
    o.in_h = -1;
    CU_ASSERT_EQUAL(ics_model_create("resnet18", &o, &m, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "input size must be positive, got -1x224"));
    ics_model_options_default(&o);
    o.width_mult = -0.5f;
    CU_ASSERT_EQUAL(ics_model_create("mobilenet_v2", &o, &m, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "width_mult must be in (0, 16], got -0.5"));
    ics_model_options_default(&o);
    o.dropout = 1.0f;
    CU_ASSERT_EQUAL(ics_model_create("vgg11_bn", &o, &m, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "dropout must be < 1, got 1"));
    /* an input too small for the second 2x2 max pool */
    ics_model_options_default(&o);
    o.in_h = o.in_w = 2;
    CU_ASSERT_EQUAL(ics_model_create("simple_cnn", &o, &m, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "features.7: input 1x1 is too small for a 2x2 max pool"));
    CU_ASSERT_PTR_NULL(m);

    /* the builder's own checks (for new architectures) */
    m = make("simple_cnn", 10, 1, 3, 5, 0);
    CU_ASSERT_PTR_NULL(m); /* 3x5: the second pool sees 0 rows */
    m = make("resnet18", 10, 3, 16, 16, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(ics_build_conv(m, 0, "big", 8, 19, 1, 0, 1, 0, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "big: input 16x16 is too small for a 19x19 convolution with padding 0"));
    CU_ASSERT_EQUAL(ics_build_bn(m, 100000, "stray", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "stray: input node 100000 does not exist"));
    CU_ASSERT_EQUAL(ics_build_add(m, 0, 1, "add", &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "add: shapes differ ( 16x16x3, conv1 16x16x64)"));
    CU_ASSERT_EQUAL(ics_build_linear(m, 1, "head", 10, 1, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "head: linear input must be flat, got 16x16x64"));
    CU_ASSERT_EQUAL(ics_build_resnet(m, 19, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "resnet: unsupported depth 19"));
    CU_ASSERT_EQUAL(ics_build_vgg_bn(m, 13, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "vgg: unsupported depth 13"));
    ics_model_destroy(m);

    /* execution order */
    m = make("simple_cnn", 10, 1, 28, 28, 0);
    float x[2 * 28 * 28] = {0}, dy[20] = {0};
    const float *logits;
    CU_ASSERT_EQUAL(ics_model_forward(m, x, 1, &logits, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "model simple_cnn: forward before ics_model_plan"));
    CU_ASSERT_EQUAL(ics_model_backward(m, dy, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "model simple_cnn: backward needs a training plan"));
    CU_ASSERT_EQUAL(ics_model_plan(m, 0, 1, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "model simple_cnn: batch size must be >= 1, got 0"));
    CU_ASSERT_EQUAL(ics_model_plan(m, 2, 0, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, 3, &logits, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "batch 3 outside the planned 1..2"));
    ics_model_set_training(m, 1);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, 2, &logits, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "training mode needs a training plan"));
    CU_ASSERT_EQUAL(ics_model_backward(m, dy, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "backward needs a training plan"));
    CU_ASSERT_EQUAL(ics_model_plan(m, 2, 1, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_model_backward(m, dy, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "backward needs a training-mode forward first"));
    ics_model_set_training(m, 0);
    CU_ASSERT_EQUAL(ics_model_forward(m, x, 2, &logits, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_model_backward(m, dy, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "BN in eval mode has no batch-statistics backward"));
    ics_model_destroy(m);
    ics_model_destroy(NULL);
}

/* Fails each allocation of create + plan in turn: every failure returns
 * ICS_ERR_NOMEM naming what was being allocated, leaks nothing (ASan
 * builds check), and leaves no half-built model behind. */
static void test_allocation_failures(void)
{
    int failures = 0;
    for (long n = 1; n < 200; n++) {
        ics_error err;
        ics_error_clear(&err);
        ics_model *m = NULL;
        ics_model_options o;
        ics_model_options_default(&o);
        o.num_classes = 10;
        o.in_channels = 1;
        o.in_h = o.in_w = 28;
        ics_alloc_fail_after(n);
        ics_status st = ics_model_create("simple_cnn", &o, &m, &err);
        if (st == ICS_OK) st = ics_model_plan(m, 2, 1, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_OK) {
            ics_model_destroy(m);
            break; /* n is past the last allocation */
        }
        failures++;
        CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "out of memory allocating"));
        if (m) {
            /* plan failed: the model survives and can be planned again */
            CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "model simple_cnn, batch 2: "));
            CU_ASSERT_EQUAL(ics_model_plan(m, 2, 1, &err), ICS_OK);
            ics_model_destroy(m);
        }
    }
    CU_ASSERT(failures > 8);
}

int main(void)
{
    static const ics_test_case structure[] = {
        {"parameter counts match torchvision", test_parameter_counts_match_torchvision},
        {"output shapes", test_shapes},
        {"graph is topological", test_graph_is_topological},
        {"tensor table, flags, slabs", test_tensor_table},
        {"initialization", test_init},
        {"rng", test_rng},
        {"errors", test_errors},
        {"allocation failures", test_allocation_failures},
        {NULL, NULL}};
    static const ics_test_case exec[] = {
        {"plans", test_plans},
        {"accumulation and BN modes", test_accumulation_and_bn_modes},
        {"dropout", test_dropout},
        {"finite differences", test_finite_differences},
        {NULL, NULL}};
    ics_test_add_suite("model structure", structure);
    ics_test_add_suite("model execution", exec);
    return ics_test_main("test_models");
}
