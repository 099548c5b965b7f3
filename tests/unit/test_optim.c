/*
 * Optimizers, clipping, learning-rate schedules and EMA.
 *
 * The optimizer trajectories, clipping and schedules are compared with
 * PyTorch (tests/torchref/optim_ref.py, one run for all cases); EMA with its
 * closed form; checkpoint-style state restore with itself, bit for bit.
 *
 * Tolerances. Both sides compute in float32 with the same operation order,
 * but torch's vectorised kernels use fused multiply-adds (add with alpha is
 * fmadd on AVX2) and a different sqrt/division rounding path, so single
 * steps differ by an ulp or two. Over 24 steps these differences are not
 * amplified by SGD (a contraction in the parameter differences) and only
 * mildly by Adam, whose update m/(sqrt(v)+eps) is bounded: 5e-7 absolute +
 * 5e-6 relative is about 40 ulps at the parameter scale (measured: the
 * worst case uses under a tenth of it), far below what a wrong formula
 * gives (a wrong bias correction or eps placement moves the parameters by
 * ~lr = 1e-2 per step).
 */
#include "ics_build_config.h"
#include "test_util.h"
#include "core/alloc.h"
#include "train/ema.h"
#include "train/lr_schedule.h"
#include "train/optim.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_PARAMS 3
#define STEPS 24
#define LR_CHANGE_STEP 12
#define LR_CHANGE_FACTOR 0.5

static const size_t numels[N_PARAMS] = {20, 5, 18};
static const int ndims[N_PARAMS] = {2, 1, 2};
static const char *const names[N_PARAMS] = {"fc1.weight", "fc1.bias", "fc2.weight"};

typedef struct {
    const char *kind;
    double lr, momentum, dampening;
    int nesterov;
    double beta1, beta2, eps, wd0, wd1, scale1;
    int zero_at; /* step before which the first-moment state is zeroed (0: never) */
} optim_case;

static const optim_case cases[] = {
    {"sgd", 0.1, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0},
    {"sgd", 0.05, 0.9, 0, 0, 0, 0, 0, 1e-2, 0, 0.5, 0},
    {"sgd", 0.05, 0.9, 0.1, 0, 0, 0, 0, 5e-2, 0, 0.5, 15},
    {"sgd", 0.05, 0.8, 0, 1, 0, 0, 0, 1e-2, 1e-3, 2.0, 0},
    {"adam", 1e-2, 0, 0, 0, 0.9, 0.999, 1e-8, 0, 0, 1.0, 0},
    {"adam", 1e-2, 0, 0, 0, 0.8, 0.99, 1e-6, 1e-2, 0, 0.5, 10},
    {"adamw", 1e-2, 0, 0, 0, 0.9, 0.999, 1e-8, 5e-2, 0, 0.5, 0},
};
#define N_CASES ((int)(sizeof cases / sizeof *cases))

static char *ref_dir;    /* reference results, computed once */
static int ref_status;   /* 0 ok, 77 no torch, other: the script failed */
static float *init_params[N_PARAMS];
static float *grads[N_PARAMS]; /* [STEPS][numel] */

/* Clip cases. */
static const size_t clip_numels[N_PARAMS] = {40000, 7, 300};
static const double clip_max_norms[] = {1.0, 1e4, 0.25};
#define N_CLIP ((int)(sizeof clip_max_norms / sizeof *clip_max_norms))
static float *clip_grads[N_PARAMS];

/* Schedule cases. */
#define SCHED_SPE 4
typedef struct {
    ics_sched_kind kind;
    double base, step_size, gamma, t_max, eta_min, warmup;
    ics_sched_warmup method;
    double start_factor;
    int epochs;
    int n_milestones;
    double milestones[4];
} sched_case;

static const sched_case sched_cases[] = {
    {ICS_SCHED_CONSTANT, 0.1, 30, 0.1, 1, 0, 0, ICS_WARMUP_LINEAR, 0.01, 6, 0, {0}},
    {ICS_SCHED_STEP, 0.1, 3, 0.5, 1, 0, 0, ICS_WARMUP_LINEAR, 0.01, 10, 0, {0}},
    {ICS_SCHED_MULTISTEP, 0.2, 30, 0.1, 1, 0, 0, ICS_WARMUP_LINEAR, 0.01, 9, 3, {2, 5, 7}},
    {ICS_SCHED_EXPONENTIAL, 0.1, 30, 0.9, 1, 0, 0, ICS_WARMUP_LINEAR, 0.01, 8, 0, {0}},
    {ICS_SCHED_COSINE, 0.1, 30, 0.1, 8, 1e-3, 0, ICS_WARMUP_LINEAR, 0.01, 12, 0, {0}},
    {ICS_SCHED_COSINE, 0.4, 30, 0.1, 7, 0, 3, ICS_WARMUP_LINEAR, 0.01, 10, 0, {0}},
    {ICS_SCHED_STEP, 0.1, 2, 0.5, 1, 0, 2, ICS_WARMUP_CONSTANT, 0.1, 8, 0, {0}},
    {ICS_SCHED_MULTISTEP, 0.1, 30, 0.1, 1, 0, 2, ICS_WARMUP_LINEAR, 0.25, 10, 2, {3, 6}},
};
#define N_SCHED ((int)(sizeof sched_cases / sizeof *sched_cases))

static const char *const method_names[] = {"linear", "constant"};

static void schedule_from_case(const sched_case *c, ics_sched_interval interval, ics_lr_schedule *s)
{
    ics_lr_schedule_init(s, c->kind, c->base);
    s->interval = interval;
    s->step_size = c->step_size;
    s->gamma = c->gamma;
    s->t_max = c->t_max;
    s->eta_min = c->eta_min;
    s->warmup_epochs = c->warmup;
    s->warmup = c->method;
    s->warmup_start_factor = c->start_factor;
    s->n_milestones = c->n_milestones;
    for (int i = 0; i < c->n_milestones; i++) s->milestones[i] = c->milestones[i];
}

