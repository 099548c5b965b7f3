/*
 * Tests of the recipe manager on real models with a real training loop
 * (forward/backward through ics_model_*, SGD with momentum and weight
 * decay): the sparsity schedule at each update against SparseML's
 * interpolate(), exact zero counts per layer (global: overall), masks
 * holding through momentum, masked gradients, N:M / block / filter /
 * channel structure, AC/DC phases and momentum reset, LR modifiers against
 * their formulas, SetWeightDecay, TrainableParams freezing, EpochRange,
 * resume, one-shot, every error message, and the shared upstream recipes.
 */
#include "ics_build_config.h"
#include "test_util.h"

#include <icsparse/manager.h>
#include <icsparse/model.h>
#include <icsparse/recipe.h>
#include "core/alloc.h"
#include "core/log.h"
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixtures: a model, an optimizer, a training step ------------------ */

typedef struct rig {
    ics_model *model;
    ics_optim *optim;
    ics_recipe *recipe;
    ics_manager *mgr;
    ics_param_view *views;
    size_t nviews;
    float *x, *dlogits, *probs;
    int32_t *y;
    int batch, classes;
    uint64_t rng;
} rig;

static ics_recipe *load_recipe(const char *text)
{
    ics_recipe *r = NULL;
    ics_error err;
    ics_error_clear(&err);
    if (ics_recipe_load_string(text, "t.yaml", NULL, &r, &err) != ICS_OK)
        fprintf(stderr, "recipe: %s\n", err.message);
    return r;
}

/* The optimizer rig_open creates (SGD unless a test says otherwise). */
static ics_optim_kind rig_kind = ICS_OPTIM_SGD;

/* simple_cnn on 1x12x12 (classifier 64*3*3 -> 10), SGD momentum 0.9,
 * weight decay 1e-2 on weights. */
static int rig_open(rig *g, const char *arch, const char *recipe_text)
{
    memset(g, 0, sizeof *g);
    ics_error err;
    ics_error_clear(&err);
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_channels = 1;
    o.in_h = o.in_w = 12;
    if (strcmp(arch, "simple_cnn") != 0) {
        o.in_channels = 3;
        o.in_h = o.in_w = 32;
        o.cifar_stem = 1;
    }
    if (ics_model_create(arch, &o, &g->model, &err) != ICS_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    ics_model_init_params(g->model, 7);
    g->batch = 4;
    g->classes = 10;
    if (ics_model_plan(g->model, g->batch, 1, &err) != ICS_OK) return -1;
    int nt = ics_model_num_tensors(g->model);
    g->views = calloc((size_t)nt, sizeof *g->views);
    for (int i = 0; i < nt; i++) {
        const ics_tensor_info *t = ics_model_tensor(g->model, i);
        if (t->kind == ICS_TENSOR_BUFFER || t->kind == ICS_TENSOR_COUNTER) continue;
        g->views[g->nviews++] = (ics_param_view){t->name,
                                                 ics_model_tensor_data(g->model, i),
                                                 ics_model_tensor_grad(g->model, i),
                                                 (size_t)t->numel,
                                                 t->ndim,
                                                 0};
    }
    ics_optim_assign_groups(g->views, g->nviews, 1);
    ics_optim_hparams hp;
    ics_optim_hparams_default(&hp, rig_kind);
    hp.lr = 0.05;
    if (rig_kind == ICS_OPTIM_SGD) hp.momentum = 0.9;
    ics_optim_group groups[2] = {{1.0, 1e-2}, {1.0, 0.0}};
    if (ics_optim_create(&g->optim, &hp, groups, 2, g->views, g->nviews, &err) != ICS_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    if (recipe_text) {
        g->recipe = load_recipe(recipe_text);
        if (!g->recipe) return -1;
    }
    if (ics_manager_create(g->recipe, g->model, g->optim, &g->mgr, &err) != ICS_OK) {
        fprintf(stderr, "manager: %s\n", err.message);
        return -1;
    }
    size_t in = (size_t)g->batch * o.in_h * o.in_w * o.in_channels;
    g->x = malloc(in * sizeof *g->x);
    g->y = malloc((size_t)g->batch * sizeof *g->y);
    g->dlogits = malloc((size_t)g->batch * g->classes * sizeof *g->dlogits);
    g->probs = malloc((size_t)g->batch * g->classes * sizeof *g->probs);
    g->rng = 42;
    return 0;
}

static void rig_close(rig *g)
{
    ics_manager_destroy(g->mgr);
    ics_recipe_destroy(g->recipe);
    ics_optim_destroy(g->optim);
    ics_model_destroy(g->model);
    free(g->views);
    free(g->x);
    free(g->y);
    free(g->dlogits);
    free(g->probs);
}

/* Forward and backward on a random batch (gradients accumulate). */
static int rig_backward(rig *g, double epoch)
{
    ics_error err;
    const ics_model_options *o = ics_model_get_options(g->model);
    size_t in = (size_t)g->batch * o->in_h * o->in_w * o->in_channels;
    ics_test_fill_uniform(g->x, in, -1, 1, &g->rng);
    for (int i = 0; i < g->batch; i++)
        g->y[i] = (int32_t)((g->rng >> 33) % 10 + (unsigned)i) % 10;
    const float *logits;
    if (ics_model_forward(g->model, g->x, g->batch, &logits, &err) != ICS_OK) return -1;
    ics_manager_loss(g->mgr, epoch, g->batch, g->classes, logits, g->y, NULL, 0.0f, 1.0f,
                     g->dlogits, g->probs);
    return ics_model_backward(g->model, g->dlogits, &err) == ICS_OK ? 0 : -1;
}

/* One optimizer step at global step `step`: backward, before_step,
 * optimizer step, after_step, zero_grad. */
static int rig_step(rig *g, int64_t step, int64_t spe)
{
    ics_error err;
    double epoch = (double)step / (double)spe;
    if (rig_backward(g, epoch) != 0) return -1;
    if (ics_manager_before_step(g->mgr, epoch, spe, &err) != ICS_OK) {
        fprintf(stderr, "before_step: %s\n", err.message);
        return -1;
    }
    ics_optim_step(g->optim);
    if (ics_manager_after_step(g->mgr, epoch, &err) != ICS_OK) return -1;
    ics_optim_zero_grad(g->optim);
    return 0;
}

static float *tensor(rig *g, const char *name, int64_t *numel)
{
    int i = ics_model_find_tensor(g->model, name);
    if (numel) *numel = 0;
    if (i < 0) return NULL;
    if (numel) *numel = ics_model_tensor(g->model, i)->numel;
    return ics_model_tensor_data(g->model, i);
}

static int64_t zeros_of(const float *x, int64_t n)
{
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++)
        z += x[i] == 0.0f;
    return z;
}

static const char *const prunable[] = {"features.0.weight", "features.4.weight",
                                       "classifier.weight"};

/* ---- schedule and exact sparsity --------------------------------------- */

/* GMP over every prunable weight, linear 0.1 -> 0.8 over epochs [0, 4],
 * update_frequency 1, 5 steps per epoch: after every step each layer has
 * exactly round(s(e_u) * numel) zeros, e_u the epoch of the last update
 * (the steps at epochs 0, 1, 2, 3, 4), and the masked gradients are 0. */
static void test_gmp_schedule(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !GMPruningModifier\n"
                         "    init_sparsity: 0.1\n"
                         "    final_sparsity: 0.8\n"
                         "    start_epoch: 0.0\n"
                         "    end_epoch: 4.0\n"
                         "    update_frequency: 1.0\n"
                         "    inter_func: linear\n"
                         "    params: __ALL_PRUNABLE__\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    CU_ASSERT(ics_manager_has_pruning(g.mgr));
    CU_ASSERT_EQUAL(ics_manager_mask_count(g.mgr), 3);
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_max_epochs(g.mgr), 4.0, 0);
    CU_ASSERT_FALSE(ics_manager_controls_lr(g.mgr));
    const int64_t spe = 5;
    for (int64_t step = 0; step < 6 * spe; step++) {
        double epoch = (double)step / spe;
        CU_ASSERT_EQUAL(ics_manager_pruning_ended(g.mgr, epoch), epoch >= 4.0);
        ics_error err;
        CU_ASSERT_FATAL(rig_backward(&g, epoch) == 0);
        CU_ASSERT_FATAL(ics_manager_before_step(g.mgr, epoch, spe, &err) == ICS_OK);
        double eu = floor(epoch) > 4 ? 4 : floor(epoch);
        double s = ics_interpolate(eu, 0, 4, 0.1, 0.8, ICS_INTER_LINEAR);
        CU_ASSERT_DOUBLE_EQUAL(s, 0.1 + 0.7 * eu / 4.0, 1e-12);
        for (int l = 0; l < 3; l++) {
            int64_t n = 0;
            float *w = tensor(&g, prunable[l], &n);
            int ti = ics_model_find_tensor(g.model, prunable[l]);
            float *gr = ics_model_tensor_grad(g.model, ti);
            CU_ASSERT_EQUAL(zeros_of(w, n), llround(s * (double)n));
            /* gradients of pruned weights are zero before the step */
            int64_t bad = 0;
            for (int64_t e = 0; e < n; e++)
                bad += w[e] == 0.0f && gr[e] != 0.0f;
            CU_ASSERT_EQUAL(bad, 0);
        }
        ics_optim_step(g.optim);
        CU_ASSERT_FATAL(ics_manager_after_step(g.mgr, epoch, &err) == ICS_OK);
        ics_optim_zero_grad(g.optim);
        for (int l = 0; l < 3; l++) {
            int64_t n = 0;
            float *w = tensor(&g, prunable[l], &n);
            /* after momentum and weight decay: still exactly the mask's zeros */
            CU_ASSERT_EQUAL(zeros_of(w, n), llround(s * (double)n));
            float *mask = ics_manager_mask_data(g.mgr, l);
            CU_ASSERT_STRING_EQUAL(ics_manager_mask_name(g.mgr, l), prunable[l]);
            int64_t agree = 0;
            for (int64_t e = 0; e < n; e++)
                agree += (mask[e] == 0.0f) == (w[e] == 0.0f);
            CU_ASSERT_EQUAL(agree, n);
        }
    }
    const char *names[4];
    double values[4], overall;
    CU_ASSERT_EQUAL(ics_manager_sparsity(g.mgr, names, values, 4, &overall), 3);
    int64_t zsum = 0, nsum = 0;
    for (int l = 0; l < 3; l++) {
        int64_t n = 0;
        tensor(&g, prunable[l], &n);
        CU_ASSERT_DOUBLE_EQUAL(values[l], (double)llround(0.8 * n) / n, 1e-12);
        zsum += llround(0.8 * n);
        nsum += n;
    }
    CU_ASSERT_DOUBLE_EQUAL(overall, (double)zsum / nsum, 1e-12);
    /* finalize: masks stay in the weights, no more masking */
    ics_error err;
    CU_ASSERT(ics_manager_finalize(g.mgr, &err) == ICS_OK);
    rig_close(&g);
}

