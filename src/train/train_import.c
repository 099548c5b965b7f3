/*
 * src/train/train_import.c: model.init_from = FILE.pth (--init-from), a
 * PyTorch or SparseML / SparseZoo checkpoint, with what its recipe did
 * carried into training:
 *
 *  1. Structure: the file's recipe is loaded; a QuantizationModifier
 *     started by the file's epoch (-1: finished) gives the model its QAT
 *     structure before the weights load, and torch's fake-quant state goes
 *     onto the quantizers (src/io/pth_import.c, pth_import_qat.c).
 *  2. What training holds. With recipe.path the trainer's recipe applies as
 *     usual (checked: a QAT model needs it to quantize from epoch 0, or
 *     its own checkpoints would not load again). Without one, the run gets
 *     a generated recipe that holds what the file's recipe did:
 *       - ConstantPruningModifier over the parameters its started pruning
 *         modifiers select that hold zeros (the zeros stay exactly zero:
 *         masks from the imported zeros, gradients and weights masked at
 *         every step, as any recipe's pruning);
 *       - its QuantizationModifier from epoch 0 with the same options,
 *         observers / BN freezing where the file left them and the later
 *         epochs of its schedule shifted to the file's epoch.
 *     Being a real recipe it is saved as every checkpoint's /recipe, so
 *     icsparse-eval, -export and a later compose see the same structure.
 *  3. The file's recipe text is written to RUN/init_from_recipe.yaml, the
 *     --base of icsparse-compose for a next stage.
 *  4. Resuming such a run (train.resume) takes the held recipe back from
 *     the checkpoint's /recipe, so the masks and quantizers restore.
 */
#include "train/trainer_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "io/pth_import.h"

/* ---- the generated recipe ------------------------------------------------ */

typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *grown = realloc(t->s, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->s = grown;
        t->cap = cap;
    }
}