/* Writes every input, runs the reference once. */
static void make_reference(void)
{
    if (ref_dir) return;
    ref_dir = ics_test_tmpdir("optim");
    uint64_t rng = 12345;
    char name[64];
    for (int j = 0; j < N_PARAMS; j++) {
        init_params[j] = malloc(numels[j] * sizeof(float));
        grads[j] = malloc(STEPS * numels[j] * sizeof(float));
        ics_test_fill_uniform(init_params[j], numels[j], -1.0f, 1.0f, &rng);
        ics_test_fill_uniform(grads[j], STEPS * numels[j], -0.5f, 0.5f, &rng);
        int64_t shape1[1] = {(int64_t)numels[j]}, shape2[2] = {STEPS, (int64_t)numels[j]};
        snprintf(name, sizeof name, "p%d", j);
        ics_test_npy_write_f32(ref_dir, name, init_params[j], shape1, 1);
        snprintf(name, sizeof name, "g%d", j);
        ics_test_npy_write_f32(ref_dir, name, grads[j], shape2, 2);

        clip_grads[j] = malloc(clip_numels[j] * sizeof(float));
        ics_test_fill_uniform(clip_grads[j], clip_numels[j], -0.02f, 0.02f, &rng);
        int64_t cshape[1] = {(int64_t)clip_numels[j]};
        snprintf(name, sizeof name, "clip_g%d", j);
        ics_test_npy_write_f32(ref_dir, name, clip_grads[j], cshape, 1);
    }

    char *path = malloc(strlen(ref_dir) + 32);
    sprintf(path, "%s/optim_cases.txt", ref_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%d %d %d %.17g\n", N_PARAMS, STEPS, LR_CHANGE_STEP, LR_CHANGE_FACTOR);
    for (int j = 0; j < N_PARAMS; j++) fprintf(f, "%d ", ndims[j] <= 1 ? 1 : 0);
    fprintf(f, "\n");
    for (int c = 0; c < N_CASES; c++) {
        const optim_case *k = &cases[c];
        fprintf(f, "%s %.17g %.17g %.17g %d %.17g %.17g %.17g %.17g %.17g %.17g %d\n", k->kind, k->lr, k->momentum,
                k->dampening, k->nesterov, k->beta1, k->beta2, k->eps, k->wd0, k->wd1, k->scale1, k->zero_at);
    }
    fclose(f);

    sprintf(path, "%s/clip_cases.txt", ref_dir);
    f = fopen(path, "w");
    fprintf(f, "%d\n", N_PARAMS);
    for (int c = 0; c < N_CLIP; c++) fprintf(f, "%.17g\n", clip_max_norms[c]);
    fclose(f);

    sprintf(path, "%s/sched_cases.txt", ref_dir);
    f = fopen(path, "w");
    fprintf(f, "%d\n", SCHED_SPE);
    for (int c = 0; c < N_SCHED; c++) {
        const sched_case *s = &sched_cases[c];
        fprintf(f, "%s %.17g %.17g %.17g %.17g %.17g %.17g %s %.17g %d", ics_sched_kind_name(s->kind), s->base,
                s->step_size, s->gamma, s->t_max, s->eta_min, s->warmup, method_names[s->method], s->start_factor,
                s->epochs);
        for (int i = 0; i < s->n_milestones; i++) fprintf(f, " %.17g", s->milestones[i]);
        fprintf(f, "\n");
    }
    fclose(f);
    free(path);

    ref_status = ics_test_have_torch() ? ics_test_run_torch("tests/torchref/optim_ref.py", ref_dir) : 77;
}

/* Views over fresh copies of the initial parameters, gradient buffers zeroed. */
static void make_views(ics_param_view *views, float **data, float **grad, int no_decay_1d)
{
    for (int j = 0; j < N_PARAMS; j++) {
        data[j] = malloc(numels[j] * sizeof(float));
        grad[j] = calloc(numels[j], sizeof(float));
        memcpy(data[j], init_params[j], numels[j] * sizeof(float));
        views[j] = (ics_param_view){names[j], data[j], grad[j], numels[j], ndims[j], 0};
    }
    ics_optim_assign_groups(views, N_PARAMS, no_decay_1d);
}

static void free_views(float **data, float **grad)
{
    for (int j = 0; j < N_PARAMS; j++) {
        free(data[j]);
        free(grad[j]);
    }
}

static ics_optim *optim_for_case(const optim_case *k, ics_param_view *views)
{
    ics_optim_hparams hp;
    ics_optim_hparams_default(&hp, (ics_optim_kind)ics_optim_kind_parse(k->kind));
    hp.lr = k->lr;
    hp.momentum = k->momentum;
    hp.dampening = k->dampening;
    hp.nesterov = k->nesterov;
    if (hp.kind != ICS_OPTIM_SGD) {
        hp.beta1 = k->beta1;
        hp.beta2 = k->beta2;
        hp.eps = k->eps;
    }
    ics_optim_group groups[2] = {{1.0, k->wd0}, {k->scale1, k->wd1}};
    ics_optim *opt = NULL;
    ics_error err;
    ics_error_clear(&err);
    ics_status st = ics_optim_create(&opt, &hp, groups, 2, views, N_PARAMS, &err);
    if (st != ICS_OK) fprintf(stderr, "optim create: %s\n", err.message);
    return opt;
}

/* Loads step s's gradients into the views (grads accumulate: zero + add). */
static void load_grads(ics_optim *opt, float **grad, int s)
{
    ics_optim_zero_grad(opt);
    for (int j = 0; j < N_PARAMS; j++)
        for (size_t i = 0; i < numels[j]; i++) grad[j][i] += grads[j][(size_t)s * numels[j] + i];
}

static int need_reference(void)
{
    make_reference();
    if (ref_status == 77) return 0;
    CU_ASSERT_EQUAL_FATAL(ref_status, 0);
    return 1;
}

static void test_optimizers_match_torch(void)
{
    if (!need_reference()) return;
    char name[96];
    for (int c = 0; c < N_CASES; c++) {
        const optim_case *k = &cases[c];
        ics_param_view views[N_PARAMS];
        float *data[N_PARAMS], *grad[N_PARAMS];
        make_views(views, data, grad, 1);
        ics_optim *opt = optim_for_case(k, views);
        CU_ASSERT_PTR_NOT_NULL_FATAL(opt);
        float *traj[N_PARAMS];
        for (int j = 0; j < N_PARAMS; j++) {
            snprintf(name, sizeof name, "traj_%d_%d", c, j);
            traj[j] = ics_test_npy_read_f32(ref_dir, name, NULL, NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(traj[j]);
        }
        double worst = 0;
        for (int s = 0; s < STEPS; s++) {
            if (s == LR_CHANGE_STEP) ics_optim_set_lr(opt, k->lr * LR_CHANGE_FACTOR);
            if (k->zero_at && s == k->zero_at) ics_optim_zero_momentum(opt);
            load_grads(opt, grad, s);
            ics_optim_step(opt);
            for (int j = 0; j < N_PARAMS; j++) {
                snprintf(name, sizeof name, "case %d (%s) step %d %s", c, k->kind, s + 1, names[j]);
                double r = ics_test_compare(name, data[j], traj[j] + (size_t)s * numels[j], numels[j], 5e-7, 5e-6);
                CU_ASSERT(r <= 1.0);
                if (r > worst) worst = r;
            }
        }
        printf("\n    case %d (%s): worst difference %.3f of the tolerance", c, k->kind, worst);
        CU_ASSERT_EQUAL(ics_optim_step_count(opt), STEPS);
        /* Final state, slot by slot, against torch's optimizer.state. */
        for (int slot = 0; slot < ics_optim_slot_count(opt); slot++) {
            for (int j = 0; j < N_PARAMS; j++) {
                snprintf(name, sizeof name, "state_%d_%d_%s", c, j, ics_optim_slot_name(opt, slot));
                float *want = ics_test_npy_read_f32(ref_dir, name, NULL, NULL);
                CU_ASSERT_PTR_NOT_NULL_FATAL(want);
                ICS_ASSERT_CLOSE(name, ics_optim_slot_param(opt, slot, (size_t)j), want, numels[j], 5e-7, 5e-6);
                free(want);
            }
        }
        for (int j = 0; j < N_PARAMS; j++) free(traj[j]);
        ics_optim_destroy(opt);
        free_views(data, grad);
    }
    printf("\n  ");
}

static void test_slots_by_name(void)
{
    make_reference();
    ics_param_view views[N_PARAMS];
    float *data[N_PARAMS], *grad[N_PARAMS];
    make_views(views, data, grad, 1);
    CU_ASSERT_EQUAL(views[0].group, 0);
    CU_ASSERT_EQUAL(views[1].group, 1);
    CU_ASSERT_EQUAL(views[2].group, 0);

    ics_optim *plain = optim_for_case(&cases[0], views);
    CU_ASSERT_EQUAL(ics_optim_slot_count(plain), 0);
    CU_ASSERT_EQUAL(ics_optim_slot_find(plain, "momentum_buffer"), -1);
    ics_optim_destroy(plain);

    ics_optim *sgd = optim_for_case(&cases[1], views);
    CU_ASSERT_EQUAL(ics_optim_slot_count(sgd), 1);
    CU_ASSERT_EQUAL(ics_optim_slot_find(sgd, "momentum_buffer"), 0);
    CU_ASSERT_PTR_NULL(ics_optim_slot_name(sgd, 1));
    CU_ASSERT_DOUBLE_EQUAL(ics_optim_group_lr(sgd, 1), 0.05 * 0.5, 1e-15);
    ics_optim_destroy(sgd);

    ics_optim *adam = optim_for_case(&cases[4], views);
    CU_ASSERT_EQUAL(ics_optim_slot_count(adam), 2);
    CU_ASSERT_EQUAL(ics_optim_slot_find(adam, "exp_avg"), 0);
    CU_ASSERT_EQUAL(ics_optim_slot_find(adam, "exp_avg_sq"), 1);
    size_t floats = 0;
    float *slab = ics_optim_slot_slab(adam, 1, &floats);
    CU_ASSERT_PTR_NOT_NULL(slab);
    CU_ASSERT(floats >= numels[0] + numels[1] + numels[2]);
    /* Every parameter's state starts on a 64-byte boundary inside the slab. */
    for (size_t j = 0; j < N_PARAMS; j++) {
        float *p = ics_optim_slot_param(adam, 1, j);
        CU_ASSERT(p >= slab && p + numels[j] <= slab + floats);
        CU_ASSERT_EQUAL(((uintptr_t)p) % 64, 0);
    }
    CU_ASSERT_PTR_NULL(ics_optim_slot_param(adam, 2, 0));
    CU_ASSERT_PTR_NULL(ics_optim_slot_param(adam, 0, N_PARAMS));
    CU_ASSERT_STRING_EQUAL(ics_optim_param(adam, 2)->name, "fc2.weight");
    CU_ASSERT_EQUAL(ics_optim_param_count(adam), N_PARAMS);
    ics_optim_destroy(adam);
    free_views(data, grad);
}

/* Saving the slots and step count and loading them into a fresh optimizer
 * continues the run exactly (what a checkpoint resume relies on). */
static void test_state_restore_is_exact(void)
{
    make_reference();
    for (int c = 1; c < N_CASES; c++) {
        ics_param_view va[N_PARAMS], vb[N_PARAMS];
        float *da[N_PARAMS], *ga[N_PARAMS], *db[N_PARAMS], *gb[N_PARAMS];
        make_views(va, da, ga, 1);
        make_views(vb, db, gb, 1);
        ics_optim *a = optim_for_case(&cases[c], va);
        for (int s = 0; s < 10; s++) {
            load_grads(a, ga, s);
            ics_optim_step(a);
        }
        /* "checkpoint": params, slots and step count into b */
        ics_optim *b = optim_for_case(&cases[c], vb);
        for (int j = 0; j < N_PARAMS; j++) memcpy(db[j], da[j], numels[j] * sizeof(float));
        for (int slot = 0; slot < ics_optim_slot_count(a); slot++) {
            int bs = ics_optim_slot_find(b, ics_optim_slot_name(a, slot));
            CU_ASSERT_EQUAL_FATAL(bs, slot);
            for (size_t j = 0; j < N_PARAMS; j++)
                memcpy(ics_optim_slot_param(b, bs, j), ics_optim_slot_param(a, slot, j), numels[j] * sizeof(float));
        }
        ics_optim_set_step_count(b, ics_optim_step_count(a));
        for (int s = 10; s < STEPS; s++) {
            load_grads(a, ga, s);
            load_grads(b, gb, s);
            ics_optim_step(a);
            ics_optim_step(b);
        }
        for (int j = 0; j < N_PARAMS; j++) CU_ASSERT_EQUAL(memcmp(da[j], db[j], numels[j] * sizeof(float)), 0);
        ics_optim_destroy(a);
        ics_optim_destroy(b);
        free_views(da, ga);
        free_views(db, gb);
    }
}

static void test_weight_decay_per_group(void)
{
    make_reference();
    /* p = 1, g = 0, lr 0.1: plain SGD moves only the decayed group, by lr*wd*p. */
    ics_param_view views[N_PARAMS];
    float *data[N_PARAMS], *grad[N_PARAMS];
    make_views(views, data, grad, 1);
    for (int j = 0; j < N_PARAMS; j++)
        for (size_t i = 0; i < numels[j]; i++) data[j][i] = 1.0f;
    optim_case k = cases[0];
    k.wd0 = 0.5;
    ics_optim *opt = optim_for_case(&k, views);
    ics_error err;
    ics_error_clear(&err);
    CU_ASSERT_EQUAL(ics_optim_set_weight_decay(opt, 1, 0.25, &err), ICS_OK);
    CU_ASSERT_DOUBLE_EQUAL(ics_optim_group_get(opt, 1)->weight_decay, 0.25, 0);
    ics_optim_step(opt);
    CU_ASSERT_DOUBLE_EQUAL(data[0][0], 1.0 - 0.1 * 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(data[1][0], 1.0 - 0.1 * 0.25, 1e-7);
    CU_ASSERT_EQUAL(ics_optim_set_weight_decay(opt, 2, 0.1, &err), ICS_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(err.message, "optimizer: group 2 does not exist (2 groups)");
    CU_ASSERT_EQUAL(ics_optim_set_weight_decay(opt, 0, -1, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "optimizer: group 0: invalid weight decay -1 (must be >= 0)");
    ics_optim_destroy(opt);
    free_views(data, grad);

    /* Without no_decay_1d every view is in group 0. */
    make_views(views, data, grad, 0);
    CU_ASSERT_EQUAL(views[1].group, 0);
    free_views(data, grad);
}

/* Every constructor check, with its message. */
static void test_optimizer_errors(void)
{
    make_reference();
    ics_param_view views[N_PARAMS];
    float *data[N_PARAMS], *grad[N_PARAMS];
    make_views(views, data, grad, 1);
    ics_optim_group groups[2] = {{1.0, 0.0}, {1.0, 0.0}};
    struct {
        ics_optim_kind kind;
        double lr, momentum, dampening;
        int nesterov;
        double beta1, beta2, eps;
        const char *message;
    } bad[] = {
        {ICS_OPTIM_SGD, -0.1, 0, 0, 0, 0.9, 0.999, 1e-8, "optimizer: invalid learning rate -0.1 (must be >= 0)"},
        {ICS_OPTIM_SGD, 0.1, -0.5, 0, 0, 0.9, 0.999, 1e-8, "optimizer sgd: invalid momentum -0.5 (must be >= 0)"},
        {ICS_OPTIM_SGD, 0.1, 0.9, 1.5, 0, 0.9, 0.999, 1e-8, "optimizer sgd: invalid dampening 1.5 (must be in [0, 1])"},
        {ICS_OPTIM_SGD, 0.1, 0.9, 0.1, 1, 0.9, 0.999, 1e-8,
         "optimizer sgd: nesterov momentum requires a momentum > 0 and zero dampening (momentum 0.9, dampening 0.1)"},
        {ICS_OPTIM_ADAM, 0.1, 0, 0, 0, 0.9, 0.999, -1e-8, "optimizer adam: invalid eps -1e-08 (must be >= 0)"},
        {ICS_OPTIM_ADAMW, 0.1, 0, 0, 0, 1.0, 0.999, 1e-8, "optimizer adamw: invalid beta1 1 (must be in [0, 1))"},
        {ICS_OPTIM_ADAM, 0.1, 0, 0, 0, 0.9, -0.1, 1e-8, "optimizer adam: invalid beta2 -0.1 (must be in [0, 1))"},
        {(ics_optim_kind)7, 0.1, 0, 0, 0, 0.9, 0.999, 1e-8, "optimizer: unknown kind 7"},
    };
    ics_error err;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ics_optim_hparams hp = {bad[i].kind, bad[i].lr, bad[i].momentum, bad[i].dampening, bad[i].nesterov,
                                bad[i].beta1, bad[i].beta2, bad[i].eps};
        ics_optim *opt = (ics_optim *)1;
        ics_error_clear(&err);
        CU_ASSERT_NOT_EQUAL(ics_optim_create(&opt, &hp, groups, 2, views, N_PARAMS, &err), ICS_OK);
        CU_ASSERT_PTR_NULL(opt);
        CU_ASSERT_STRING_EQUAL(err.message, bad[i].message);
    }

    ics_optim_hparams hp;
    ics_optim_hparams_default(&hp, ICS_OPTIM_SGD);
    ics_optim *opt = NULL;
    CU_ASSERT_EQUAL(ics_optim_create(&opt, &hp, groups, 0, views, N_PARAMS, &err), ICS_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(err.message, "optimizer: needs at least one parameter group");
    ics_optim_group neg_wd[2] = {{1.0, 0.0}, {1.0, -0.01}};
    CU_ASSERT_EQUAL(ics_optim_create(&opt, &hp, neg_wd, 2, views, N_PARAMS, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "optimizer: group 1: invalid weight decay -0.01 (must be >= 0)");
    ics_optim_group neg_scale[2] = {{-1.0, 0.0}, {1.0, 0.0}};
    CU_ASSERT_EQUAL(ics_optim_create(&opt, &hp, neg_scale, 2, views, N_PARAMS, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "optimizer: group 0: invalid lr scale -1 (must be >= 0)");
    CU_ASSERT_EQUAL(ics_optim_create(&opt, &hp, groups, 1, views, N_PARAMS, &err), ICS_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(err.message, "optimizer: parameter fc1.bias: group 1 does not exist (1 groups)");
    views[2].grad = NULL;
    CU_ASSERT_EQUAL(ics_optim_create(&opt, &hp, groups, 2, views, N_PARAMS, &err), ICS_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(err.message, "optimizer: parameter fc2.weight has no gradient buffer");
    views[2].grad = grad[2];
    views[2].data = NULL;
    CU_ASSERT_EQUAL(ics_optim_create(&opt, &hp, groups, 2, views, N_PARAMS, &err), ICS_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(err.message, "optimizer: parameter fc2.weight has no data buffer");
    views[2].data = data[2];

    /* Every allocation failing in turn is reported and leaks nothing. */
    hp.kind = ICS_OPTIM_ADAM;
    for (long n = 1; n <= 12; n++) {
        ics_error_clear(&err);
        ics_alloc_fail_after(n);
        ics_status st = ics_optim_create(&opt, &hp, groups, 2, views, N_PARAMS, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_OK) {
            ics_optim_destroy(opt);
            CU_ASSERT(n > 6); /* optimizer, groups, views, offsets, blocks, partials, table, 2 slots */
            break;
        }
        CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
        CU_ASSERT_PTR_NULL(opt);
        CU_ASSERT_EQUAL(err.status, ICS_ERR_NOMEM);
    }
    CU_ASSERT_EQUAL(ics_optim_kind_parse("rmsprop"), -1);
    CU_ASSERT_STRING_EQUAL(ics_optim_kind_name(ICS_OPTIM_ADAMW), "adamw");
    free_views(data, grad);
}

static void test_clip_grad_norm_matches_torch(void)
{
    if (!need_reference()) return;
    char name[64];
    float *g[N_PARAMS];
    ics_param_view views[N_PARAMS];
    float dummy_data[1];
    for (int c = 0; c < N_CLIP; c++) {
        for (int j = 0; j < N_PARAMS; j++) {
            g[j] = malloc(clip_numels[j] * sizeof(float));
            memcpy(g[j], clip_grads[j], clip_numels[j] * sizeof(float));
            /* data is never touched by clipping; the views need one */
            views[j] = (ics_param_view){names[j], dummy_data, g[j], clip_numels[j], 1, 0};
        }
        ics_optim_hparams hp;
        ics_optim_hparams_default(&hp, ICS_OPTIM_SGD);
        ics_optim_group group = {1.0, 0.0};
        ics_optim *opt = NULL;
        CU_ASSERT_EQUAL_FATAL(ics_optim_create(&opt, &hp, &group, 1, views, N_PARAMS, NULL), ICS_OK);
        double norm = -1;
        ics_optim_clip_grad_norm(opt, clip_max_norms[c], &norm);
        snprintf(name, sizeof name, "clip_norm_%d", c);
        float *want_norm = ics_test_npy_read_f32(ref_dir, name, NULL, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want_norm);
        /* torch sums in float32: agree to ~1e-6 relative */
        CU_ASSERT(fabs(norm - want_norm[0]) <= 1e-6 * want_norm[0]);
        free(want_norm);
        for (int j = 0; j < N_PARAMS; j++) {
            snprintf(name, sizeof name, "clip_%d_%d", c, j);
            float *want = ics_test_npy_read_f32(ref_dir, name, NULL, NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(want);
            ICS_ASSERT_CLOSE(name, g[j], want, clip_numels[j], 1e-9, 1e-5);
            free(want);
            free(g[j]);
        }
        ics_optim_destroy(opt);
    }
}

static void test_clip_non_finite_leaves_grads(void)
{
    float data[4] = {0}, grad[4] = {1, 2, INFINITY, 4};
    ics_param_view v = {"w", data, grad, 4, 1, 0};
    ics_optim_hparams hp;
    ics_optim_hparams_default(&hp, ICS_OPTIM_SGD);
    ics_optim_group group = {1.0, 0.0};
    ics_optim *opt = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_optim_create(&opt, &hp, &group, 1, &v, 1, NULL), ICS_OK);
    double norm = 0;
    ics_optim_clip_grad_norm(opt, 1.0, &norm);
    CU_ASSERT(isinf(norm));
    CU_ASSERT_EQUAL(grad[0], 1.0f);
    CU_ASSERT_EQUAL(grad[3], 4.0f);
    /* A finite small norm: no change (coef >= 1). */
    grad[2] = 0.0f;
    ics_optim_clip_grad_norm(opt, 100.0, &norm);
    CU_ASSERT_DOUBLE_EQUAL(norm, sqrt(21.0), 1e-12);
    CU_ASSERT_EQUAL(grad[1], 2.0f);
    ics_optim_destroy(opt);
}

static void test_schedules_match_torch(void)
{
    if (!need_reference()) return;
    char name[64];
    for (int c = 0; c < N_SCHED; c++) {
        const sched_case *k = &sched_cases[c];
        ics_lr_schedule per_epoch, per_step;
        schedule_from_case(k, ICS_SCHED_PER_EPOCH, &per_epoch);
        schedule_from_case(k, ICS_SCHED_PER_STEP, &per_step);
        ics_error err;
        CU_ASSERT_EQUAL(ics_lr_schedule_validate(&per_epoch, &err), ICS_OK);

        snprintf(name, sizeof name, "sched_epoch_%d", c);
        float *want = ics_test_npy_read_f32(ref_dir, name, NULL, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        for (int e = 0; e < k->epochs; e++) {
            /* integer epochs: both modes equal torch's per-epoch scheduler */
            double w = want[e];
            double a = ics_lr_schedule_at(&per_epoch, e), b = ics_lr_schedule_at(&per_step, e);
            if (fabs(a - w) > 1e-6 * fabs(w) + 1e-12 || fabs(b - w) > 1e-6 * fabs(w) + 1e-12)
                printf("\n  %s epoch %d: torch %.9g, per-epoch %.9g, per-step %.9g\n", ics_sched_kind_name(k->kind), e, w, a, b);
            CU_ASSERT(fabs(a - w) <= 1e-6 * fabs(w) + 1e-12);
            CU_ASSERT(fabs(b - w) <= 1e-6 * fabs(w) + 1e-12);
            /* inside an epoch the per-epoch mode holds the epoch's value */
            CU_ASSERT_DOUBLE_EQUAL(ics_lr_schedule_at(&per_epoch, e + 0.75), a, 0);
        }
        free(want);

        /* fractional epochs: the per-step mode equals torch's scheduler
         * stepped every iteration with epoch lengths scaled by
         * SCHED_SPE iterations per epoch. */
        snprintf(name, sizeof name, "sched_iter_%d", c);
        want = ics_test_npy_read_f32(ref_dir, name, NULL, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        for (int it = 0; it < k->epochs * SCHED_SPE; it++) {
            double epoch = it / (double)SCHED_SPE, w = want[it];
            double b = ics_lr_schedule_at(&per_step, epoch);
            if (fabs(b - w) > 1e-6 * fabs(w) + 1e-12)
                printf("\n  %s iteration %d (epoch %g): torch %.9g, per-step %.9g\n", ics_sched_kind_name(k->kind),
                       it, epoch, w, b);
            CU_ASSERT(fabs(b - w) <= 1e-6 * fabs(w) + 1e-12);
        }
        free(want);
    }
}

static void test_schedule_errors(void)
{
    struct {
        ics_sched_kind kind;
        double base, step_size, gamma, t_max, warmup, start;
        int n_milestones;
        double m0, m1;
        const char *message;
    } bad[] = {
        {ICS_SCHED_CONSTANT, -1, 30, 0.1, 1, 0, 0.01, 0, 0, 0, "lr schedule: invalid base lr -1 (must be >= 0)"},
        {ICS_SCHED_STEP, 0.1, 0, 0.1, 1, 0, 0.01, 0, 0, 0, "lr schedule step: step_size 0 must be > 0"},
        {ICS_SCHED_MULTISTEP, 0.1, 30, 0.1, 1, 0, 0.01, 40, 0, 0, "lr schedule multistep: 40 milestones (at most 32)"},
        {ICS_SCHED_MULTISTEP, 0.1, 30, 0.1, 1, 0, 0.01, 2, 5, 5,
         "lr schedule multistep: milestones must increase (milestone 1 = 5 after 5)"},
        {ICS_SCHED_COSINE, 0.1, 30, 0.1, 0, 0, 0.01, 0, 0, 0, "lr schedule cosine: T_max 0 must be > 0"},
        {ICS_SCHED_EXPONENTIAL, 0.1, 30, 0, 1, 0, 0.01, 0, 0, 0, "lr schedule exponential: gamma 0 must be > 0"},
        {ICS_SCHED_CONSTANT, 0.1, 30, 0.1, 1, -2, 0.01, 0, 0, 0, "lr schedule: warm-up epochs -2 must be >= 0"},
        {ICS_SCHED_CONSTANT, 0.1, 30, 0.1, 1, 2, 0, 0, 0, 0, "lr schedule: warm-up start factor 0 must be in (0, 1]"},
        {(ics_sched_kind)9, 0.1, 30, 0.1, 1, 0, 0.01, 0, 0, 0, "lr schedule: unknown kind 9"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ics_lr_schedule s;
        ics_lr_schedule_init(&s, bad[i].kind, bad[i].base);
        s.step_size = bad[i].step_size;
        s.gamma = bad[i].gamma;
        s.t_max = bad[i].t_max;
        s.warmup_epochs = bad[i].warmup;
        s.warmup_start_factor = bad[i].start;
        s.n_milestones = bad[i].n_milestones;
        s.milestones[0] = bad[i].m0;
        s.milestones[1] = bad[i].m1;
        ics_error err;
        ics_error_clear(&err);
        CU_ASSERT_NOT_EQUAL(ics_lr_schedule_validate(&s, &err), ICS_OK);
        CU_ASSERT_STRING_EQUAL(err.message, bad[i].message);
    }
    CU_ASSERT_EQUAL(ics_sched_kind_parse("cosine"), ICS_SCHED_COSINE);
    CU_ASSERT_EQUAL(ics_sched_kind_parse("poly"), -1);
    /* negative epochs clamp to 0 */
    ics_lr_schedule s;
    ics_lr_schedule_init(&s, ICS_SCHED_EXPONENTIAL, 0.1);
    s.gamma = 0.5;
    CU_ASSERT_DOUBLE_EQUAL(ics_lr_schedule_at(&s, -3), 0.1, 0);
}

/* EMA of a known sequence x_1..x_n (constant decay d, first update copies):
 *   ema_n = d^(n-1) x_1 + sum_{j=2..n} (1-d) d^(n-j) x_j. */
static void test_ema_closed_form(void)
{
    enum { N = 300, B = 2, UPDATES = 40 };
    const double d = 0.9;
    ics_ema_config cfg = {ICS_EMA_CONSTANT, d, 3, 0, 0, 1, 1, 1};
    ics_ema *ema = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_ema_create(&ema, &cfg, N, B, &err), ICS_OK);
    static float xs[UPDATES][N];
    float buffers[B];
    uint64_t rng = 7;
    int updates = 0;
    for (int64_t step = 1; step <= 3 * UPDATES; step++) {
        float x[N];
        ics_test_fill_uniform(x, N, -1, 1, &rng);
        buffers[0] = (float)step;
        buffers[1] = -(float)step;
        int did = ics_ema_maybe_update(ema, step, step / 10.0, x, buffers);
        CU_ASSERT_EQUAL(did, step % 3 == 0);
        if (did) memcpy(xs[updates++], x, sizeof x);
    }
    CU_ASSERT_EQUAL(updates, UPDATES);
    CU_ASSERT_EQUAL(ics_ema_n_averaged(ema), UPDATES);
    float want[N];
    for (int i = 0; i < N; i++) {
        double acc = pow(d, UPDATES - 1) * xs[0][i];
        for (int j = 2; j <= UPDATES; j++) acc += (1 - d) * pow(d, UPDATES - j) * xs[j - 1][i];
        want[i] = (float)acc;
    }
    ICS_ASSERT_CLOSE("ema closed form", ics_ema_params(ema), want, N, 1e-6, 1e-5);
    /* buffers are copied from the model, not averaged */
    CU_ASSERT_EQUAL(ics_ema_buffers(ema)[0], (float)(3 * UPDATES));
    CU_ASSERT_EQUAL(ics_ema_buffers(ema)[1], -(float)(3 * UPDATES));
    ics_ema_destroy(ema);

    /* averaged buffers: 0 then 1 with d = 0.75: 0.25 */
    cfg.buffers_averaged = 1;
    cfg.decay = 0.75;
    CU_ASSERT_EQUAL_FATAL(ics_ema_create(&ema, &cfg, 1, 1, &err), ICS_OK);
    float p = 0, b = 0;
    ics_ema_update(ema, 0, &p, &b);
    p = 1;
    b = 1;
    ics_ema_update(ema, 0, &p, &b);
    CU_ASSERT_DOUBLE_EQUAL(ics_ema_buffers(ema)[0], 0.25, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(ics_ema_params(ema)[0], 0.25, 1e-7);
    ics_ema_destroy(ema);
}

static void test_ema_warmup_and_decay_modes(void)
{
    /* During warm-up epochs every update copies (torchvision resets
     * n_averaged); after it the average starts from the last copy. */
    ics_ema_config cfg = {ICS_EMA_CONSTANT, 0.5, 1, 2.0, 0, 1, 1, 1};
    ics_ema *ema = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_ema_create(&ema, &cfg, 1, 0, &err), ICS_OK);
    float x = 3;
    ics_ema_update(ema, 0.5, &x, NULL);
    x = 5;
    ics_ema_update(ema, 1.9, &x, NULL);
    CU_ASSERT_EQUAL(ics_ema_params(ema)[0], 5.0f);
    CU_ASSERT_EQUAL(ics_ema_n_averaged(ema), 0);
    x = 7;
    ics_ema_update(ema, 2.0, &x, NULL); /* n_averaged 0: still a copy, then counts */
    CU_ASSERT_EQUAL(ics_ema_params(ema)[0], 7.0f);
    x = 9;
    ics_ema_update(ema, 2.1, &x, NULL);
    CU_ASSERT_EQUAL(ics_ema_params(ema)[0], 8.0f);
    CU_ASSERT_EQUAL(ics_ema_n_updates(ema), 4);
    ics_ema_set_n_averaged(ema, 0);
    ics_ema_set_n_updates(ema, 11);
    CU_ASSERT_EQUAL(ics_ema_n_updates(ema), 11);
    ics_ema_destroy(ema);

    /* torchvision: adjust = 2*32*32/10 = 204.8; alpha = 2e-5*204.8 */
    ics_ema_config tv = {ICS_EMA_TORCHVISION, 0.99998, 32, 0, 0, 2, 32, 10};
    CU_ASSERT_DOUBLE_EQUAL(ics_ema_effective_decay(&tv, 0), 1.0 - 0.00002 * 204.8, 1e-12);
    tv.decay = 0.5; /* alpha clamps at 1: the EMA is the weights */
    CU_ASSERT_DOUBLE_EQUAL(ics_ema_effective_decay(&tv, 5), 0.0, 0);
    ics_ema_config warm = {ICS_EMA_WARMUP, 0.999, 1, 0, 0, 1, 1, 1};
    CU_ASSERT_DOUBLE_EQUAL(ics_ema_effective_decay(&warm, 0), 0.1, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ics_ema_effective_decay(&warm, 1), 2.0 / 11.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ics_ema_effective_decay(&warm, 100000), 0.999, 0);
    CU_ASSERT_EQUAL(ics_ema_mode_parse("torchvision"), ICS_EMA_TORCHVISION);
    CU_ASSERT_EQUAL(ics_ema_mode_parse("warmup"), ICS_EMA_WARMUP);
    CU_ASSERT_EQUAL(ics_ema_mode_parse("constant"), ICS_EMA_CONSTANT);
    CU_ASSERT_EQUAL(ics_ema_mode_parse("swa"), -1);

    /* errors */
    ics_ema_config bad = {ICS_EMA_CONSTANT, 1.5, 1, 0, 0, 1, 1, 1};
    ema = (ics_ema *)1;
    CU_ASSERT_EQUAL(ics_ema_create(&ema, &bad, 1, 0, &err), ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(ema);
    CU_ASSERT_STRING_EQUAL(err.message, "ema: decay 1.5 must be in [0, 1]");
    bad.decay = 0.9;
    bad.every_steps = 0;
    CU_ASSERT_EQUAL(ics_ema_create(&ema, &bad, 1, 0, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "ema: every_steps 0 must be >= 1");
    bad.every_steps = 4;
    bad.mode = ICS_EMA_TORCHVISION;
    bad.epochs = 0;
    CU_ASSERT_EQUAL(ics_ema_create(&ema, &bad, 1, 0, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "ema: the torchvision decay adjustment needs world_size, batch_size and epochs > 0 (got 1, 1, 0)");
    bad.mode = (ics_ema_mode)-1;
    CU_ASSERT_EQUAL(ics_ema_create(&ema, &bad, 1, 0, &err), ICS_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(err.message, "ema: unknown mode -1");
    for (long n = 1; n <= 3; n++) {
        ics_alloc_fail_after(n);
        ics_error_clear(&err);
        CU_ASSERT_EQUAL(ics_ema_create(&ema, &cfg, 8, 8, &err), ICS_ERR_NOMEM);
        ics_alloc_fail_after(0);
        CU_ASSERT_PTR_NULL(ema);
        CU_ASSERT_EQUAL(err.status, ICS_ERR_NOMEM);
    }
}

/* The update and the clipping norm do not depend on the thread count:
 * one thread and four give the same bits on a parameter large enough to be
 * split (> ICS_OPTIM_PARALLEL_MIN elements, several norm blocks). */
static void test_thread_count_does_not_change_results(void)
{
#ifdef _OPENMP
    enum { N = 100003 };
    float *p[2], *g[2];
    double norm[2];
    uint64_t rng = 99;
    float *p0 = malloc(N * sizeof(float)), *g0 = malloc(N * sizeof(float));
    ics_test_fill_uniform(p0, N, -1, 1, &rng);
    ics_test_fill_uniform(g0, N, -0.1f, 0.1f, &rng);
    int saved = omp_get_max_threads();
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run == 0 ? 1 : 4);
        p[run] = malloc(N * sizeof(float));
        g[run] = malloc(N * sizeof(float));
        memcpy(p[run], p0, N * sizeof(float));
        ics_param_view v = {"big.weight", p[run], g[run], N, 2, 0};
        ics_optim_hparams hp;
        ics_optim_hparams_default(&hp, ICS_OPTIM_ADAMW);
        ics_optim_group group = {1.0, 0.01};
        ics_optim *opt = NULL;
        CU_ASSERT_EQUAL_FATAL(ics_optim_create(&opt, &hp, &group, 1, &v, 1, NULL), ICS_OK);
        for (int s = 0; s < 3; s++) {
            memcpy(g[run], g0, N * sizeof(float));
            ics_optim_clip_grad_norm(opt, 1.0, &norm[run]);
            ics_optim_step(opt);
        }
        ics_optim_destroy(opt);
    }
    omp_set_num_threads(saved);
    CU_ASSERT_EQUAL(norm[0], norm[1]);
    CU_ASSERT_EQUAL(memcmp(p[0], p[1], N * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(g[0], g[1], N * sizeof(float)), 0);
    for (int run = 0; run < 2; run++) {
        free(p[run]);
        free(g[run]);
    }
    free(p0);
    free(g0);
#endif
}

int main(void)
{
    static const ics_test_case optim[] = {
        {"optimizers match torch.optim over 24 steps", test_optimizers_match_torch},
        {"state slots by name", test_slots_by_name},
        {"state restore continues exactly", test_state_restore_is_exact},
        {"weight decay per group", test_weight_decay_per_group},
        {"optimizer errors", test_optimizer_errors},
        {"clip_grad_norm matches torch", test_clip_grad_norm_matches_torch},
        {"clip with a non-finite norm", test_clip_non_finite_leaves_grads},
        {"thread count does not change results", test_thread_count_does_not_change_results},
        {NULL, NULL}};
    static const ics_test_case sched[] = {
        {"schedules match torch.optim.lr_scheduler", test_schedules_match_torch},
        {"schedule errors", test_schedule_errors},
        {NULL, NULL}};
    static const ics_test_case ema[] = {
        {"ema closed form", test_ema_closed_form},
        {"ema warm-up and decay modes", test_ema_warmup_and_decay_modes},
        {NULL, NULL}};
    ics_test_add_suite("optim", optim);
    ics_test_add_suite("lr_schedule", sched);
    ics_test_add_suite("ema", ema);
    int rc = ics_test_main("test_optim");
    if (ref_status == 77) {
        printf("test_optim: PyTorch not importable by $PYTHON_TORCH: reference comparisons skipped\n");
        if (rc == 0) rc = 77;
    }
    if (ref_dir && rc == 0) ics_test_rmtree(ref_dir);
    free(ref_dir);
    for (int j = 0; j < N_PARAMS; j++) {
        free(init_params[j]);
        free(grads[j]);
        free(clip_grads[j]);
    }
    return rc;
}