/* The cubic schedule, updates every 0.5 epoch from 1 to 3: the zero count
 * follows interpolate() at each update epoch. */
static void test_gmp_cubic_fractional(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !MagnitudePruningModifier\n"
                         "    init_sparsity: 0.05\n"
                         "    final_sparsity: 0.9\n"
                         "    start_epoch: 1.0\n"
                         "    end_epoch: 3.0\n"
                         "    update_frequency: 0.5\n"
                         "    params: ['features.4.weight']\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    const int64_t spe = 4;
    int64_t n = 0;
    float *w = tensor(&g, "features.4.weight", &n);
    for (int64_t step = 0; step < 4 * spe; step++) {
        CU_ASSERT_FATAL(rig_step(&g, step, spe) == 0);
        double epoch = (double)step / spe;
        double expect = 0;
        if (epoch >= 1.0) {
            double eu = floor(epoch * 2) / 2;
            if (eu > 3) eu = 3;
            expect = ics_interpolate(eu, 1, 3, 0.05, 0.9, ICS_INTER_CUBIC);
        }
        CU_ASSERT_EQUAL(zeros_of(w, n), llround(expect * (double)n));
    }
    rig_close(&g);
}

/* One-shot global magnitude pruning: exactly round(s * total) zeros over
 * all selected weights, and one threshold: every pruned |w| <= every kept
 * |w| across layers. */
static void test_global_oneshot(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !GlobalMagnitudePruningModifier\n"
                         "    init_sparsity: 0.05\n"
                         "    final_sparsity: 0.6\n"
                         "    start_epoch: 0.0\n"
                         "    end_epoch: 10.0\n"
                         "    update_frequency: 1.0\n"
                         "    params: __ALL_PRUNABLE__\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    float *orig[3];
    int64_t n[3] = {0, 0, 0}, total = 0;
    for (int l = 0; l < 3; l++) {
        float *w = tensor(&g, prunable[l], &n[l]);
        orig[l] = malloc((size_t)n[l] * sizeof(float));
        memcpy(orig[l], w, (size_t)n[l] * sizeof(float));
        total += n[l];
    }
    ics_error err;
    CU_ASSERT_FATAL(ics_manager_apply_oneshot(g.mgr, &err) == ICS_OK);
    int64_t zeros = 0;
    float max_pruned = 0, min_kept = INFINITY;
    int64_t per_layer_differs = 0;
    for (int l = 0; l < 3; l++) {
        float *w = tensor(&g, prunable[l], NULL);
        int64_t z = zeros_of(w, n[l]);
        zeros += z;
        per_layer_differs += z != llround(0.6 * n[l]);
        for (int64_t e = 0; e < n[l]; e++) {
            float a = fabsf(orig[l][e]);
            if (w[e] == 0.0f && a > max_pruned) max_pruned = a;
            if (w[e] != 0.0f && a < min_kept) min_kept = a;
        }
        free(orig[l]);
    }
    CU_ASSERT_EQUAL(zeros, llround(0.6 * (double)total));
    CU_ASSERT(max_pruned <= min_kept);
    /* a global threshold is not a per-layer one */
    CU_ASSERT(per_layer_differs > 0);
    double overall;
    ics_manager_sparsity(g.mgr, NULL, NULL, 0, &overall);
    CU_ASSERT_DOUBLE_EQUAL(overall, (double)llround(0.6 * (double)total) / total, 1e-12);
    rig_close(&g);
}

/* N:M masks 2:4 on conv and linear weights: every group of 4 consecutive
 * input channels at one (output channel, kernel position) keeps exactly
 * its 2 largest |w|; the first conv (1 input channel) keeps everything. */
