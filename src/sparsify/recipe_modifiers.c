/*
 * Modifier schemas: one table row per SparseML modifier class with its
 * field names, kinds, required flags and defaults as SparseML's
 * constructors have them, plus a bind function that turns the evaluated
 * fields into the typed record (ics_modifier) and checks what SparseML's
 * constructor checks (end_comparator, value ranges). Adding a modifier is
 * adding a field table, a bind function and a row.
 *
 * `log_types` is accepted on every modifier and dropped, as SparseML does
 * for backward compatibility. Unknown fields and unknown modifiers are
 * errors with line and column (SparseML raises a TypeError without one).
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"
#include "core/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum fkind {
    FK_FLOAT,
    FK_INT,
    FK_BOOL,
    FK_STRING,
    FK_ENUM,         /* a string among choices */
    FK_NAMES,        /* a string or a list of strings -> list */
    FK_NAMES_OR_NULL,/* same, null means "not given" */
    FK_SPARSITY,     /* a number or {sparsity: [names]} */
    FK_INIT_SPARSITY,/* a number or __FROM_PARAM__ */
    FK_MASK,         /* a mask type string or [rows, cols] */
    FK_MAP,          /* a mapping, checked by bind */
    FK_LIST,         /* a list of numbers or strings */
    FK_IGNORED       /* accepted and dropped (log_types) */
} fkind;

typedef struct rfield {
    const char *name;
    fkind kind;
    int required;
    const char *dflt;    /* default as text, NULL: absent when not given */
    const char *choices; /* FK_ENUM: "a|b|c" */
} rfield;

typedef ics_status (*bind_fn)(rmod *m, const char *source, ics_error *err);

typedef struct rschema {
    const char *name;
    ics_modifier_type type;
    const rfield *fields;
    int end_comparator; /* -1: end -1 or >= start; 0: end >= start; 1: end > start */
    bind_fn bind;
} rschema;

#define LOG_TYPES {"log_types", FK_IGNORED, 0, NULL, NULL}
#define END {NULL, FK_IGNORED, 0, NULL, NULL}

/* ---- field access for bind functions ------------------------------- */

static const rv *fget(const rmod *m, const char *key)
{
    return rv_map_get(&m->fields, key);
}

static double fnum(const rmod *m, const char *key, double dflt)
{
    const rv *v = fget(m, key);
    return rv_is_number(v) ? v->num : dflt;
}

static int fbool(const rmod *m, const char *key, int dflt)
{
    const rv *v = fget(m, key);
    return v && v->kind == RV_BOOL ? v->b : dflt;
}

static const char *fstr(const rmod *m, const char *key)
{
    const rv *v = fget(m, key);
    return v && v->kind == RV_STRING ? v->s : NULL;
}

