/* icsparse-train: trains one recipe stage with DDP over MPI ranks. */
#include "ics_build_config.h"
#include "apps/app.h"

#include <icsparse/trainer.h>

static const ics_app_option options[] = {
    {"run-dir", 'o', 1, "run.dir", "DIR", NULL, "run directory"},
    {"arch", 'a', 1, "model.arch", "ARCH", NULL, "architecture"},
    {"epochs", 'e', 1, "train.epochs", "N", NULL, "epochs without a recipe"},
    {"batch-size", 'b', 1, "train.batch_size", "N", NULL, "micro-batch size per rank"},
    {"grad-accum-steps", 'k', 1, "train.grad_accum_steps", "K", NULL, "micro-batches per optimizer step"},
    {"recipe", 'r', 1, "recipe.path", "FILE", NULL, "SparseML recipe"},
    {"recipe-args", 0, 1, "recipe.args", "JSON", NULL, "recipe variable overrides"},
    {"init-from", 0, 1, "model.init_from", "FILE", NULL, "initial weights (.h5 or .pth)"},
    {"resume", 0, 1, "train.resume", "auto|never|FILE", NULL, "where to resume from"},
    {"threads", 't', 1, "train.threads", "N", NULL, "compute threads per rank"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

static ics_status run(ics_app *app, ics_error *err)
{
    ics_trainer *trainer = NULL;
    ics_status st = ics_trainer_create(ics_app_config(app), &trainer, err);
    if (st) return st;
    st = ics_trainer_run(trainer, err);
    ics_trainer_destroy(trainer);
    return st;
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-train", "Train an image classifier (one recipe stage) with DDP over MPI ranks.",
        NULL, 0, 0, options, 1, run};
    return ics_app_main(&spec, argc, argv);
}