static void test_nm_masks(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !GMPruningModifier\n"
                         "    init_sparsity: 0.5\n"
                         "    final_sparsity: 0.5\n"
                         "    start_epoch: 0.0\n"
                         "    end_epoch: 2.0\n"
                         "    update_frequency: 1.0\n"
                         "    mask_type: '2:4'\n"
                         "    params: __ALL_PRUNABLE__\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    int ti = ics_model_find_tensor(g.model, "features.4.weight");
    const ics_tensor_info *t = ics_model_tensor(g.model, ti);
    float *w = ics_model_tensor_data(g.model, ti);
    float *orig = malloc((size_t)t->numel * sizeof *orig);
    memcpy(orig, w, (size_t)t->numel * sizeof *orig);
    CU_ASSERT_FATAL(rig_step(&g, 0, 3) == 0); /* start: masks computed before the step */
    int64_t O = t->shape[0], I = t->shape[1], K = t->shape[2] * t->shape[3];
    int64_t bad_count = 0, bad_choice = 0;
    for (int64_t o = 0; o < O; o++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t i0 = 0; i0 < I; i0 += 4) {
                int kept = 0;
                for (int64_t a = 0; a < 4; a++) {
                    int64_t ea = (o * I + i0 + a) * K + k;
                    if (w[ea] == 0.0f) continue;
                    kept++;
                    /* a kept element beats at least 2 of the group by |w| */
                    int beats = 0;
                    for (int64_t b = 0; b < 4; b++)
                        beats += fabsf(orig[(o * I + i0 + b) * K + k]) < fabsf(orig[ea]);
                    bad_choice += beats < 2;
                }
                bad_count += kept != 2;
            }
    CU_ASSERT_EQUAL(bad_count, 0);
    CU_ASSERT_EQUAL(bad_choice, 0);
    free(orig);
    /* linear weight [10, 576]: groups along the 576 inputs */
    int64_t n = 0;
    float *lw = tensor(&g, "classifier.weight", &n);
    int64_t lbad = 0;
    for (int64_t gidx = 0; gidx < n / 4; gidx++)
        lbad += zeros_of(lw + gidx * 4, 4) != 2;
    CU_ASSERT_EQUAL(lbad, 0);
    float *w0 = tensor(&g, "features.0.weight", &n);
    CU_ASSERT_EQUAL(zeros_of(w0, n), 0);
    /* the structure survives more steps with momentum */
    for (int64_t s = 1; s < 6; s++)
        CU_ASSERT_FATAL(rig_step(&g, s, 3) == 0);
    lbad = 0;
    for (int64_t gidx = 0; gidx < n / 4; gidx++)
        lbad += zeros_of(lw + gidx * 4, 4) < 2;
    CU_ASSERT_EQUAL(lbad, 0);
    rig_close(&g);
}

/* 2:4 one-shot over every conv and linear weight of resnet18 (CIFAR
 * stem): in every group of 4 consecutive input channels at one output
 * channel and kernel position exactly 2 weights survive; conv1 (3 input
 * channels: one group of 3) keeps 2. */
static void test_nm_resnet18(void)
{
    ics_recipe *r = load_recipe("modifiers:\n"
                                "  - !GMPruningModifier\n"
                                "    init_sparsity: 0.5\n"
                                "    final_sparsity: 0.5\n"
                                "    start_epoch: 0.0\n"
                                "    end_epoch: 1.0\n"
                                "    update_frequency: 1.0\n"
                                "    mask_type: tensorrt\n"
                                "    params: __ALL_PRUNABLE__\n");
    CU_ASSERT_FATAL(r != NULL);
    ics_model *model = NULL;
    ics_error err;
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_h = o.in_w = 32;
    o.cifar_stem = 1;
    CU_ASSERT_FATAL(ics_model_create("resnet18", &o, &model, &err) == ICS_OK);
    ics_model_init_params(model, 5);
    ics_manager *m = NULL;
    CU_ASSERT_FATAL(ics_manager_create(r, model, NULL, &m, &err) == ICS_OK);
    CU_ASSERT_FATAL(ics_manager_apply_oneshot(m, &err) == ICS_OK);
    int64_t bad = 0, groups = 0;
    for (int ti = 0; ti < ics_model_num_tensors(model); ti++) {
        const ics_tensor_info *t = ics_model_tensor(model, ti);
        if (!t->prunable) continue;
        const float *w = ics_model_tensor_data(model, ti);
        int64_t O = t->shape[0], I = t->shape[1];
        int64_t K = t->ndim == 4 ? t->shape[2] * t->shape[3] : 1;
        for (int64_t oo = 0; oo < O; oo++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t i0 = 0; i0 < I; i0 += 4) {
                    int64_t gsize = I - i0 < 4 ? I - i0 : 4, kept = 0;
                    for (int64_t a = 0; a < gsize; a++)
                        kept += w[(oo * I + i0 + a) * K + k] != 0.0f;
                    bad += kept != (gsize < 2 ? gsize : 2);
                    groups++;
                }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(groups > 1000000);
    ics_manager_destroy(m);
    ics_model_destroy(model);
    ics_recipe_destroy(r);
}

/* A helper: one-shot masks of one kind at sparsity 0.5 on simple_cnn. */
static rig *oneshot_kind(const char *mask_type, const char *params)
{
    char recipe[1024];
    snprintf(recipe, sizeof recipe,
             "modifiers:\n"
             "  - !GMPruningModifier\n"
             "    init_sparsity: 0.05\n"
             "    final_sparsity: 0.5\n"
             "    start_epoch: 0.0\n"
             "    end_epoch: 2.0\n"
             "    update_frequency: 1.0\n"
             "    mask_type: %s\n"
             "    params: %s\n",
             mask_type, params);
    rig *g = malloc(sizeof *g);
    if (rig_open(g, "simple_cnn", recipe) != 0) {
        free(g);
        return NULL;
    }
    ics_error err;
    if (ics_manager_apply_oneshot(g->mgr, &err) != ICS_OK) {
        fprintf(stderr, "%s\n", err.message);
        rig_close(g);
        free(g);
        return NULL;
    }
    return g;
}

/* block4: 1x4 blocks along input channels are all zero or all kept, and
 * round(0.5 * blocks) blocks are zero; filter: whole output channels;
 * channel: whole input channels. */
static void test_structured_masks(void)
{
    rig *g = oneshot_kind("block4", "['features.4.weight', 'classifier.weight']");
    CU_ASSERT_FATAL(g != NULL);
    int ti = ics_model_find_tensor(g->model, "features.4.weight");
    const ics_tensor_info *t = ics_model_tensor(g->model, ti);
    float *w = ics_model_tensor_data(g->model, ti);
    int64_t O = t->shape[0], I = t->shape[1], K = t->shape[2] * t->shape[3];
    int64_t mixed = 0, zero_blocks = 0;
    for (int64_t o = 0; o < O; o++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t i0 = 0; i0 < I; i0 += 4) {
                int z = 0;
                for (int64_t a = 0; a < 4; a++)
                    z += w[(o * I + i0 + a) * K + k] == 0.0f;
                mixed += z != 0 && z != 4;
                zero_blocks += z == 4;
            }
    CU_ASSERT_EQUAL(mixed, 0);
    CU_ASSERT_EQUAL(zero_blocks, llround(0.5 * (double)(O * K * I / 4)));
    rig_close(g);
    free(g);

    g = oneshot_kind("filter", "['features.4.weight']");
    CU_ASSERT_FATAL(g != NULL);
    w = tensor(g, "features.4.weight", NULL);
    int64_t zero_filters = 0, partial = 0, per = I * K;
    for (int64_t o = 0; o < O; o++) {
        int64_t z = zeros_of(w + o * per, per);
        zero_filters += z == per;
        partial += z != 0 && z != per;
    }
    CU_ASSERT_EQUAL(zero_filters, 32);
    CU_ASSERT_EQUAL(partial, 0);
    rig_close(g);
    free(g);

    g = oneshot_kind("channel", "['features.4.weight']");
    CU_ASSERT_FATAL(g != NULL);
    w = tensor(g, "features.4.weight", NULL);
    int64_t zero_channels = 0;
    partial = 0;
    for (int64_t i = 0; i < I; i++) {
        int64_t z = 0;
        for (int64_t o = 0; o < O; o++)
            for (int64_t k = 0; k < K; k++)
                z += w[(o * I + i) * K + k] == 0.0f;
        zero_channels += z == O * K;
        partial += z != 0 && z != O * K;
    }
    CU_ASSERT_EQUAL(zero_channels, 16);
    CU_ASSERT_EQUAL(partial, 0);
    rig_close(g);
    free(g);
}

/* final_sparsity as a mapping {sparsity: [params]}: each group gets its own
 * target (one-shot: exactly round(s * numel) zeros per layer). */
static void test_sparsity_groups(void)
{
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn",
                             "modifiers:\n"
                             "  - !GMPruningModifier\n"
                             "    init_sparsity: 0.05\n"
                             "    final_sparsity: {0.5: ['features.4.weight'], 0.8: "
                             "['classifier.weight']}\n"
                             "    start_epoch: 0.0\n"
                             "    end_epoch: 2.0\n"
                             "    update_frequency: 1.0\n"
                             "    params: []\n") == 0);
    ics_error err;
    CU_ASSERT_FATAL(ics_manager_apply_oneshot(g.mgr, &err) == ICS_OK);
    int64_t n4 = 0, nc = 0;
    float *w4 = tensor(&g, "features.4.weight", &n4);
    float *wc = tensor(&g, "classifier.weight", &nc);
    CU_ASSERT_EQUAL(zeros_of(w4, n4), llround(0.5 * (double)n4));
    CU_ASSERT_EQUAL(zeros_of(wc, nc), llround(0.8 * (double)nc));
    CU_ASSERT_EQUAL(ics_manager_mask_count(g.mgr), 2);
    rig_close(&g);
}