/* An error at a field (or the modifier when the field is a default). */
static ics_status field_fail(const rmod *m, const char *source, const char *key, ics_error *err,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static ics_status field_fail(const rmod *m, const char *source, const char *key, ics_error *err,
                             const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const rv *v = key ? fget(m, key) : NULL;
    int line = v && v->line ? v->line : m->pub.line;
    int column = v && v->line ? v->column : m->pub.column;
    return RECIPE_FAIL(err, source, line, column, "%s: %s", m->pub.type_name, msg);
}

static void *mod_alloc(rmod *m, size_t bytes, ics_error *err)
{
    void **allocs = ics_realloc(m->allocs, (m->alloc_count + 1) * sizeof *allocs,
                                "modifier storage", err);
    if (!allocs) return NULL;
    m->allocs = allocs;
    void *p = ics_calloc(1, bytes ? bytes : 1, "modifier storage", err);
    if (!p) return NULL;
    m->allocs[m->alloc_count++] = p;
    return p;
}

/* A list value (of strings, or numbers for output keys) as a name list
 * pointing into the value. */
static ics_status names_from(rmod *m, const rv *list, ics_name_list *out, ics_error *err)
{
    memset(out, 0, sizeof *out);
    if (!list || list->kind != RV_LIST) return ICS_OK;
    const char **names = mod_alloc(m, list->count * sizeof *names, err);
    int *lines = mod_alloc(m, list->count * sizeof *lines, err);
    int *columns = mod_alloc(m, list->count * sizeof *columns, err);
    if (!names || !lines || !columns) return err ? err->status : ICS_ERR_NOMEM;
    for (size_t i = 0; i < list->count; i++) {
        const rv *item = &list->items[i];
        if (item->kind == RV_STRING) {
            names[i] = item->s;
        } else {
            /* numeric output keys (distill_output_keys: [0]) as text */
            char *text = mod_alloc(m, 32, err);
            if (!text) return err ? err->status : ICS_ERR_NOMEM;
            snprintf(text, 32, "%.17g", item->num);
            names[i] = text;
        }
        lines[i] = item->line;
        columns[i] = item->column;
    }
    out->count = list->count;
    out->names = names;
    out->lines = lines;
    out->columns = columns;
    return ICS_OK;
}

static ics_status check_epochs(rmod *m, const char *source, int end_comparator, ics_error *err)
{
    double start = m->pub.start_epoch, end = m->pub.end_epoch;
    if (start != -1 && start < 0)
        return field_fail(m, source, "start_epoch", err, "start_epoch must be -1 or >= 0, got %g",
                          start);
    if (end != -1 && end < 0)
        return field_fail(m, source, "end_epoch", err, "end_epoch must be -1 or >= 0, got %g", end);
    /* SparseML's end_comparator rules (BaseScheduled.validate_schedule) */
    if (end_comparator == -1 && end != -1 && end < start)
        return field_fail(m, source, "end_epoch", err,
                          "end_epoch (%g) must be -1 or >= start_epoch (%g)", end, start);
    if (end_comparator == 0 && end < start)
        return field_fail(m, source, "end_epoch", err, "end_epoch (%g) must be >= start_epoch (%g)",
                          end, start);
    if (end_comparator == 1 && end <= start)
        return field_fail(m, source, "end_epoch", err, "end_epoch (%g) must be > start_epoch (%g)",
                          end, start);
    return ICS_OK;
}

static ics_status check_fraction(const rmod *m, const char *source, const char *key, double v,
                                 ics_error *err)
{
    if (!(v >= 0.0 && v < 1.0))
        return field_fail(m, source, key, err, "%s must be in [0, 1), got %g", key, v);
    return ICS_OK;
}

/* ---- bind functions -------------------------------------------------- */

static ics_status bind_epoch_range(rmod *m, const char *source, ics_error *err)
{
    (void)m, (void)source, (void)err;
    return ICS_OK;
}

static ics_status bind_lr_function(rmod *m, const char *source, ics_error *err)
{
    ics_lr_function_spec *s = &m->pub.u.lr_function;
    const char *func = fstr(m, "lr_func");
    s->lr_func = strcmp(func, "linear") == 0   ? ICS_LR_FUNC_LINEAR
                 : strcmp(func, "cosine") == 0 ? ICS_LR_FUNC_COSINE
                                               : ICS_LR_FUNC_CYCLIC_LINEAR;
    s->init_lr = fnum(m, "init_lr", 0);
    s->final_lr = fnum(m, "final_lr", 0);
    s->cycle_epochs = fnum(m, "cycle_epochs", 0);
    if (s->init_lr < 0) return field_fail(m, source, "init_lr", err, "init_lr must be >= 0");
    if (s->final_lr < 0) return field_fail(m, source, "final_lr", err, "final_lr must be >= 0");
    if (s->lr_func == ICS_LR_FUNC_CYCLIC_LINEAR && !(s->cycle_epochs > 0))
        return field_fail(m, source, "cycle_epochs", err,
                          "lr_func cyclic_linear needs cycle_epochs > 0");
    return ICS_OK;
}

/* lr_kwargs per lr_class, as SparseML's LearningRateModifier reads them. */
static ics_status bind_lr(rmod *m, const char *source, ics_error *err)
{
    ics_lr_spec *s = &m->pub.u.lr;
    const char *cls = fstr(m, "lr_class");
    static const char *const classes[] = {"StepLR", "MultiStepLR", "ExponentialLR",
                                          "CosineAnnealingWarmRestarts"};
    static const char *const allowed[] = {"step_size gamma", "milestones gamma", "gamma",
                                          "lr_min cycle_epochs cycle_mult"};
    int k = 0;
    while (strcmp(classes[k], cls) != 0) k++;
    s->lr_class = (ics_lr_class)k;
    s->init_lr = fnum(m, "init_lr", 0);
    if (!(s->init_lr >= 0)) return field_fail(m, source, "init_lr", err, "init_lr must be >= 0");
    const rv *kw = fget(m, "lr_kwargs");
    s->gamma = 0.1;
    s->cycle_mult = 1;
    for (size_t i = 0; kw && i < kw->count; i++) {
        const char *key = kw->keys[i];
        const rv *v = &kw->items[i];
        char padded[64];
        snprintf(padded, sizeof padded, " %s ", key);
        char list[80];
        snprintf(list, sizeof list, " %s ", allowed[k]);
        if (!strstr(list, padded))
            return RECIPE_FAIL(err, source, v->line, v->column,
                               "%s: lr_kwargs key '%s' is not used by %s (it takes: %s)",
                               m->pub.type_name, key, cls, allowed[k]);
        if (strcmp(key, "milestones") == 0) {
            if (v->kind != RV_LIST || v->count == 0)
                return RECIPE_FAIL(err, source, v->line, v->column,
                                   "%s: milestones must be a list of epochs", m->pub.type_name);
            double *ms = mod_alloc(m, v->count * sizeof *ms, err);
            if (!ms) return err ? err->status : ICS_ERR_NOMEM;
            for (size_t j = 0; j < v->count; j++) {
                if (!rv_is_number(&v->items[j]) || (j && v->items[j].num <= ms[j - 1]))
                    return RECIPE_FAIL(err, source, v->items[j].line, v->items[j].column,
                                       "%s: milestones must be increasing numbers",
                                       m->pub.type_name);
                ms[j] = v->items[j].num;
            }
            s->milestones = ms;
            s->milestone_count = v->count;
            continue;
        }
        if (!rv_is_number(v))
            return RECIPE_FAIL(err, source, v->line, v->column, "%s: lr_kwargs %s must be a number",
                               m->pub.type_name, key);
        if (strcmp(key, "gamma") == 0) s->gamma = v->num;
        else if (strcmp(key, "step_size") == 0) s->step_size = v->num;
        else if (strcmp(key, "lr_min") == 0) s->lr_min = v->num;
        else if (strcmp(key, "cycle_epochs") == 0) s->cycle_epochs = v->num;
        else s->cycle_mult = (int)v->num;
    }
    const char *need = k == 0 ? "step_size" : k == 1 ? "milestones" : k == 2 ? "gamma" : "cycle_epochs";
    if (!kw || !rv_map_get(kw, need))
        return field_fail(m, source, "lr_kwargs", err, "lr_kwargs needs '%s' for %s", need, cls);
    if (k == 0 && !(s->step_size > 0))
        return field_fail(m, source, "lr_kwargs", err, "step_size must be > 0");
    if (k == 3 && !(s->cycle_epochs > 0))
        return field_fail(m, source, "lr_kwargs", err, "cycle_epochs must be > 0");
    return ICS_OK;
}

static ics_status bind_set_lr(rmod *m, const char *source, ics_error *err)
{
    m->pub.u.learning_rate = fnum(m, "learning_rate", 0);
    if (!(m->pub.u.learning_rate >= 0))
        return field_fail(m, source, "learning_rate", err, "learning_rate must be >= 0");
    return ICS_OK;
}

static ics_status bind_set_wd(rmod *m, const char *source, ics_error *err)
{
    m->pub.u.weight_decay = fnum(m, "weight_decay", 0);
    if (!(m->pub.u.weight_decay >= 0))
        return field_fail(m, source, "weight_decay", err, "weight_decay must be >= 0");
    return ICS_OK;
}

/* mask_type: SparseML's get_mask_creator_default names, N:M strings and
 * [rows, cols] block shapes. */
static ics_status bind_mask(rmod *m, const char *source, ics_pruning_spec *s, ics_error *err)
{
    const rv *v = fget(m, "mask_type");
    s->mask_type = ICS_MASK_UNSTRUCTURED;
    if (!v) return ICS_OK;
    if (v->kind == RV_LIST) {
        s->mask_type = ICS_MASK_BLOCK;
        s->block_rows = (int)v->items[0].num;
        s->block_cols = (int)v->items[1].num;
        return ICS_OK;
    }
    const char *t = v->s;
    int n = 0, mm = 0;
    char tail;
    if (strcmp(t, "unstructured") == 0) s->mask_type = ICS_MASK_UNSTRUCTURED;
    else if (strcmp(t, "channel") == 0) s->mask_type = ICS_MASK_CHANNEL;
    else if (strcmp(t, "filter") == 0) s->mask_type = ICS_MASK_FILTER;
    else if (strcmp(t, "block4") == 0 || strcmp(t, "block") == 0) {
        s->mask_type = ICS_MASK_BLOCK;
        s->block_rows = 1;
        s->block_cols = 4;
    } else if (strcmp(t, "tensorrt") == 0) {
        s->mask_type = ICS_MASK_NM;
        s->mask_n = 2;
        s->mask_m = 4;
    } else if (sscanf(t, "%d:%d%c", &n, &mm, &tail) == 2 && n > 0 && mm > n) {
        s->mask_type = ICS_MASK_NM;
        s->mask_n = n;
        s->mask_m = mm;
    } else {
        return field_fail(m, source, "mask_type", err,
                          "unknown mask_type '%s' (unstructured, channel, filter, block4, "
                          "tensorrt, \"N:M\" with 0 < N < M, or [rows, cols])",
                          t);
    }
    return ICS_OK;
}

static ics_status bind_pruning(rmod *m, const char *source, ics_error *err)
{
    ics_pruning_spec *s = &m->pub.u.pruning;
    ics_modifier_type type = m->pub.type;
    ics_status st = names_from(m, fget(m, "params"), &s->params, err);
    if (st != ICS_OK) return st;
    s->leave_enabled = fbool(m, "leave_enabled", type != ICS_MOD_CONSTANT_PRUNING);
    s->global_sparsity = fbool(m, "global_sparsity", type == ICS_MOD_GLOBAL_MAGNITUDE_PRUNING ||
                                                         type == ICS_MOD_ACDC_PRUNING);
    if (type == ICS_MOD_GLOBAL_MAGNITUDE_PRUNING) s->global_sparsity = 1;
    s->momentum_buffer_reset = fbool(m, "momentum_buffer_reset", 0);
    const char *inter = fstr(m, "inter_func");
    s->inter_func = !inter || strcmp(inter, "cubic") == 0 ? ICS_INTER_CUBIC
                    : strcmp(inter, "linear") == 0        ? ICS_INTER_LINEAR
                                                          : ICS_INTER_INVERSE_CUBIC;
    st = bind_mask(m, source, s, err);
    if (st != ICS_OK) return st;

    if (type == ICS_MOD_CONSTANT_PRUNING) {
        if (m->pub.update_frequency != -1)
            return field_fail(m, source, "update_frequency", err,
                              "update_frequency must be -1 (the mask is fixed)");
        s->init_from_param = 1;
        return ICS_OK;
    }
    if (s->params.count == 0 && !(fget(m, "final_sparsity") &&
                                  fget(m, "final_sparsity")->kind == RV_MAP))
        return field_fail(m, source, "params", err, "params must select at least one parameter");
    if (!(m->pub.update_frequency > 0 || m->pub.update_frequency == -1))
        return field_fail(m, source, "update_frequency", err,
                          "update_frequency must be > 0 or -1, got %g", m->pub.update_frequency);

    if (type == ICS_MOD_ACDC_PRUNING) {
        s->compression_sparsity = fnum(m, "compression_sparsity", 0);
        st = check_fraction(m, source, "compression_sparsity", s->compression_sparsity, err);
        if (st != ICS_OK) return st;
        if (!(m->pub.update_frequency > 0))
            return field_fail(m, source, "update_frequency", err,
                              "update_frequency (the phase length) must be > 0");
        if (m->pub.start_epoch < 0)
            return field_fail(m, source, "start_epoch", err, "start_epoch must be >= 0");
        /* AC/DC alternates decompressed (even) and compressed (odd) phases of
         * update_frequency epochs from start_epoch. Training must end on a
         * compressed phase, so end_epoch is cut to an even number of whole
         * phases (SparseML's rule uses the absolute epoch's parity and can
         * end decompressed; docs/RECIPES.md). */
        double f = m->pub.update_frequency;
        double phases = floor((m->pub.end_epoch - m->pub.start_epoch) / f + 1e-9);
        if (fmod(phases, 2.0) != 0) phases -= 1;
        if (phases < 2)
            return field_fail(m, source, "end_epoch", err,
                              "the range [%g, %g) holds no decompressed + compressed phase pair "
                              "of %g epochs",
                              m->pub.start_epoch, m->pub.end_epoch, f);
        double end = m->pub.start_epoch + phases * f;
        if (end != m->pub.end_epoch) {
            ICS_WARN("%s:%d: ACDCPruningModifier end_epoch %g shortened to %g so that training "
                     "ends on a compressed phase",
                     source, m->pub.line, m->pub.end_epoch, end);
            m->pub.end_epoch = end;
            st = rmod_set_float(m, "end_epoch", end, err);
            if (st != ICS_OK) return st;
        }
        s->group_count = 1;
        ics_sparsity_group *g = mod_alloc(m, sizeof *g, err);
        if (!g) return err ? err->status : ICS_ERR_NOMEM;
        g->sparsity = s->compression_sparsity;
        g->params = s->params;
        s->groups = g;
        s->init_sparsity = 0;
        return ICS_OK;
    }

    /* gradual magnitude pruning */
    if (fbool(m, "phased", 0))
        return field_fail(m, source, "phased", err, "phased pruning is not supported (as upstream)");
    const char *score = fstr(m, "score_type");
    if (score && strcmp(score, "magnitude") != 0)
        return field_fail(m, source, "score_type", err, "score_type must be 'magnitude', got '%s'",
                          score);
    if (m->pub.end_epoch != -1 && m->pub.end_epoch == m->pub.start_epoch)
        return field_fail(m, source, "end_epoch", err,
                          "end_epoch must be greater than start_epoch for gradual pruning");
    const rv *init = fget(m, "init_sparsity");
    if (init->kind == RV_STRING) {
        s->init_from_param = 1;
    } else {
        s->init_sparsity = init->num;
        st = check_fraction(m, source, "init_sparsity", s->init_sparsity, err);
        if (st != ICS_OK) return st;
    }
    const rv *fin = fget(m, "final_sparsity");
    if (fin->kind != RV_MAP) {
        st = check_fraction(m, source, "final_sparsity", fin->num, err);
        if (st != ICS_OK) return st;
        ics_sparsity_group *g = mod_alloc(m, sizeof *g, err);
        if (!g) return err ? err->status : ICS_ERR_NOMEM;
        g->sparsity = fin->num;
        g->params = s->params;
        s->groups = g;
        s->group_count = 1;
        return ICS_OK;
    }
    /* {sparsity: [params]}: each group its own target; params must be [] */
    if (s->params.count)
        return field_fail(m, source, "params", err,
                          "with a final_sparsity mapping, params must be [] (the mapping "
                          "lists the parameters)");
    ics_sparsity_group *groups = mod_alloc(m, fin->count * sizeof *groups, err);
    if (!groups) return err ? err->status : ICS_ERR_NOMEM;
    size_t total = 0;
    for (size_t i = 0; i < fin->count; i++) {
        rnum r;
        if (!rexpr_parse_number(fin->keys[i], &r))
            return RECIPE_FAIL(err, source, fin->items[i].line, fin->items[i].column,
                               "%s: final_sparsity key '%s' is not a number", m->pub.type_name,
                               fin->keys[i]);
        groups[i].sparsity = r.v;
        st = check_fraction(m, source, "final_sparsity", r.v, err);
        if (st == ICS_OK) st = names_from(m, &fin->items[i], &groups[i].params, err);
        if (st != ICS_OK) return st;
        total += groups[i].params.count;
    }
    s->groups = groups;
    s->group_count = fin->count;
    /* params = the union, for selection and explain */
    const char **names = mod_alloc(m, total * sizeof *names, err);
    int *lines = mod_alloc(m, total * sizeof *lines, err);
    int *columns = mod_alloc(m, total * sizeof *columns, err);
    if (!names || !lines || !columns) return err ? err->status : ICS_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < fin->count; i++)
        for (size_t j = 0; j < groups[i].params.count; j++, k++) {
            names[k] = groups[i].params.names[j];
            lines[k] = groups[i].params.lines[j];
            columns[k] = groups[i].params.columns[j];
        }
    s->params.count = total;
    s->params.names = names;
    s->params.lines = lines;
    s->params.columns = columns;
    return ICS_OK;
}

