/*
 * The manager against PyTorch (tests/torchref/manager_ref.py): the
 * distillation loss and its gradient wrt the student logits equal
 * (1-h) * cross_entropy(s, y, label_smoothing) +
 * h * kl_div(log_softmax(s/T), softmax(t/T), reduction='batchmean') * T^2
 * computed by autograd; LearningRateModifier's lr at each step equals the
 * torch.optim.lr_scheduler class it names. Exits 77 without torch.
 */
#include "ics_build_config.h"
#include "test_util.h"

#include <icsparse/manager.h>
#include <icsparse/model.h>
#include <icsparse/recipe.h>
#include "core/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ics_model *small_model(void)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_channels = 1;
    o.in_h = o.in_w = 12;
    ics_model *m = NULL;
    ics_error err;
    return ics_model_create("simple_cnn", &o, &m, &err) == ICS_OK ? m : NULL;
}

static ics_manager *manager_for(const char *text, ics_model *model, ics_recipe **r)
{
    ics_error err;
    ics_manager *m = NULL;
    if (ics_recipe_load_string(text, "t.yaml", NULL, r, &err) != ICS_OK ||
        ics_manager_create(*r, model, NULL, &m, &err) != ICS_OK) {
        fprintf(stderr, "%s\n", err.message);
        return NULL;
    }
    return m;
}

static void test_distillation_vs_torch(void)
{
    enum { B = 6, C = 7 };
    float s[B * C], t[B * C];
    int32_t y[B];
    uint64_t rng = 123;
    ics_test_fill_uniform(s, B * C, -3, 3, &rng);
    ics_test_fill_uniform(t, B * C, -3, 3, &rng);
    for (int i = 0; i < B; i++)
        y[i] = (i * 5 + 2) % C;
    char *dir = ics_test_tmpdir("manager_torch");
    int64_t shape[2] = {B, C}, yshape[1] = {B};
    CU_ASSERT_FATAL(ics_test_npy_write_f32(dir, "s", s, shape, 2) == 0);
    CU_ASSERT_FATAL(ics_test_npy_write_f32(dir, "t", t, shape, 2) == 0);
    CU_ASSERT_FATAL(ics_test_npy_write_i32(dir, "y", y, yshape, 1) == 0);
    CU_ASSERT_FATAL(ics_test_run_torch("tests/torchref/manager_ref.py", dir) == 0);
    static const double configs[][3] = {
        {0.5, 2.0, 0.0}, {0.7, 3.0, 0.1}, {1.0, 4.0, 0.0}, {0.0, 2.0, 0.2}, {0.3, 1.0, 0.05}};
    ics_model *model = small_model();
    CU_ASSERT_FATAL(model != NULL);
    for (int k = 0; k < 5; k++) {
        char text[512], name[32];
        snprintf(text, sizeof text,
                 "modifiers:\n  - !DistillationModifier\n    hardness: %g\n"
                 "    temperature: %g\n    start_epoch: 0.0\n    end_epoch: 1.0\n",
                 configs[k][0], configs[k][1]);
        ics_recipe *r = NULL;
        ics_manager *m = manager_for(text, model, &r);
        CU_ASSERT_FATAL(m != NULL);
        CU_ASSERT(ics_manager_distillation_active(m, 0.5));
        float d[B * C], probs[B * C];
        float loss = ics_manager_loss(m, 0.5, B, C, s, y, t, (float)configs[k][2], 1.0f, d, probs);
        int64_t sh[2];
        int nd;
        snprintf(name, sizeof name, "loss_%d", k);
        float *want_loss = ics_test_npy_read_f32(dir, name, sh, &nd);
        snprintf(name, sizeof name, "grad_%d", k);
        float *want_grad = ics_test_npy_read_f32(dir, name, sh, &nd);
        CU_ASSERT_FATAL(want_loss && want_grad);
        ICS_ASSERT_CLOSE("distillation loss", &loss, want_loss, 1, 1e-6, 1e-5);
        ICS_ASSERT_CLOSE("distillation grad", d, want_grad, B * C, 1e-7, 1e-5);
        /* scale multiplies the gradient (accumulation) */
        float d2[B * C];
        ics_manager_loss(m, 0.5, B, C, s, y, t, (float)configs[k][2], 0.25f, d2, probs);
        for (int i = 0; i < B * C; i++)
            CU_ASSERT_DOUBLE_EQUAL(d2[i], 0.25 * d[i], 1e-7);
        free(want_loss);
        free(want_grad);
        ics_manager_destroy(m);
        ics_recipe_destroy(r);
    }
    ics_model_destroy(model);
    ics_test_rmtree(dir);
    free(dir);
}