/* Sparsity is logged per layer and overall at each mask change. */
static void test_sparsity_log(void)
{
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn",
                             "modifiers:\n"
                             "  - !GMPruningModifier\n"
                             "    init_sparsity: 0.25\n"
                             "    final_sparsity: 0.5\n"
                             "    start_epoch: 1.0\n"
                             "    end_epoch: 2.0\n"
                             "    update_frequency: 1.0\n"
                             "    inter_func: linear\n"
                             "    params: ['classifier.weight']\n") == 0);
    char *dir = ics_test_tmpdir("manager_log");
    char path[4096];
    snprintf(path, sizeof path, "%s/log.txt", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    ics_log_set_stream(f);
    ics_log_set_level(ICS_LOG_INFO);
    for (int64_t s = 0; s < 6; s++)
        CU_ASSERT(rig_step(&g, s, 2) == 0);
    ics_log_set_level(ICS_LOG_WARN);
    ics_log_set_stream(stderr);
    fclose(f);
    char *text = ics_test_read_file(path, NULL);
    CU_ASSERT_FATAL(text != NULL);
    CU_ASSERT(strstr(text, "sparsity at epoch 1.0000: overall 0.2500 over 1 parameters") != NULL);
    CU_ASSERT(strstr(text, "sparsity classifier.weight 0.2500") != NULL);
    CU_ASSERT(strstr(text, "sparsity at epoch 2.0000: overall 0.5000 over 1 parameters") != NULL);
    CU_ASSERT(strstr(text, "sparsity classifier.weight 0.5000") != NULL);
    CU_ASSERT(strstr(text, "sparsity at epoch 0.5000") == NULL); /* no change, no line */
    free(text);
    ics_test_rmtree(dir);
    free(dir);
    rig_close(&g);
}

/* AdamW: exp_avg keeps moving pruned weights (their gradients are zero but
 * the first moment is not), so the masks must be applied after each step;
 * pruning starts at epoch 1, after Adam has built up state. */
static void test_masks_with_adamw(void)
{
    rig g;
    rig_kind = ICS_OPTIM_ADAMW;
    int rc = rig_open(&g, "simple_cnn",
                      "modifiers:\n"
                      "  - !GMPruningModifier\n"
                      "    init_sparsity: 0.6\n"
                      "    final_sparsity: 0.6\n"
                      "    start_epoch: 1.0\n"
                      "    end_epoch: 2.0\n"
                      "    update_frequency: 1.0\n"
                      "    params: ['classifier.weight']\n");
    rig_kind = ICS_OPTIM_SGD;
    CU_ASSERT_FATAL(rc == 0);
    int64_t n = 0;
    float *w = tensor(&g, "classifier.weight", &n);
    for (int64_t s = 0; s < 9; s++) {
        CU_ASSERT_FATAL(rig_step(&g, s, 3) == 0);
        CU_ASSERT_EQUAL(zeros_of(w, n), s >= 3 ? llround(0.6 * (double)n) : 0);
    }
    rig_close(&g);
}

/* ---- AC/DC ---------------------------------------------------------------- */

/* Phases of 1 epoch from 0 to 4: dense, compressed (0.7 global), dense,
 * compressed; momentum zeroed entering the second dense phase; the masks
 * of the last compressed phase stay after the end (leave_enabled). */
static void test_acdc(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !ACDCPruningModifier\n"
                         "    compression_sparsity: 0.7\n"
                         "    start_epoch: 0.0\n"
                         "    end_epoch: 4.0\n"
                         "    update_frequency: 1.0\n"
                         "    params: __ALL_PRUNABLE__\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    const int64_t spe = 3;
    int slot = ics_optim_slot_find(g.optim, "momentum_buffer");
    CU_ASSERT_FATAL(slot >= 0);
    size_t slab_n;
    float *slab = ics_optim_slot_slab(g.optim, slot, &slab_n);
    int64_t total = 0;
    for (int l = 0; l < 3; l++) {
        int64_t n = 0;
        tensor(&g, prunable[l], &n);
        total += n;
    }
    for (int64_t step = 0; step < 6 * spe; step++) {
        double epoch = (double)step / spe;
        ics_error err;
        CU_ASSERT_FATAL(rig_backward(&g, epoch) == 0);
        CU_ASSERT_FATAL(ics_manager_before_step(g.mgr, epoch, spe, &err) == ICS_OK);
        if (step == 2 * spe) {
            /* entering the dense phase after a compressed one */
            size_t nonzero = 0;
            for (size_t i = 0; i < slab_n; i++)
                nonzero += slab[i] != 0.0f;
            CU_ASSERT_EQUAL(nonzero, 0);
        }
        if (step == spe + 1) {
            size_t nonzero = 0;
            for (size_t i = 0; i < slab_n; i++)
                nonzero += slab[i] != 0.0f;
            CU_ASSERT(nonzero > 0); /* no reset inside a phase */
        }
        ics_optim_step(g.optim);
        CU_ASSERT_FATAL(ics_manager_after_step(g.mgr, epoch, &err) == ICS_OK);
        ics_optim_zero_grad(g.optim);
        int phase = (int)floor(epoch);
        int compressed = phase == 1 || phase >= 3;
        double overall;
        ics_manager_sparsity(g.mgr, NULL, NULL, 0, &overall);
        if (compressed) {
            CU_ASSERT_DOUBLE_EQUAL(overall, (double)llround(0.7 * total) / total, 1e-12);
        } else {
            CU_ASSERT(overall < 0.01);
        }
    }
    CU_ASSERT(ics_manager_pruning_ended(g.mgr, 4.0));
    CU_ASSERT_FALSE(ics_manager_pruning_ended(g.mgr, 3.9));
    rig_close(&g);
}

/* ---- learning rate and weight decay -------------------------------------- */