static ics_status bind_quantization(rmod *m, const char *source, ics_error *err)
{
    ics_quantization_spec *s = &m->pub.u.quantization;
    const rv *sub = fget(m, "submodules");
    s->has_submodules = sub != NULL;
    ics_status st = names_from(m, sub, &s->submodules, err);
    if (st != ICS_OK) return st;
    s->model_fuse_fn_name = fstr(m, "model_fuse_fn_name");
    s->disable_quantization_observer_epoch = fnum(m, "disable_quantization_observer_epoch", -1);
    s->freeze_bn_stats_epoch = fnum(m, "freeze_bn_stats_epoch", -1);
    s->quantize_embeddings = fbool(m, "quantize_embeddings", 1);
    s->quantize_linear_activations = fbool(m, "quantize_linear_activations", 1);
    s->quantize_conv_activations = fbool(m, "quantize_conv_activations", 1);
    s->reduce_range = fbool(m, "reduce_range", 0);
    s->num_bits = (int)fnum(m, "num_bits", 8);
    s->activation_bits = (int)fnum(m, "activation_bits", 8);
    s->weight_bits = (int)fnum(m, "weight_bits", 8);
    s->exclude_batchnorm = fbool(m, "exclude_batchnorm", 1);
    s->num_calibration_steps = (int)fnum(m, "num_calibration_steps", -1);
    s->tensorrt = fbool(m, "tensorrt", 0);
    /* exclude_module_types and ignore name the same thing in two SparseML
     * generations: one list */
    const rv *a = fget(m, "exclude_module_types"), *b = fget(m, "ignore");
    rv both = {.kind = RV_LIST};
    ics_name_list la, lb;
    st = names_from(m, a, &la, err);
    if (st == ICS_OK) st = names_from(m, b, &lb, err);
    if (st != ICS_OK) return st;
    size_t total = la.count + lb.count;
    (void)both;
    const char **names = mod_alloc(m, total * sizeof *names, err);
    int *lines = mod_alloc(m, total * sizeof *lines, err);
    int *columns = mod_alloc(m, total * sizeof *columns, err);
    if (!names || !lines || !columns) return err ? err->status : ICS_ERR_NOMEM;
    for (size_t i = 0; i < total; i++) {
        const ics_name_list *l = i < la.count ? &la : &lb;
        size_t j = i < la.count ? i : i - la.count;
        names[i] = l->names[j];
        lines[i] = l->lines[j];
        columns[i] = l->columns[j];
    }
    s->exclude_module_types.count = total;
    s->exclude_module_types.names = names;
    s->exclude_module_types.lines = lines;
    s->exclude_module_types.columns = columns;
    const char *bits[] = {"num_bits", "activation_bits", "weight_bits"};
    int values[] = {s->num_bits, s->activation_bits, s->weight_bits};
    for (int i = 0; i < 3; i++)
        if (values[i] < 2 || values[i] > 16)
            return field_fail(m, source, bits[i], err, "%s must be in [2, 16], got %d", bits[i],
                              values[i]);
    double start = m->pub.start_epoch;
    if (s->disable_quantization_observer_epoch != -1 && start != -1 &&
        s->disable_quantization_observer_epoch < start)
        return field_fail(m, source, "disable_quantization_observer_epoch", err,
                          "disable_quantization_observer_epoch (%g) must be >= start_epoch (%g)",
                          s->disable_quantization_observer_epoch, start);
    if (s->freeze_bn_stats_epoch != -1 && start != -1 && s->freeze_bn_stats_epoch < start)
        return field_fail(m, source, "freeze_bn_stats_epoch", err,
                          "freeze_bn_stats_epoch (%g) must be >= start_epoch (%g)",
                          s->freeze_bn_stats_epoch, start);
    return ICS_OK;
}