/* One LearningRateModifier per scheduler; lr_at each step vs torch. */
static void check_lr(const char *dir, const char *ref, const char *recipe, double start, int steps)
{
    ics_model *model = small_model();
    ics_recipe *r = NULL;
    ics_manager *m = manager_for(recipe, model, &r);
    CU_ASSERT_FATAL(m != NULL);
    int64_t sh[1];
    int nd;
    float *want = ics_test_npy_read_f32(dir, ref, sh, &nd);
    CU_ASSERT_FATAL(want != NULL && sh[0] == steps);
    float *got = malloc((size_t)steps * sizeof *got);
    for (int k = 0; k < steps; k++)
        got[k] = (float)ics_manager_lr_at(m, start + k / 4.0, 4);
    ICS_ASSERT_CLOSE(ref, got, want, (size_t)steps, 1e-9, 1e-5);
    free(got);
    free(want);
    ics_manager_destroy(m);
    ics_recipe_destroy(r);
    ics_model_destroy(model);
}

static void test_lr_vs_torch(void)
{
    char *dir = ics_test_tmpdir("manager_lr");
    float s[4] = {0, 1, 2, 3};
    int32_t y[1] = {0};
    int64_t shape[2] = {1, 4}, ys[1] = {1};
    CU_ASSERT_FATAL(ics_test_npy_write_f32(dir, "s", s, shape, 2) == 0);
    CU_ASSERT_FATAL(ics_test_npy_write_f32(dir, "t", s, shape, 2) == 0);
    CU_ASSERT_FATAL(ics_test_npy_write_i32(dir, "y", y, ys, 1) == 0);
    CU_ASSERT_FATAL(ics_test_run_torch("tests/torchref/manager_ref.py", dir) == 0);
    check_lr(dir, "lr_step",
             "modifiers:\n  - !LearningRateModifier\n    lr_class: StepLR\n"
             "    lr_kwargs: {step_size: 0.5, gamma: 0.5}\n    init_lr: 0.1\n"
             "    start_epoch: 1.0\n",
             1.0, 12);
    check_lr(dir, "lr_multistep",
             "modifiers:\n  - !LearningRateModifier\n    lr_class: MultiStepLR\n"
             "    lr_kwargs: {milestones: [4, 5.5], gamma: 0.1}\n    init_lr: 0.05\n"
             "    start_epoch: 3.0\n    end_epoch: 6.0\n",
             3.0, 12);
    check_lr(dir, "lr_exponential",
             "modifiers:\n  - !LearningRateModifier\n    lr_class: ExponentialLR\n"
             "    lr_kwargs: {gamma: 0.9}\n    init_lr: 0.04\n    start_epoch: 0.0\n",
             0.0, 12);
    check_lr(dir, "lr_cawr",
             "modifiers:\n  - !LearningRateModifier\n    lr_class: CosineAnnealingWarmRestarts\n"
             "    lr_kwargs: {lr_min: 0.001, cycle_epochs: 2, T_mult: 2}\n    init_lr: 0.1\n"
             "    start_epoch: 0.0\n",
             0.0, 40);
    ics_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    if (!ics_test_have_torch()) {
        fprintf(stderr, "SKIP: $PYTHON_TORCH cannot import torch\n");
        return 77;
    }
    ics_log_set_level(ICS_LOG_WARN);
    static const ics_test_case cases[] = {
        {"distillation loss and gradient vs torch", test_distillation_vs_torch},
        {"LearningRateModifier vs torch.optim.lr_scheduler", test_lr_vs_torch},
        {NULL, NULL}};
    ics_test_add_suite("manager vs torch", cases);
    return ics_test_main("test_manager_torch");
}