static double lr_after_before_step(rig *g, int64_t step, int64_t spe)
{
    ics_error err;
    double epoch = (double)step / spe;
    if (ics_manager_before_step(g->mgr, epoch, spe, &err) != ICS_OK) return -1;
    return ics_optim_lr(g->optim);
}

/* LearningRateFunctionModifier linear, cosine (down and up) and
 * cyclic_linear against their formulas at every step. */
static void test_lr_functions(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !LearningRateFunctionModifier\n"
                         "    lr_func: linear\n"
                         "    init_lr: 0.1\n"
                         "    final_lr: 0.01\n"
                         "    start_epoch: 0.0\n"
                         "    end_epoch: 2.0\n"
                         "  - !LearningRateFunctionModifier\n"
                         "    lr_func: cosine\n"
                         "    init_lr: 0.05\n"
                         "    final_lr: 0.001\n"
                         "    start_epoch: 2.0\n"
                         "    end_epoch: 4.0\n"
                         "  - !LearningRateFunctionModifier\n"
                         "    lr_func: cosine\n"
                         "    init_lr: 0.001\n"
                         "    final_lr: 0.02\n"
                         "    start_epoch: 4.0\n"
                         "    end_epoch: 5.0\n"
                         "  - !LearningRateFunctionModifier\n"
                         "    lr_func: cyclic_linear\n"
                         "    init_lr: 0.03\n"
                         "    final_lr: 0.003\n"
                         "    cycle_epochs: 0.5\n"
                         "    start_epoch: 5.0\n"
                         "    end_epoch: 7.0\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    CU_ASSERT(ics_manager_controls_lr(g.mgr));
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_max_epochs(g.mgr), 7.0, 0);
    const int64_t spe = 10;
    for (int64_t step = 0; step < 8 * spe; step++) {
        double e = (double)step / spe, want;
        if (e < 2.0)
            want = 0.1 + (e / 2.0) * (0.01 - 0.1);
        else if (e < 4.0)
            want = 0.001 + 0.5 * (1 + cos(M_PI * (e - 2.0) / 2.0)) * (0.05 - 0.001);
        else if (e < 5.0)
            want = 0.001 + 0.5 * (1 + cos(M_PI * ((e - 4.0) + 1.0))) * (0.02 - 0.001);
        else if (e <= 7.0)
            want = 0.03 + (double)((step - 50) % 5) / 5.0 * (0.003 - 0.03);
        else
            want = 0.03 + 0.0 * (0.003 - 0.03); /* stays at its value at end_epoch 7 */
        double got = lr_after_before_step(&g, step, spe);
        if (fabs(got - want) > 1e-12)
            fprintf(stderr, "step %lld: lr %g want %g\n", (long long)step, got, want);
        CU_ASSERT_DOUBLE_EQUAL(got, want, 1e-12);
    }
    rig_close(&g);
}

/* LearningRateModifier StepLR / MultiStepLR / ExponentialLR, and a
 * SetLearningRateModifier before them, against the formulas (the torch
 * schedulers themselves: test_manager_torch). */
static void test_lr_classes(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !SetLearningRateModifier\n"
                         "    learning_rate: 0.2\n"
                         "    start_epoch: 0.0\n"
                         "  - !LearningRateModifier\n"
                         "    lr_class: StepLR\n"
                         "    lr_kwargs: {step_size: 0.5, gamma: 0.5}\n"
                         "    init_lr: 0.1\n"
                         "    start_epoch: 1.0\n"
                         "    end_epoch: 3.0\n"
                         "  - !LearningRateModifier\n"
                         "    lr_class: MultiStepLR\n"
                         "    lr_kwargs: {milestones: [4, 5.5], gamma: 0.1}\n"
                         "    init_lr: 0.05\n"
                         "    start_epoch: 3.0\n"
                         "    end_epoch: 6.0\n"
                         "  - !LearningRateModifier\n"
                         "    lr_class: ExponentialLR\n"
                         "    lr_kwargs: {gamma: 0.9}\n"
                         "    init_lr: 0.04\n"
                         "    start_epoch: 6.0\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    const int64_t spe = 4;
    for (int64_t step = 0; step < 9 * spe; step++) {
        double e = (double)step / spe, want;
        if (e < 1.0)
            want = 0.2;
        else if (e < 3.0)
            want = 0.1 * pow(0.5, floor((double)(step - 4) / 2));
        else if (e < 6.0)
            want = 0.05 * pow(0.1, (e >= 4.0) + (e >= 5.5));
        else
            want = 0.04 * pow(0.9, floor(e - 6.0));
        double got = lr_after_before_step(&g, step, spe);
        if (fabs(got - want) > 1e-12)
            fprintf(stderr, "step %lld: lr %g want %g\n", (long long)step, got, want);
        CU_ASSERT_DOUBLE_EQUAL(got, want, 1e-12);
    }
    /* pure: the same values without stepping (resume) */
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_lr_at(g.mgr, 2.25, spe), 0.1 * pow(0.5, 2), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_lr_at(g.mgr, 0.5, spe), 0.2, 1e-12);
    rig_close(&g);
}

/* SetWeightDecayModifier: every group's decay changes at its start only. */
static void test_set_weight_decay(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !SetWeightDecayModifier\n"
                         "    weight_decay: 0.0\n"
                         "    start_epoch: 2.0\n"
                         "  - !EpochRangeModifier\n"
                         "    start_epoch: 0.0\n"
                         "    end_epoch: 5.0\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_max_epochs(g.mgr), 5.0, 0);
    CU_ASSERT_FALSE(ics_manager_has_pruning(g.mgr));
    CU_ASSERT(ics_manager_pruning_ended(g.mgr, 0.0));
    for (int64_t step = 0; step < 12; step++) {
        CU_ASSERT_FATAL(rig_step(&g, step, 4) == 0);
        double wd = ics_optim_group_get(g.optim, 0)->weight_decay;
        CU_ASSERT_DOUBLE_EQUAL(wd, step < 8 ? 1e-2 : 0.0, 0);
        CU_ASSERT_DOUBLE_EQUAL(ics_optim_lr(g.optim), 0.05, 0); /* no LR modifier */
    }
    rig_close(&g);
}

/* TrainableParamsModifier: features.0.weight frozen over epochs [1, 2):
 * neither it nor its momentum changes there (torch skips it), and it
 * trains again after. */
static void test_trainable(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !TrainableParamsModifier\n"
                         "    params: ['features.0.weight']\n"
                         "    trainable: false\n"
                         "    start_epoch: 1.0\n"
                         "    end_epoch: 2.0\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    int64_t n = 0;
    float *w = tensor(&g, "features.0.weight", &n);
    float *before = malloc((size_t)n * sizeof *before);
    int slot = ics_optim_slot_find(g.optim, "momentum_buffer");
    float *mom = ics_optim_slot_param(g.optim, slot, 0);
    CU_ASSERT_STRING_EQUAL(ics_optim_param(g.optim, 0)->name, "features.0.weight");
    float *mom_before = malloc((size_t)n * sizeof *mom_before);
    for (int64_t step = 0; step < 12; step++) {
        memcpy(before, w, (size_t)n * sizeof *w);
        memcpy(mom_before, mom, (size_t)n * sizeof *mom);
        CU_ASSERT_FATAL(rig_step(&g, step, 4) == 0);
        int frozen = step >= 4 && step < 8;
        int same = memcmp(before, w, (size_t)n * sizeof *w) == 0;
        int same_mom = memcmp(mom_before, mom, (size_t)n * sizeof *mom) == 0;
        CU_ASSERT_EQUAL(same, frozen);
        CU_ASSERT_EQUAL(same_mom, frozen);
    }
    free(before);
    free(mom_before);
    rig_close(&g);
}