static ics_status bind_trainable(rmod *m, const char *source, ics_error *err)
{
    ics_trainable_spec *s = &m->pub.u.trainable;
    s->trainable = fbool(m, "trainable", 1);
    s->params_strict = fbool(m, "params_strict", 1);
    ics_status st = names_from(m, fget(m, "params"), &s->params, err);
    if (st == ICS_OK && s->params.count == 0)
        return field_fail(m, source, "params", err, "params must select at least one parameter");
    return st;
}

static ics_status bind_distillation(rmod *m, const char *source, ics_error *err)
{
    ics_distillation_spec *s = &m->pub.u.distillation;
    s->hardness = fnum(m, "hardness", 0.5);
    s->temperature = fnum(m, "temperature", 2.0);
    if (!(s->hardness >= 0 && s->hardness <= 1))
        return field_fail(m, source, "hardness", err, "hardness must be in [0, 1], got %g",
                          s->hardness);
    if (!(s->temperature > 0))
        return field_fail(m, source, "temperature", err, "temperature must be > 0, got %g",
                          s->temperature);
    const rv *keys = fget(m, "distill_output_keys");
    s->has_output_keys = keys != NULL;
    return names_from(m, keys, &s->distill_output_keys, err);
}

/* ---- schemas --------------------------------------------------------- */