/* A YAML double-quoted string. */
static void put_quoted(text *t, const char *s)
{
    put(t, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            put(t, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            put(t, "\\x%02x", (unsigned char)*s);
        else
            put(t, "%c", *s);
    }
    put(t, "\"");
}

static void put_names(text *t, const char *key, const ics_name_list *l)
{
    put(t, "    %s: [", key);
    for (size_t i = 0; i < l->count; i++) {
        if (i) put(t, ", ");
        put_quoted(t, l->names[i]);
    }
    put(t, "]\n");
}

/* ---- what the file's recipe did --------------------------------------------- */

static int is_pruning(ics_modifier_type type)
{
    return type == ICS_MOD_GM_PRUNING || type == ICS_MOD_MAGNITUDE_PRUNING ||
           type == ICS_MOD_GLOBAL_MAGNITUDE_PRUNING || type == ICS_MOD_ACDC_PRUNING ||
           type == ICS_MOD_CONSTANT_PRUNING;
}

/* 1 when a modifier starting at start has started by the file's epoch
 * (-1: a finished run). */
static int started(double start, double epoch)
{
    return epoch < 0 || (start < 0 ? 0.0 : start) <= epoch;
}

static int has_zero(ics_model *m, int tensor)
{
    const float *w = ics_model_tensor_data(m, tensor);
    for (int64_t i = 0; i < ics_model_tensor(m, tensor)->numel; i++)
        if (w[i] == 0.0f) return 1;
    return 0;
}

/* Marks in held[] (one flag per tensor) the prunable weights the recipe's
 * started pruning modifiers select and that hold zeros; without a readable
 * recipe (or when its selectors do not resolve here: SparseZoo module
 * names), every prunable weight that holds zeros. Returns the count;
 * -1 when out of memory. */
static int pruned_params(ics_trainer *t, const char *path, const ics_recipe *r, double epoch,
                         unsigned char *held, ics_error *err)
{
    ics_model *m = t->model;
    int nt = ics_model_num_tensors(m);
    int any = 0;
    for (size_t k = 0; r && k < ics_recipe_modifier_count(r); k++) {
        const ics_modifier *mod = ics_recipe_modifier(r, k);
        any |= is_pruning(mod->type) && started(mod->start_epoch, epoch);
    }
    if (r && !any) return 0;
    ics_param_info *info = ics_malloc((size_t)nt * sizeof *info, "selector params", err);
    unsigned char *flags = ics_calloc((size_t)nt + 1, 1, "selector flags", err);
    if (!info || !flags) {
        free(info);
        free(flags);
        return -1;
    }
    for (int i = 0; i < nt; i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        info[i] = (ics_param_info){ti->name, ti->prunable};
    }
    int all = r == NULL;
    for (size_t k = 0; !all && k < ics_recipe_modifier_count(r); k++) {
        const ics_modifier *mod = ics_recipe_modifier(r, k);
        if (!is_pruning(mod->type) || !started(mod->start_epoch, epoch)) continue;
        ics_error sel_err;
        if (ics_recipe_select(&mod->u.pruning.params, info, (size_t)nt, flags, &sel_err)) {
            if (t->rank == 0)
                ICS_INFO("%s: its recipe's %s selects no parameter here (%s): the zeros of every "
                         "prunable weight are held",
                         path, mod->type_name, sel_err.message);
            all = 1;
        }
    }
    int count = 0;
    for (int i = 0; i < nt; i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        held[i] = ti->prunable && (all || flags[i]) && has_zero(m, i);
        count += held[i];
    }
    free(info);
    free(flags);
    return count;
}

/* The first QuantizationModifier started by the file's epoch. */
static const ics_modifier *started_quantization(const ics_recipe *r, double epoch)
{
    for (size_t k = 0; r && k < ics_recipe_modifier_count(r); k++) {
        const ics_modifier *mod = ics_recipe_modifier(r, k);
        if (mod->type == ICS_MOD_QUANTIZATION && started(mod->start_epoch, epoch)) return mod;
    }
    return NULL;
}

/* A QAT epoch field for the held recipe: 0 when the file is past it (flag
 * set in the model), the rest of the way when it lies ahead, else none. */
static void put_qat_epoch(text *t, const char *key, double field, double epoch, int reached)
{
    if (reached)
        put(t, "    %s: 0.0\n", key);
    else if (field >= 0 && epoch >= 0 && field > epoch)
        put(t, "    %s: %.17g\n", key, field - epoch);
}

static void put_quantization(text *t, const ics_modifier *mod, double epoch, const ics_model *m)
{
    const ics_quantization_spec *s = &mod->u.quantization;
    put(t, "  - !QuantizationModifier\n    start_epoch: 0.0\n");
    if (s->has_submodules) put_names(t, "submodules", &s->submodules);
    if (s->model_fuse_fn_name) {
        put(t, "    model_fuse_fn_name: ");
        put_quoted(t, s->model_fuse_fn_name);
        put(t, "\n");
    }
    put_qat_epoch(t, "disable_quantization_observer_epoch", s->disable_quantization_observer_epoch,
                  epoch, !ics_model_qat_observers(m));
    put_qat_epoch(t, "freeze_bn_stats_epoch", s->freeze_bn_stats_epoch, epoch,
                  ics_model_qat_bn_frozen(m));
    put(t, "    quantize_linear_activations: %s\n",
        s->quantize_linear_activations ? "true" : "false");
    put(t, "    quantize_conv_activations: %s\n", s->quantize_conv_activations ? "true" : "false");
    put(t, "    reduce_range: %s\n", s->reduce_range ? "true" : "false");
    put(t, "    activation_bits: %d\n    weight_bits: %d\n", s->activation_bits, s->weight_bits);
    if (s->exclude_module_types.count)
        put_names(t, "exclude_module_types", &s->exclude_module_types);
}

/* ---- the two cases ---------------------------------------------------------- */

/* No recipe.path: the generated recipe holds the file's pruning and QAT. */
static ics_status hold(ics_trainer *t, const char *path, const ics_pth_import_report *rep,
                       const ics_recipe *file_recipe, ics_error *err)
{
    double epoch = ics_pth_import_epoch(rep);
    int nt = ics_model_num_tensors(t->model);
    unsigned char *held = ics_calloc((size_t)nt + 1, 1, "held parameters", err);
    if (!held) return ICS_ERR_NOMEM;
    int npruned = 0;
    if (file_recipe || rep->recipe_unread) {
        npruned = pruned_params(t, path, file_recipe, epoch, held, err);
        if (npruned < 0) {
            free(held);
            return ICS_ERR_NOMEM;
        }
    }
    const ics_modifier *quant =
        ics_model_qat_active(t->model) ? started_quantization(file_recipe, epoch) : NULL;
    if (!npruned && !quant) {
        free(held);
        if (rep->recipe && t->rank == 0)
            ICS_INFO("%s: its recipe has no pruning or quantization started by epoch %g: nothing "
                     "to hold",
                     path, epoch);
        return ICS_OK;
    }
    text y = {0};
    put(&y, "# generated by icsparse-train for model.init_from: what the checkpoint's recipe "
            "applied, held\nmodifiers:\n");
    int64_t zeros = 0, total = 0;
    if (npruned) {
        put(&y, "  - !ConstantPruningModifier\n    params: [");
        for (int i = 0, k = 0; i < nt; i++) {
            if (!held[i]) continue;
            put(&y, "%s", k++ ? ", " : "");
            put_quoted(&y, ics_model_tensor(t->model, i)->name);
            const float *w = ics_model_tensor_data(t->model, i);
            for (int64_t j = 0; j < ics_model_tensor(t->model, i)->numel; j++)
                zeros += w[j] == 0.0f;
            total += ics_model_tensor(t->model, i)->numel;
        }
        put(&y, "]\n    start_epoch: 0.0\n    end_epoch: -1.0\n");
    }
    if (quant) put_quantization(&y, quant, epoch, t->model);
    free(held);
    if (y.failed) {
        free(y.s);
        return ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory writing the held recipe");
    }
    char source[1100];
    snprintf(source, sizeof source, "%s (held recipe)", path);
    ics_status st = ics_recipe_load_string(y.s, source, NULL, &t->recipe, err);
    free(y.s);
    if (!st) st = ics_manager_create(t->recipe, t->model, t->optim, &t->manager, err);
    if (st) {
        ics_recipe_destroy(t->recipe);
        t->recipe = NULL;
        return st;
    }
    if (t->rank == 0) {
        if (npruned)
            ICS_INFO("%s: its pruning is held: the zeros of %d parameters (%.2f%% of them) stay "
                     "zero (ConstantPruningModifier; no recipe.path given)",
                     path, npruned, total ? 100.0 * (double)zeros / (double)total : 0.0);
        if (quant)
            ICS_INFO("%s: quantization-aware training continues (its QuantizationModifier from "
                     "epoch 0, observers %s, BN statistics %s)",
                     path, ics_model_qat_observers(t->model) ? "on" : "off",
                     ics_model_qat_bn_frozen(t->model) ? "frozen" : "updating");
    }
    return ICS_OK;
}

/* recipe.path given: it applies as usual; what it would lose is said. */
static ics_status check_own_recipe(ics_trainer *t, const char *path,
                                   const ics_pth_import_report *rep, const ics_recipe *file_recipe,
                                   ics_error *err)
{
    const char *own = ics_config_string(t->cfg, "recipe.path");
    if (ics_model_qat_active(t->model) && !ics_recipe_qat_active(t->recipe, 0.0))
        return ICS_FAIL(err, ICS_ERR_CONFIG,
                        "%s is quantization-aware (its recipe's QuantizationModifier), but "
                        "recipe.path %s does not quantize from epoch 0: the run's checkpoints "
                        "would not load again. Give it a QuantizationModifier with start_epoch 0 "
                        "and the same options, or no recipe.path to continue with the file's",
                        path, own);
    if (t->rank != 0 || !rep->recipe) return ICS_OK;
    int nt = ics_model_num_tensors(t->model);
    unsigned char *held = ics_calloc((size_t)nt + 1, 1, "held parameters", err);
    if (!held) return ICS_ERR_NOMEM;
    int npruned = pruned_params(t, path, file_recipe, ics_pth_import_epoch(rep), held, err);
    free(held);
    if (npruned < 0) return ICS_ERR_NOMEM;
    if (npruned && !ics_manager_has_pruning(t->manager))
        ICS_WARN("%s: the zeros of its %d pruned parameters are not held: recipe.path %s has no "
                 "pruning modifier (a ConstantPruningModifier keeps them)",
                 path, npruned, own);
    else
        ICS_INFO("%s: recipe.path %s applies; the file's recipe only gave the structure "
                 "(a next stage of it: icsparse-compose --base RUN/init_from_recipe.yaml --next)",
                 path, own);
    return ICS_OK;
}

/* RUN/init_from_recipe.yaml: the file's recipe as it came (rank 0;
 * a failure is only reported). */
static void save_recipe_text(ics_trainer *t, const char *path, const char *recipe)
{
    char out[1300], tmp[1320];
    snprintf(out, sizeof out, "%s/init_from_recipe.yaml", t->run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(recipe, f) >= 0;
    if (f) ok = (fclose(f) == 0) && ok;
    if (ok) ok = rename(tmp, out) == 0;
    if (!ok) {
        remove(tmp);
        ICS_WARN("%s: cannot write its recipe to %s", path, out);
    }
}

static void report(const ics_trainer *t, const char *path, const ics_pth_import_report *rep)
{
    if (t->rank != 0) return;
    if (rep->qat_structure || (rep->qat_quantizers && ics_model_qat_active(t->model)))
        ICS_INFO("%s: QAT structure from its recipe (epoch %g): %d quantizers from the file, "
                 "observers %s",
                 path, ics_pth_import_epoch(rep), rep->qat_quantizers,
                 rep->qat_observers ? "on" : "off");
    if (rep->qat_extras)
        ICS_INFO("%s: %d fake-quantization / observer entries match no quantizer of %s: skipped",
                 path, rep->qat_extras, ics_model_arch(t->model));
}

ics_status ics_train_import_pth(ics_trainer *t, const char *path, ics_error *err)
{
    ics_pth *pth = NULL;
    ics_recipe *file_recipe = NULL;
    ics_pth_import_report rep;
    ics_status st = ics_pth_import_open(path, &pth, &rep, err);
    if (!st) st = ics_pth_import_recipe(&rep, path, &file_recipe, err);
    if (!st) st = ics_pth_import_apply(pth, path, file_recipe, t->model, &rep, err);
    ics_pth_destroy(pth);
    if (!st) {
        report(t, path, &rep);
        if (rep.recipe && t->rank == 0) save_recipe_text(t, path, rep.recipe);
        st = t->recipe ? check_own_recipe(t, path, &rep, file_recipe, err)
                       : hold(t, path, &rep, file_recipe, err);
    }
    ics_recipe_destroy(file_recipe);
    ics_pth_import_report_free(&rep);
    return st;
}

/* 1 when path names a torch file (.pth / .pt), as ics_train_init_from
 * decides. */
static int is_pth(const char *path)
{
    size_t len = strlen(path);
    return (len > 4 && strcmp(path + len - 4, ".pth") == 0) ||
           (len > 3 && strcmp(path + len - 3, ".pt") == 0);
}

ics_status ics_train_import_resume(ics_trainer *t, const char *ckpt, ics_error *err)
{
    const char *init = ics_config_string(t->cfg, "model.init_from");
    if (t->recipe || !is_pth(init)) return ICS_OK;
    ics_checkpoint_reader *r = NULL;
    char *yaml = NULL;
    ics_status st = ics_checkpoint_open(ckpt, &r, err);
    if (!st) st = ics_checkpoint_get_text(r, "recipe", &yaml, err);
    ics_checkpoint_close(r);
    if (!st && yaml && yaml[0]) {
        char source[1300];
        snprintf(source, sizeof source, "%s:/recipe", ckpt);
        st = ics_recipe_load_string(yaml, source, NULL, &t->recipe, err);
        if (!st) st = ics_manager_create(t->recipe, t->model, t->optim, &t->manager, err);
        if (st) {
            ics_recipe_destroy(t->recipe);
            t->recipe = NULL;
        } else if (t->rank == 0) {
            ICS_INFO("%s: the recipe held for %s goes on", ckpt, init);
        }
    }
    free(yaml);
    return st;
}