/* Without a recipe: dense training, plain cross-entropy, no masks. */
static void test_no_recipe(void)
{
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", NULL) == 0);
    CU_ASSERT_EQUAL(ics_manager_mask_count(g.mgr), 0);
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_max_epochs(g.mgr), 0, 0);
    CU_ASSERT_FALSE(ics_manager_controls_lr(g.mgr));
    CU_ASSERT_FALSE(ics_manager_distillation_active(g.mgr, 0));
    CU_ASSERT_FALSE(ics_manager_qat_active(g.mgr, 0));
    for (int64_t s = 0; s < 3; s++)
        CU_ASSERT_FATAL(rig_step(&g, s, 3) == 0);
    CU_ASSERT_DOUBLE_EQUAL(ics_optim_lr(g.optim), 0.05, 0);
    ics_error err;
    CU_ASSERT(ics_manager_finalize(g.mgr, &err) == ICS_OK);
    rig_close(&g);
}

/* ---- resume, constant pruning, leave_enabled ------------------------------ */

/* A run resumed at epoch 2 (masks restored from the first run) gives the
 * same weights' zero pattern and lr as the uninterrupted run's manager at
 * each following update. */
static void test_resume(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !GMPruningModifier\n"
                         "    init_sparsity: 0.2\n"
                         "    final_sparsity: 0.7\n"
                         "    start_epoch: 0.0\n"
                         "    end_epoch: 4.0\n"
                         "    update_frequency: 1.0\n"
                         "    params: ['classifier.weight']\n"
                         "  - !LearningRateFunctionModifier\n"
                         "    lr_func: linear\n"
                         "    init_lr: 0.1\n"
                         "    final_lr: 0.0\n"
                         "    start_epoch: 0.0\n"
                         "    end_epoch: 4.0\n";
    rig a;
    CU_ASSERT_FATAL(rig_open(&a, "simple_cnn", recipe) == 0);
    const int64_t spe = 4;
    for (int64_t s = 0; s < 2 * spe; s++)
        CU_ASSERT_FATAL(rig_step(&a, s, spe) == 0);
    /* a second manager on the same model and optimizer, resumed at epoch 2 */
    ics_manager *b = NULL;
    ics_error err;
    CU_ASSERT_FATAL(ics_manager_create(a.recipe, a.model, a.optim, &b, &err) == ICS_OK);
    memcpy(ics_manager_mask_data(b, 0), ics_manager_mask_data(a.mgr, 0),
           (size_t)ics_manager_mask_numel(b, 0) * sizeof(float));
    CU_ASSERT_FATAL(ics_manager_resume(b, 2.0, &err) == ICS_OK);
    ics_manager_destroy(a.mgr);
    a.mgr = b;
    int64_t n = 0;
    float *w = tensor(&a, "classifier.weight", &n);
    for (int64_t s = 2 * spe; s < 5 * spe; s++) {
        CU_ASSERT_FATAL(rig_step(&a, s, spe) == 0);
        double e = (double)s / spe;
        double eu = floor(e) > 4 ? 4 : floor(e);
        double sp = ics_interpolate(eu, 0, 4, 0.2, 0.7, ICS_INTER_CUBIC);
        CU_ASSERT_EQUAL(zeros_of(w, n), llround(sp * (double)n));
        double want_lr = e >= 4 ? 0.0 : 0.1 - 0.1 * e / 4;
        CU_ASSERT_DOUBLE_EQUAL(ics_optim_lr(a.optim), want_lr, 1e-12);
    }
    rig_close(&a);
}

/* ConstantPruningModifier keeps the zeros present at its start through
 * training; leave_enabled false on a GMP releases the masks after it. */
static void test_constant_and_leave_enabled(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !ConstantPruningModifier\n"
                         "    params: ['classifier.weight']\n"
                         "    start_epoch: 0.0\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    int64_t n = 0;
    float *w = tensor(&g, "classifier.weight", &n);
    for (int64_t e = 0; e < n; e += 3)
        w[e] = 0.0f;
    int64_t z0 = zeros_of(w, n);
    for (int64_t s = 0; s < 6; s++)
        CU_ASSERT_FATAL(rig_step(&g, s, 3) == 0);
    int64_t kept = 0;
    for (int64_t e = 0; e < n; e += 3)
        kept += w[e] == 0.0f;
    CU_ASSERT_EQUAL(kept, (n + 2) / 3);
    CU_ASSERT_EQUAL(zeros_of(w, n), z0);
    CU_ASSERT(ics_manager_pruning_ended(g.mgr, 0.0));
    rig_close(&g);

    recipe = "modifiers:\n"
             "  - !GMPruningModifier\n"
             "    init_sparsity: 0.5\n"
             "    final_sparsity: 0.5\n"
             "    start_epoch: 0.0\n"
             "    end_epoch: 1.0\n"
             "    update_frequency: 1.0\n"
             "    leave_enabled: false\n"
             "    params: ['classifier.weight']\n";
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    w = tensor(&g, "classifier.weight", &n);
    for (int64_t s = 0; s < 3; s++)
        CU_ASSERT_FATAL(rig_step(&g, s, 3) == 0);
    CU_ASSERT_EQUAL(zeros_of(w, n), llround(0.5 * n));
    for (int64_t s = 3; s < 6; s++)
        CU_ASSERT_FATAL(rig_step(&g, s, 3) == 0);
    CU_ASSERT(zeros_of(w, n) < n / 10); /* regrown: the masks are off */
    rig_close(&g);
}

/* ---- distillation (formula; PyTorch in test_manager_torch) ----------------- */

/* With hardness 0 the loss is plain CE; with an active modifier and a
 * teacher equal to the student at T, the KL part is 0; the gradient
 * matches finite differences of the returned loss. */
static void test_distillation_loss(void)
{
    const char *recipe = "modifiers:\n"
                         "  - !DistillationModifier\n"
                         "    hardness: 0.7\n"
                         "    temperature: 3.0\n"
                         "    start_epoch: 1.0\n"
                         "    end_epoch: 3.0\n";
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", recipe) == 0);
    CU_ASSERT_FALSE(ics_manager_distillation_active(g.mgr, 0.5));
    CU_ASSERT(ics_manager_distillation_active(g.mgr, 1.0));
    CU_ASSERT_FALSE(ics_manager_distillation_active(g.mgr, 3.0));
    double h, T;
    ics_manager_distillation_params(g.mgr, 2.0, &h, &T);
    CU_ASSERT_DOUBLE_EQUAL(h, 0.7, 0);
    CU_ASSERT_DOUBLE_EQUAL(T, 3.0, 0);
    enum { B = 3, C = 5 };
    float s[B * C], t[B * C], d[B * C], p[B * C], d2[B * C];
    int32_t y[B] = {0, 3, 4};
    uint64_t rng = 9;
    ics_test_fill_uniform(s, B * C, -2, 2, &rng);
    ics_test_fill_uniform(t, B * C, -2, 2, &rng);
    /* inactive at 0.5: plain CE, equal to teacher-less call */
    float ce = ics_manager_loss(g.mgr, 0.5, B, C, s, y, t, 0.1f, 1.0f, d, p);
    float ce2 = ics_manager_loss(g.mgr, 2.0, B, C, s, y, NULL, 0.1f, 1.0f, d2, p);
    CU_ASSERT_DOUBLE_EQUAL(ce, ce2, 1e-6);
    /* teacher == student: KL = 0, loss = (1-h) CE, gradient (1-h) dCE */
    float same = ics_manager_loss(g.mgr, 2.0, B, C, s, y, s, 0.1f, 1.0f, d, p);
    CU_ASSERT_DOUBLE_EQUAL(same, 0.3 * ce, 1e-5);
    for (int i = 0; i < B * C; i++)
        CU_ASSERT_DOUBLE_EQUAL(d[i], 0.3 * d2[i], 1e-6);
    /* finite differences of the mixed loss */
    ics_manager_loss(g.mgr, 2.0, B, C, s, y, t, 0.1f, 1.0f, d, p);
    int64_t bad = 0;
    for (int i = 0; i < B * C; i++) {
        float keep = s[i];
        s[i] = keep + 1e-2f;
        double up = ics_manager_loss(g.mgr, 2.0, B, C, s, y, t, 0.1f, 1.0f, d2, p);
        s[i] = keep - 1e-2f;
        double down = ics_manager_loss(g.mgr, 2.0, B, C, s, y, t, 0.1f, 1.0f, d2, p);
        s[i] = keep;
        double fd = (up - down) / 2e-2;
        bad += fabs(fd - d[i]) > 2e-3;
    }
    CU_ASSERT_EQUAL(bad, 0);
    rig_close(&g);
}