static const rfield epoch_range_fields[] = {
    {"start_epoch", FK_FLOAT, 1, NULL, NULL}, {"end_epoch", FK_FLOAT, 1, NULL, NULL}, LOG_TYPES, END};

static const rfield lr_function_fields[] = {
    {"lr_func", FK_ENUM, 1, NULL, "linear|cosine|cyclic_linear"},
    {"init_lr", FK_FLOAT, 1, NULL, NULL},
    {"final_lr", FK_FLOAT, 1, NULL, NULL},
    {"start_epoch", FK_FLOAT, 1, NULL, NULL},
    {"end_epoch", FK_FLOAT, 1, NULL, NULL},
    {"cycle_epochs", FK_FLOAT, 0, NULL, NULL},
    {"update_frequency", FK_FLOAT, 0, "-1", NULL},
    {"param_groups", FK_LIST, 0, NULL, NULL},
    LOG_TYPES,
    END};

static const rfield lr_fields[] = {
    {"lr_class", FK_ENUM, 1, NULL, "StepLR|MultiStepLR|ExponentialLR|CosineAnnealingWarmRestarts"},
    {"lr_kwargs", FK_MAP, 1, NULL, NULL},
    {"init_lr", FK_FLOAT, 1, NULL, NULL},
    {"start_epoch", FK_FLOAT, 0, "-1", NULL},
    {"end_epoch", FK_FLOAT, 0, "-1", NULL},
    {"update_frequency", FK_FLOAT, 0, "-1", NULL},
    {"constant_logging", FK_BOOL, 0, "false", NULL},
    {"param_groups", FK_LIST, 0, NULL, NULL},
    LOG_TYPES,
    END};

static const rfield set_lr_fields[] = {{"learning_rate", FK_FLOAT, 1, NULL, NULL},
                                       {"start_epoch", FK_FLOAT, 0, "-1", NULL},
                                       {"end_epoch", FK_FLOAT, 0, "-1", NULL},
                                       {"constant_logging", FK_BOOL, 0, "false", NULL},
                                       {"param_groups", FK_LIST, 0, NULL, NULL},
                                       LOG_TYPES,
                                       END};

static const rfield set_wd_fields[] = {{"weight_decay", FK_FLOAT, 1, NULL, NULL},
                                       {"start_epoch", FK_FLOAT, 0, "-1", NULL},
                                       {"end_epoch", FK_FLOAT, 0, "-1", NULL},
                                       {"constant_logging", FK_BOOL, 0, "false", NULL},
                                       {"param_groups", FK_LIST, 0, NULL, NULL},
                                       LOG_TYPES,
                                       END};

#define GMP_COMMON                                                        \
    {"init_sparsity", FK_INIT_SPARSITY, 1, NULL, NULL},                   \
        {"final_sparsity", FK_SPARSITY, 1, NULL, NULL},                   \
        {"start_epoch", FK_FLOAT, 1, NULL, NULL},                         \
        {"end_epoch", FK_FLOAT, 1, NULL, NULL},                           \
        {"update_frequency", FK_FLOAT, 1, NULL, NULL},                    \
        {"params", FK_NAMES, 1, NULL, NULL},                              \
        {"leave_enabled", FK_BOOL, 0, "true", NULL},                      \
        {"inter_func", FK_ENUM, 0, "cubic", "linear|cubic|inverse_cubic"}, \
        {"mask_type", FK_MASK, 0, "unstructured", NULL}

