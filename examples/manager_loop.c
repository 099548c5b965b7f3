/*
 * examples/manager_loop.c: the recipe manager in a user's own training
 * loop, with the user's own optimizer (plain SGD over the model's
 * parameter slab), so only the public API is used:
 *
 *   manager_loop [RECIPE.yaml]
 *
 * Trains simple_cnn (1x12x12 inputs, 10 classes) on a fixed synthetic set
 * for the recipe's max_epochs (3 without a recipe), printing per epoch the
 * lr, the mean loss and the overall sparsity, then the final sparsity of
 * each pruned parameter. The manager's part of a step:
 *
 *   loss = ics_manager_loss(...)              CE, or the distillation mix
 *   backward
 *   ics_manager_before_step(m, epoch, spe)    modifiers update; pruned
 *                                             weights' gradients zeroed
 *   lr = ics_manager_lr_at(m, epoch, spe)     the recipe's lr, if any
 *   own optimizer step
 *   ics_manager_after_step(m, epoch)          masks applied again
 */
#include <icsparse/manager.h>
#include <icsparse/model.h>
#include <icsparse/recipe.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 8, STEPS_PER_EPOCH = 8, CLASSES = 10, SIDE = 12 };

/* A small deterministic generator for the synthetic images. */
static float next_uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) / 16777216.0) * 2.0f - 1.0f;
}

static int fail(const char *what, const ics_error *err)
{
    fprintf(stderr, "manager_loop: %s: %s\n", what, err->message);
    return 1;
}

int main(int argc, char **argv)
{
    ics_error err;
    ics_error_clear(&err);
    ics_recipe *recipe = NULL;
    if (argc > 1 && ics_recipe_load_file(argv[1], NULL, &recipe, &err) != ICS_OK)
        return fail("loading the recipe", &err);

    ics_model_options opts;
    ics_model_options_default(&opts);
    opts.num_classes = CLASSES;
    opts.in_channels = 1;
    opts.in_h = opts.in_w = SIDE;
    ics_model *model = NULL;
    if (ics_model_create("simple_cnn", &opts, &model, &err) != ICS_OK)
        return fail("creating the model", &err);
    ics_model_init_params(model, 1);
    if (ics_model_plan(model, BATCH, 1, &err) != ICS_OK) return fail("planning", &err);

    /* no icsparse optimizer: the manager gets NULL and the loop asks it for the lr */
    ics_manager *mgr = NULL;
    if (ics_manager_create(recipe, model, NULL, &mgr, &err) != ICS_OK)
        return fail("binding the recipe", &err);
    double epochs = recipe ? ics_manager_max_epochs(mgr) : 3;
    double lr = 0.05;

    /* a fixed synthetic data set: label = the quadrant-pattern class */
    size_t image = SIDE * SIDE, n = (size_t)BATCH * STEPS_PER_EPOCH;
    float *x = malloc(n * image * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    float *dlogits = malloc(BATCH * CLASSES * sizeof *dlogits);
    float *probs = malloc(BATCH * CLASSES * sizeof *probs);
    if (!x || !y || !dlogits || !probs) {
        fprintf(stderr, "manager_loop: out of memory\n");
        return 1;
    }
    uint64_t rng = 5;
    for (size_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % CLASSES);
        for (size_t p = 0; p < image; p++)
            x[i * image + p] =
                0.5f * next_uniform(&rng) + (p % CLASSES == (size_t)y[i] ? 1.0f : 0.0f);
    }

    size_t nparams;
    float *params = ics_model_params(model, &nparams);
    float *grads = ics_model_grads(model, &nparams);
    for (int64_t step = 0; step < (int64_t)(epochs * STEPS_PER_EPOCH); step++) {
        double epoch = (double)step / STEPS_PER_EPOCH;
        int b = (int)(step % STEPS_PER_EPOCH);
        const float *logits;
        if (ics_model_forward(model, x + (size_t)b * BATCH * image, BATCH, &logits, &err) != ICS_OK)
            return fail("forward", &err);
        static double loss_sum;
        loss_sum += ics_manager_loss(mgr, epoch, BATCH, CLASSES, logits, y + (size_t)b * BATCH,
                                     NULL, 0.0f, 1.0f, dlogits, probs);
        if (ics_model_backward(model, dlogits, &err) != ICS_OK) return fail("backward", &err);
        if (ics_manager_before_step(mgr, epoch, STEPS_PER_EPOCH, &err) != ICS_OK)
            return fail("before_step", &err);
        double recipe_lr = ics_manager_lr_at(mgr, epoch, STEPS_PER_EPOCH);
        if (recipe_lr >= 0) lr = recipe_lr;
        for (size_t i = 0; i < nparams; i++)
            params[i] -= (float)lr * grads[i];
        if (ics_manager_after_step(mgr, epoch, &err) != ICS_OK) return fail("after_step", &err);
        ics_model_zero_grad(model);
        if (b == STEPS_PER_EPOCH - 1) {
            double overall = 0;
            ics_manager_sparsity(mgr, NULL, NULL, 0, &overall);
            printf("epoch %d lr %.6f loss %.4f sparsity %.4f\n", (int)epoch, lr,
                   loss_sum / STEPS_PER_EPOCH, overall);
            loss_sum = 0;
        }
    }
    if (ics_manager_finalize(mgr, &err) != ICS_OK) return fail("finalize", &err);
    int count = ics_manager_mask_count(mgr);
    const char **names = calloc((size_t)(count ? count : 1), sizeof *names);
    double *values = calloc((size_t)(count ? count : 1), sizeof *values);
    double overall = 0;
    ics_manager_sparsity(mgr, names, values, count, &overall);
    for (int i = 0; i < count; i++)
        printf("final %s %.4f\n", names[i], values[i]);
    printf("final overall %.4f\n", overall);
    free(names);
    free(values);
    free(x);
    free(y);
    free(dlogits);
    free(probs);
    ics_manager_destroy(mgr);
    ics_model_destroy(model);
    ics_recipe_destroy(recipe);
    return 0;
}