/* ---- errors ---------------------------------------------------------------- */

static void expect_create_error(const char *recipe, ics_status want, const char *needle)
{
    ics_recipe *r = load_recipe(recipe);
    CU_ASSERT_FATAL(r != NULL);
    ics_model *model = NULL;
    ics_error err;
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_channels = 1;
    o.in_h = o.in_w = 12;
    CU_ASSERT_FATAL(ics_model_create("simple_cnn", &o, &model, &err) == ICS_OK);
    ics_manager *m = NULL;
    ics_status st = ics_manager_create(r, model, NULL, &m, &err);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT(m == NULL);
    if (st != ICS_OK && !strstr(err.message, needle))
        fprintf(stderr, "message '%s' lacks '%s'\n", err.message, needle);
    CU_ASSERT(st != ICS_OK && strstr(err.message, needle) != NULL);
    ics_manager_destroy(m);
    ics_model_destroy(model);
    ics_recipe_destroy(r);
}

static void test_errors(void)
{
    expect_create_error("modifiers:\n"
                        "  - !EpochRangeModifier\n"
                        "    start_epoch: 0.0\n"
                        "    end_epoch: 2.0\n"
                        "  - !QuantizationModifier\n"
                        "    start_epoch: 1.0\n"
                        "    submodules: ['layer9']\n",
                        ICS_ERR_CONFIG,
                        "QuantizationModifier (line 5): QAT: submodule 'layer9' names no "
                        "module of simple_cnn");
    expect_create_error("modifiers:\n"
                        "  - !GMPruningModifier\n"
                        "    init_sparsity: 0.05\n"
                        "    final_sparsity: 0.5\n"
                        "    start_epoch: 0.0\n"
                        "    end_epoch: 2.0\n"
                        "    update_frequency: 1.0\n"
                        "    params: ['sections.0.0.conv1.weight']\n",
                        ICS_ERR_CONFIG, "sections.0.0.conv1.weight");
    expect_create_error("modifiers:\n"
                        "  - !GMPruningModifier\n"
                        "    init_sparsity: 0.05\n"
                        "    final_sparsity: 0.5\n"
                        "    start_epoch: 0.0\n"
                        "    end_epoch: 2.0\n"
                        "    update_frequency: 1.0\n"
                        "    mask_type: '2:4'\n"
                        "    params: ['classifier.bias']\n",
                        ICS_ERR_INVALID,
                        "GMPruningModifier (line 2): tensor classifier.bias: a N:M mask needs a "
                        "2-D (linear) or 4-D (conv) weight");
    expect_create_error("modifiers:\n"
                        "  - !GMPruningModifier\n"
                        "    init_sparsity: 0.05\n"
                        "    final_sparsity: 0.5\n"
                        "    start_epoch: 0.0\n"
                        "    end_epoch: 2.0\n"
                        "    update_frequency: 1.0\n"
                        "    mask_type: block4\n"
                        "    params: ['classifier.bias']\n",
                        ICS_ERR_INVALID, "a block mask needs");
    expect_create_error("modifiers:\n"
                        "  - !GMPruningModifier\n"
                        "    init_sparsity: 0.05\n"
                        "    final_sparsity: 0.5\n"
                        "    start_epoch: 0.0\n"
                        "    end_epoch: 2.0\n"
                        "    update_frequency: 1.0\n"
                        "    mask_type: channel\n"
                        "    params: ['classifier.bias']\n",
                        ICS_ERR_INVALID,
                        "tensor classifier.bias: a channel mask needs input channels");
    expect_create_error("modifiers:\n"
                        "  - !DistillationModifier\n"
                        "    distill_output_keys: [probs]\n",
                        ICS_ERR_INVALID,
                        "DistillationModifier (line 2): distill_output_keys 'probs': the models "
                        "have one output");
    expect_create_error("modifiers:\n"
                        "  - !TrainableParamsModifier\n"
                        "    params: ['nope.weight']\n"
                        "    trainable: false\n",
                        ICS_ERR_CONFIG, "TrainableParamsModifier (line 2): ");

    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "simple_cnn", NULL) == 0);
    ics_error err;
    CU_ASSERT_EQUAL(ics_manager_before_step(g.mgr, 0.0, 0, &err), ICS_ERR_INVALID);
    CU_ASSERT(strstr(err.message, "manager: steps_per_epoch must be >= 1, got 0") != NULL);
    rig_close(&g);
}

/* Allocation failures in create are reported, never crash or leak. */
static void test_alloc_failures(void)
{
    ics_recipe *r = load_recipe("modifiers:\n"
                                "  - !GMPruningModifier\n"
                                "    init_sparsity: 0.05\n"
                                "    final_sparsity: 0.5\n"
                                "    start_epoch: 0.0\n"
                                "    end_epoch: 2.0\n"
                                "    update_frequency: 1.0\n"
                                "    global_sparsity: true\n"
                                "    params: __ALL_PRUNABLE__\n"
                                "  - !TrainableParamsModifier\n"
                                "    params: ['features.0.weight']\n"
                                "    trainable: false\n");
    CU_ASSERT_FATAL(r != NULL);
    ics_model *model = NULL;
    ics_error err;
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_channels = 1;
    o.in_h = o.in_w = 12;
    CU_ASSERT_FATAL(ics_model_create("simple_cnn", &o, &model, &err) == ICS_OK);
    ics_model_init_params(model, 3);
    int failures = 0, succeeded = 0;
    for (long n = 1; n < 200 && !succeeded; n++) {
        ics_manager *m = NULL;
        ics_alloc_fail_after(n);
        ics_status st = ics_manager_create(r, model, NULL, &m, &err);
        if (st == ICS_OK) st = ics_manager_apply_oneshot(m, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_ERR_NOMEM)
            failures++;
        else if (st == ICS_OK)
            succeeded = 1;
        else {
            CU_FAIL("unexpected status");
        }
        ics_manager_destroy(m);
    }
    CU_ASSERT(succeeded);
    CU_ASSERT(failures > 5);
    ics_model_destroy(model);
    ics_recipe_destroy(r);
}

/* ---- the shared upstream recipes ----------------------------------------- */

static char *upstream(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/../shared/recipes/upstream/%s", ics_test_srcdir(), name);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    fclose(f);
    return path;
}