static const rfield gm_fields[] = {GMP_COMMON,
                                   {"global_sparsity", FK_BOOL, 0, "false", NULL},
                                   {"phased", FK_BOOL, 0, "false", NULL},
                                   {"score_type", FK_STRING, 0, "magnitude", NULL},
                                   LOG_TYPES,
                                   END};

static const rfield magnitude_fields[] = {GMP_COMMON, LOG_TYPES, END};

static const rfield acdc_fields[] = {{"compression_sparsity", FK_FLOAT, 1, NULL, NULL},
                                     {"start_epoch", FK_FLOAT, 1, NULL, NULL},
                                     {"end_epoch", FK_FLOAT, 1, NULL, NULL},
                                     {"update_frequency", FK_FLOAT, 1, NULL, NULL},
                                     {"params", FK_NAMES, 1, NULL, NULL},
                                     {"global_sparsity", FK_BOOL, 0, "true", NULL},
                                     {"leave_enabled", FK_BOOL, 0, "true", NULL},
                                     {"momentum_buffer_reset", FK_BOOL, 0, "true", NULL},
                                     {"mask_type", FK_MASK, 0, "unstructured", NULL},
                                     LOG_TYPES,
                                     END};

static const rfield constant_fields[] = {{"params", FK_NAMES, 1, NULL, NULL},
                                         {"start_epoch", FK_FLOAT, 0, "-1", NULL},
                                         {"end_epoch", FK_FLOAT, 0, "-1", NULL},
                                         {"update_frequency", FK_FLOAT, 0, "-1", NULL},
                                         LOG_TYPES,
                                         END};

static const rfield quantization_fields[] = {
    {"start_epoch", FK_FLOAT, 0, "-1", NULL},
    {"end_epoch", FK_FLOAT, 0, "-1", NULL},
    {"submodules", FK_NAMES_OR_NULL, 0, NULL, NULL},
    {"model_fuse_fn_name", FK_STRING, 0, NULL, NULL},
    {"model_fuse_fn_kwargs", FK_MAP, 0, NULL, NULL},
    {"disable_quantization_observer_epoch", FK_FLOAT, 0, NULL, NULL},
    {"freeze_bn_stats_epoch", FK_FLOAT, 0, NULL, NULL},
    {"quantize_embeddings", FK_BOOL, 0, "true", NULL},
    {"quantize_linear_activations", FK_BOOL, 0, "true", NULL},
    {"quantize_conv_activations", FK_BOOL, 0, "true", NULL},
    {"reduce_range", FK_BOOL, 0, "false", NULL},
    {"num_bits", FK_INT, 0, "8", NULL},
    {"activation_bits", FK_INT, 0, "8", NULL},
    {"weight_bits", FK_INT, 0, "8", NULL},
    {"exclude_batchnorm", FK_BOOL, 0, "true", NULL},
    {"exclude_module_types", FK_NAMES_OR_NULL, 0, NULL, NULL},
    {"ignore", FK_NAMES_OR_NULL, 0, NULL, NULL},
    {"num_calibration_steps", FK_INT, 0, NULL, NULL},
    {"tensorrt", FK_BOOL, 0, "false", NULL},
    LOG_TYPES,
    END};

static const rfield trainable_fields[] = {{"params", FK_NAMES, 1, NULL, NULL},
                                          {"trainable", FK_BOOL, 1, NULL, NULL},
                                          {"params_strict", FK_BOOL, 0, "true", NULL},
                                          {"start_epoch", FK_FLOAT, 0, "-1", NULL},
                                          {"end_epoch", FK_FLOAT, 0, "-1", NULL},
                                          LOG_TYPES,
                                          END};

static const rfield distillation_fields[] = {{"start_epoch", FK_FLOAT, 0, "-1", NULL},
                                             {"end_epoch", FK_FLOAT, 0, "-1", NULL},
                                             {"update_frequency", FK_FLOAT, 0, "-1", NULL},
                                             {"hardness", FK_FLOAT, 0, "0.5", NULL},
                                             {"temperature", FK_FLOAT, 0, "2.0", NULL},
                                             {"distill_output_keys", FK_LIST, 0, NULL, NULL},
                                             {"teacher_input_keys", FK_LIST, 0, NULL, NULL},
                                             LOG_TYPES,
                                             END};

static const rschema schemas[] = {
    {"EpochRangeModifier", ICS_MOD_EPOCH_RANGE, epoch_range_fields, -1, bind_epoch_range},
    {"LearningRateFunctionModifier", ICS_MOD_LR_FUNCTION, lr_function_fields, 1, bind_lr_function},
    {"LearningRateModifier", ICS_MOD_LR, lr_fields, -1, bind_lr},
    {"SetLearningRateModifier", ICS_MOD_SET_LR, set_lr_fields, -1, bind_set_lr},
    {"SetWeightDecayModifier", ICS_MOD_SET_WEIGHT_DECAY, set_wd_fields, -1, bind_set_wd},
    {"GMPruningModifier", ICS_MOD_GM_PRUNING, gm_fields, -1, bind_pruning},
    {"MagnitudePruningModifier", ICS_MOD_MAGNITUDE_PRUNING, magnitude_fields, -1, bind_pruning},
    {"GlobalMagnitudePruningModifier", ICS_MOD_GLOBAL_MAGNITUDE_PRUNING, magnitude_fields, -1,
     bind_pruning},
    {"ACDCPruningModifier", ICS_MOD_ACDC_PRUNING, acdc_fields, 1, bind_pruning},
    {"ConstantPruningModifier", ICS_MOD_CONSTANT_PRUNING, constant_fields, -1, bind_pruning},
    {"QuantizationModifier", ICS_MOD_QUANTIZATION, quantization_fields, -1, bind_quantization},
    {"TrainableParamsModifier", ICS_MOD_TRAINABLE_PARAMS, trainable_fields, -1, bind_trainable},
    {"DistillationModifier", ICS_MOD_DISTILLATION, distillation_fields, -1, bind_distillation},
};
#define SCHEMA_COUNT (sizeof schemas / sizeof schemas[0])

