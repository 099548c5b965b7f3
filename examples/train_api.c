/*
 * examples/train_api.c: icsparse-train's training loop from a user's own
 * program, through the public API only (icsparse/config.h,
 * icsparse/trainer.h):
 *
 *   train_api DATASET.h5 RUN_DIR [RECIPE.yaml]
 *
 * Builds a configuration (defaults, then a few keys as libconfig text, as
 * a job file would), trains the small CNN for two epochs on DATASET (made
 * by icsparse-convert), with the recipe when given, and prints the run's
 * summary. Checkpoints, metrics.jsonl and results.json land in RUN_DIR as
 * with the executable.
 */
#include <icsparse/config.h>
#include <icsparse/trainer.h>

#include <stdio.h>

static int fail(const char *what, const ics_error *err)
{
    fprintf(stderr, "train_api: %s: %s\n", what, err->message);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: train_api DATASET.h5 RUN_DIR [RECIPE.yaml]\n");
        return 2;
    }
    ics_error err;
    ics_error_clear(&err);
    ics_config *cfg = NULL;
    if (ics_config_create(&cfg, &err) != ICS_OK) return fail("configuration", &err);
    char text[4096];
    snprintf(text, sizeof text,
             "data = { path = \"%s\"; shards_dir = \"\"; };\n"
             "model = { arch = \"simple_cnn\"; };\n"
             "train = { epochs = 2.0; batch_size = 64; resume = \"never\"; };\n"
             "optim = { lr = 0.05; momentum = 0.9; };\n"
             "run = { dir = \"%s\"; };\n"
             "recipe = { path = \"%s\"; };\n"
             "log = { progress = \"lines\"; };\n",
             argv[1], argv[2], argc > 3 ? argv[3] : "");
    ics_trainer *t = NULL;
    int rc = 0;
    if (ics_config_load_string(cfg, text, "train_api", ICS_ORIGIN_JOB, &err) != ICS_OK)
        rc = fail("configuration", &err);
    else if (ics_trainer_create(cfg, &t, &err) != ICS_OK)
        rc = fail("set-up", &err);
    else if (ics_trainer_run(t, &err) != ICS_OK)
        rc = fail("training", &err);
    else {
        const ics_train_summary *s = ics_trainer_summary(t);
        printf("steps %lld epoch %.2f val_top1 %.2f test_top1 %.2f sparsity %.4f\n", (long long)s->global_step,
               s->epoch, s->val_top1, s->test_top1, s->sparsity);
    }
    ics_trainer_destroy(t);
    ics_config_destroy(cfg);
    return rc;
}