static ics_status bind_upstream(const char *file, const char *arch, ics_error *err, int *masks)
{
    ics_recipe *r = NULL;
    ics_status st = ics_recipe_load_file(upstream(file), NULL, &r, err);
    if (st != ICS_OK) return st;
    ics_model *model = NULL;
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_h = o.in_w = 32;
    st = ics_model_create(arch, &o, &model, err);
    ics_manager *m = NULL;
    if (st == ICS_OK) st = ics_manager_create(r, model, NULL, &m, err);
    if (m && masks) *masks = ics_manager_mask_count(m);
    ics_manager_destroy(m);
    ics_model_destroy(model);
    ics_recipe_destroy(r);
    return st;
}

/* mobilenet-acdc-pruning binds to torchvision's mobilenet_v2 only where its
 * selectors match: 're:.*.fc.weight' names SparseML's own mobilenet (no fc
 * in torchvision's), so the error names it; the resnet50 recipes name
 * SparseML's "sections.*" modules (an error naming the selector), its
 * quantized variant too, before its QuantizationModifier; the transfer
 * recipe (torchvision names, pruning then QAT) binds. */
static void test_upstream_recipes(void)
{
    if (!upstream("mobilenet-acdc-pruning.yaml")) {
        fprintf(stderr, "(skipped: no shared/recipes/upstream next to the source tree)\n");
        return;
    }
    ics_error err;
    ics_status st = bind_upstream("mobilenet-acdc-pruning.yaml", "mobilenet_v2", &err, NULL);
    CU_ASSERT_EQUAL(st, ICS_ERR_CONFIG);
    CU_ASSERT(strstr(err.message, "ACDCPruningModifier (line 22): line 27, column 28: params "
                                  "selector 're:.*.fc.weight' matches no parameter") != NULL);
    st = bind_upstream("resnet50-imagenet-pruned-moderate.yaml", "resnet50", &err, NULL);
    CU_ASSERT_EQUAL(st, ICS_ERR_CONFIG);
    CU_ASSERT(strstr(err.message, "sections.0.0.conv1.weight") != NULL);
    CU_ASSERT(strstr(err.message, "GMPruningModifier (line ") != NULL);
    st = bind_upstream("resnet50-imagenet-pruned-quant-moderate.yaml", "resnet50", &err, NULL);
    CU_ASSERT_EQUAL(st, ICS_ERR_CONFIG);
    CU_ASSERT(strstr(err.message, "GMPruningModifier (line 65): line 67, column 9: params "
                                  "selector 'sections.0.0.identity.conv.weight'") != NULL);
    int masks = 0;
    st = bind_upstream("classification-transfer-learn-pruned-quantized.yaml", "resnet50", &err,
                       &masks);
    CU_ASSERT_EQUAL(st, ICS_OK);
    CU_ASSERT(masks > 0);
}

/* The upstream AC/DC recipe with torchvision selectors
 * (tests/fixtures/manager/mobilenet-acdc-torchvision.yaml) on
 * mobilenet_v2: every conv and linear weight masked, max_epochs 100, the
 * LR warm-up and cosine, and, stepping the schedule once per epoch, masks
 * dense in even phases and exactly 90% zeros over all weights (one global
 * threshold) in odd ones and after the AC/DC end under the GMP at 0.9. */
static void test_mobilenet_acdc_fixture(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/manager/mobilenet-acdc-torchvision.yaml",
             ics_test_srcdir());
    ics_recipe *r = NULL;
    ics_error err;
    CU_ASSERT_FATAL(ics_recipe_load_file(path, NULL, &r, &err) == ICS_OK);
    ics_model *model = NULL;
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_h = o.in_w = 32;
    CU_ASSERT_FATAL(ics_model_create("mobilenet_v2", &o, &model, &err) == ICS_OK);
    ics_model_init_params(model, 11);
    ics_manager *m = NULL;
    CU_ASSERT_FATAL(ics_manager_create(r, model, NULL, &m, &err) == ICS_OK);
    int prunable_count = 0;
    for (int i = 0; i < ics_model_num_tensors(model); i++)
        prunable_count += ics_model_tensor(model, i)->prunable;
    CU_ASSERT_EQUAL(ics_manager_mask_count(m), prunable_count);
    CU_ASSERT_EQUAL(prunable_count, 53);
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_max_epochs(m), 100, 0);
    CU_ASSERT(ics_manager_controls_lr(m));
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_lr_at(m, 2.5, 1), 0.0512 + 0.5 * (0.256 - 0.0512), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_lr_at(m, 5.0, 1), 0.256, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ics_manager_lr_at(m, 100.0, 1), 0.0512, 1e-12);
    int64_t total = 0;
    for (int i = 0; i < ics_manager_mask_count(m); i++)
        total += ics_manager_mask_numel(m, i);
    for (int epoch = 0; epoch <= 100; epoch++) {
        CU_ASSERT_FATAL(ics_manager_before_step(m, epoch, 1, &err) == ICS_OK);
        CU_ASSERT_FATAL(ics_manager_after_step(m, epoch, &err) == ICS_OK);
        int64_t zeros = 0;
        for (int i = 0; i < ics_manager_mask_count(m); i++)
            zeros += zeros_of(ics_manager_mask_data(m, i), ics_manager_mask_numel(m, i));
        int compressed = epoch >= 85 || (epoch >= 5 && ((epoch - 5) / 5) % 2 == 1);
        CU_ASSERT_EQUAL(zeros, compressed ? llround(0.9 * (double)total) : 0);
        CU_ASSERT_EQUAL(ics_manager_pruning_ended(m, epoch), epoch >= 100);
    }
    ics_manager_destroy(m);
    ics_model_destroy(model);
    ics_recipe_destroy(r);
}

int main(void)
{
    ics_log_set_level(ICS_LOG_WARN);
    static const ics_test_case pruning_cases[] = {
        {"GMP schedule: exact zeros per layer at each update, masks through momentum",
         test_gmp_schedule},
        {"cubic schedule, fractional update frequency", test_gmp_cubic_fractional},
        {"global magnitude one-shot: one threshold, exact overall zeros", test_global_oneshot},
        {"N:M 2:4 along input channels (conv and linear)", test_nm_masks},
        {"2:4 over every resnet18 conv and linear", test_nm_resnet18},
        {"block4, filter and channel masks", test_structured_masks},
        {"final_sparsity groups", test_sparsity_groups},
        {"masks hold under AdamW", test_masks_with_adamw},
        {"sparsity logged per layer and overall", test_sparsity_log},
        {"AC/DC phases and momentum reset", test_acdc},
        {"constant pruning, leave_enabled false", test_constant_and_leave_enabled},
        {"resume at epoch 2", test_resume},
        {NULL, NULL}};
    static const ics_test_case training_cases[] = {
        {"LR functions (linear, cosine, cyclic_linear)", test_lr_functions},
        {"LR classes (StepLR, MultiStepLR, ExponentialLR) and SetLR", test_lr_classes},
        {"SetWeightDecay and EpochRange", test_set_weight_decay},
        {"TrainableParams freezes data and optimizer state", test_trainable},
        {"no recipe: dense", test_no_recipe},
        {"distillation loss: mixing, teacher == student, finite differences",
         test_distillation_loss},
        {NULL, NULL}};
    static const ics_test_case error_cases[] = {
        {"every error message", test_errors},
        {"allocation failures", test_alloc_failures},
        {"shared upstream recipes", test_upstream_recipes},
        {"upstream AC/DC recipe with torchvision selectors on mobilenet_v2",
         test_mobilenet_acdc_fixture},
        {NULL, NULL}};
    ics_test_add_suite("manager pruning", pruning_cases);
    ics_test_add_suite("manager training", training_cases);
    ics_test_add_suite("manager errors", error_cases);
    return ics_test_main("test_manager");
}