static const rfield *find_field(const rschema *schema, const char *name)
{
    for (const rfield *f = schema->fields; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

int rmod_field_is_float(const rmod *mod, const char *field)
{
    const rfield *f = find_field(mod->schema, field);
    return f && f->kind == FK_FLOAT;
}

static const char *kind_words(fkind kind)
{
    switch (kind) {
    case FK_FLOAT: return "a number";
    case FK_INT: return "an integer";
    case FK_BOOL: return "true or false";
    case FK_STRING: return "a string";
    case FK_ENUM: return "one of";
    case FK_NAMES:
    case FK_NAMES_OR_NULL: return "a name or a list of names";
    case FK_SPARSITY: return "a number or a {sparsity: [params]} mapping";
    case FK_INIT_SPARSITY: return "a number or __FROM_PARAM__";
    case FK_MASK: return "a mask type string or [rows, cols]";
    case FK_MAP: return "a mapping";
    case FK_LIST: return "a list";
    default: return "anything";
    }
}

static int all_strings(const rv *list)
{
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i].kind != RV_STRING) return 0;
    return 1;
}

/* Checks a value against a field kind and normalizes it in place (ints
 * for float fields become floats, a single name becomes a list). Returns
 * 1 when it fits. */
static int conform(const rfield *f, rv *v)
{
    switch (f->kind) {
    case FK_FLOAT:
        if (!rv_is_number(v)) return 0;
        v->kind = RV_FLOAT;
        return 1;
    case FK_INT:
        if (!rv_is_number(v) || v->num != floor(v->num)) return 0;
        v->kind = RV_INT;
        return 1;
    case FK_BOOL: return v->kind == RV_BOOL;
    case FK_STRING: return v->kind == RV_STRING;
    case FK_ENUM: {
        if (v->kind != RV_STRING) return 0;
        size_t n = strlen(v->s);
        for (const char *c = f->choices; c;) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && strncmp(c, v->s, n) == 0) return 1;
            c = bar ? bar + 1 : NULL;
        }
        return 0;
    }
    case FK_NAMES:
    case FK_NAMES_OR_NULL:
        if (v->kind == RV_STRING) {
            rv item = *v;
            memset(v, 0, sizeof *v);
            v->kind = RV_LIST;
            v->line = item.line;
            v->column = item.column;
            v->items = ics_malloc(sizeof item, "name list", NULL);
            if (!v->items) { /* out of memory: reported as not fitting */
                rv_clear(&item);
                return 0;
            }
            v->items[0] = item;
            v->count = 1;
            return 1;
        }
        return v->kind == RV_LIST && all_strings(v);
    case FK_SPARSITY:
        if (rv_is_number(v)) {
            v->kind = RV_FLOAT;
            return 1;
        }
        if (v->kind != RV_MAP) return 0;
        for (size_t i = 0; i < v->count; i++) {
            rv *g = &v->items[i];
            if (g->kind == RV_STRING) {
                rfield names = {"", FK_NAMES, 0, NULL, NULL};
                if (!conform(&names, g)) return 0;
            }
            if (g->kind != RV_LIST || !all_strings(g)) return 0;
        }
        return 1;
    case FK_INIT_SPARSITY:
        if (rv_is_number(v)) {
            v->kind = RV_FLOAT;
            return 1;
        }
        return v->kind == RV_STRING && strcmp(v->s, "__FROM_PARAM__") == 0;
    case FK_MASK:
        if (v->kind == RV_STRING) return 1;
        return v->kind == RV_LIST && v->count == 2 && v->items[0].kind == RV_INT &&
               v->items[1].kind == RV_INT && v->items[0].num > 0 && v->items[1].num > 0;
    case FK_MAP: return v->kind == RV_MAP;
    case FK_LIST:
        if (v->kind != RV_LIST) return 0;
        for (size_t i = 0; i < v->count; i++)
            if (v->items[i].kind != RV_STRING && v->items[i].kind != RV_INT) return 0;
        return 1;
    default: return 1;
    }
}

static ics_status default_value(const rfield *f, rv *out, ics_error *err)
{
    memset(out, 0, sizeof *out);
    rnum r;
    if (f->kind == FK_BOOL) {
        out->kind = RV_BOOL;
        out->b = strcmp(f->dflt, "true") == 0;
    } else if ((f->kind == FK_FLOAT || f->kind == FK_INT) && rexpr_parse_number(f->dflt, &r)) {
        out->kind = f->kind == FK_INT ? RV_INT : RV_FLOAT;
        out->num = r.v;
    } else {
        out->kind = RV_STRING;
        out->s = ics_strdup(f->dflt, err);
        if (!out->s) return err ? err->status : ICS_ERR_NOMEM;
    }
    return ICS_OK;
}

static void value_words(const rv *v, char *buf, size_t size)
{
    rbuf b = {0};
    rbuf_value(&b, v);
    snprintf(buf, size, "%s", b.data && !b.failed ? b.data : "?");
    if (strlen(buf) > 60) strcpy(buf + 57, "...");
    free(b.data);
}

static const rschema *find_schema(const char *tag)
{
    const char *name = tag[0] == '!' ? tag + 1 : tag;
    if (strncmp(name, "pytorch.", 8) == 0) name += 8;
    for (size_t i = 0; i < SCHEMA_COUNT; i++)
        if (strcmp(schemas[i].name, name) == 0) return &schemas[i];
    return NULL;
}

ics_status rmod_from_node(const rscope *scope, const ynode *node, int stage, rmod **out,
                          ics_error *err)
{
    *out = NULL;
    const char *source = scope->source;
    const ynode *n = yn_deref(node);
    if (!n->tag || n->tag[0] != '!' || n->tag[1] == '!')
        return RECIPE_FAIL(err, source, n->line, n->column,
                           "a modifiers list holds a value without a !ModifierName tag");
    const rschema *schema = find_schema(n->tag);
    if (!schema) {
        char known[1024] = "";
        for (size_t i = 0; i < SCHEMA_COUNT; i++) {
            strcat(known, i ? ", " : "");
            strcat(known, schemas[i].name);
        }
        return RECIPE_FAIL(err, source, n->line, n->column, "unknown modifier %s (known: %s)",
                           n->tag, known);
    }
    int empty = n->kind == YN_SCALAR && n->text[0] == '\0';
    if (n->kind != YN_MAP && !empty)
        return RECIPE_FAIL(err, source, n->line, n->column, "%s must be a mapping of fields",
                           n->tag);
    rmod *m = ics_calloc(1, sizeof *m, "modifier", err);
    if (!m) return err ? err->status : ICS_ERR_NOMEM;
    m->schema = schema;
    m->pub.type = schema->type;
    m->pub.type_name = schema->name;
    m->pub.stage = stage;
    m->pub.line = n->line;
    m->pub.column = n->column;
    m->fields.kind = RV_MAP;
    rv given = {.kind = RV_MAP};
    ics_status st = ICS_OK;
    for (size_t i = 0; !empty && i + 1 < n->count && st == ICS_OK; i += 2) {
        const ynode *k = yn_deref(n->items[i]);
        if (k->kind != YN_SCALAR) {
            st = RECIPE_FAIL(err, source, k->line, k->column, "%s: a field name must be a string",
                             schema->name);
            break;
        }
        const rfield *f = find_field(schema, k->text);
        if (!f) {
            char known[1024] = "";
            for (const rfield *g = schema->fields; g->name; g++) {
                strcat(known, g == schema->fields ? "" : ", ");
                strcat(known, g->name);
            }
            st = RECIPE_FAIL(err, source, k->line, k->column,
                             "unknown field '%s' for %s (fields: %s)", k->text, schema->name,
                             known);
            break;
        }
        if (rv_map_get(&given, k->text)) {
            st = RECIPE_FAIL(err, source, k->line, k->column, "%s: field '%s' given twice",
                             schema->name, k->text);
            break;
        }
        rv v;
        st = rvalue_from_node(scope, n->items[i + 1], &v, err);
        if (st != ICS_OK) break;
        if (f->kind == FK_IGNORED || (f->kind == FK_NAMES_OR_NULL && v.kind == RV_NULL)) {
            rv_clear(&v);
            continue;
        }
        if (!conform(f, &v)) {
            char words[80];
            value_words(&v, words, sizeof words);
            st = RECIPE_FAIL(err, source, v.line, v.column, "%s: field '%s' must be %s%s%s, got %s",
                             schema->name, k->text, kind_words(f->kind),
                             f->kind == FK_ENUM ? " " : "", f->kind == FK_ENUM ? f->choices : "",
                             words);
            rv_clear(&v);
            break;
        }
        st = rv_map_put(&given, k->text, &v, err);
        if (st != ICS_OK) rv_clear(&v);
    }
    /* effective fields in schema order: given, else default, else absent */
    for (const rfield *f = schema->fields; st == ICS_OK && f->name; f++) {
        if (f->kind == FK_IGNORED) continue;
        rv *g = rv_map_get(&given, f->name);
        rv v;
        if (g) {
            v = *g;
            memset(g, 0, sizeof *g);
        } else if (f->required) {
            st = RECIPE_FAIL(err, source, n->line, n->column, "%s is missing required field '%s'",
                             schema->name, f->name);
            break;
        } else if (f->dflt) {
            st = default_value(f, &v, err);
            if (st != ICS_OK) break;
        } else {
            continue;
        }
        st = rv_map_put(&m->fields, f->name, &v, err);
        if (st != ICS_OK) rv_clear(&v);
    }
    rv_clear(&given);
    if (st == ICS_OK) st = rmod_bind(m, source, err);
    if (st != ICS_OK) {
        rmod_free(m);
        return st;
    }
    *out = m;
    return ICS_OK;
}

ics_status rmod_bind(rmod *m, const char *source, ics_error *err)
{
    for (size_t i = 0; i < m->alloc_count; i++) free(m->allocs[i]);
    free(m->allocs);
    m->allocs = NULL;
    m->alloc_count = 0;
    memset(&m->pub.u, 0, sizeof m->pub.u);
    m->pub.start_epoch = fnum(m, "start_epoch", -1);
    m->pub.end_epoch = fnum(m, "end_epoch", -1);
    m->pub.update_frequency = fnum(m, "update_frequency", -1);
    ics_status st = check_epochs(m, source, m->schema->end_comparator, err);
    if (st != ICS_OK) return st;
    return m->schema->bind(m, source, err);
}

ics_status rmod_set_float(rmod *m, const char *field, double value, ics_error *err)
{
    rv v = {.kind = RV_FLOAT, .num = value};
    rv *old = rv_map_get(&m->fields, field);
    if (old) {
        v.line = old->line;
        v.column = old->column;
    }
    return rv_map_put(&m->fields, field, &v, err);
}

ics_status rmod_copy(const rmod *src, rmod **out, ics_error *err)
{
    *out = NULL;
    rmod *m = ics_calloc(1, sizeof *m, "modifier", err);
    if (!m) return err ? err->status : ICS_ERR_NOMEM;
    m->schema = src->schema;
    m->pub = src->pub;
    m->source_index = src->source_index;
    ics_status st = rv_copy(&m->fields, &src->fields, err);
    if (st == ICS_OK) st = rmod_bind(m, "<copy>", err);
    if (st != ICS_OK) {
        rmod_free(m);
        return st;
    }
    *out = m;
    return ICS_OK;
}

void rmod_free(rmod *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->alloc_count; i++) free(m->allocs[i]);
    free(m->allocs);
    rv_clear(&m->fields);
    free(m);
}
