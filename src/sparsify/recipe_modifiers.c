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
    FK_ENUM,          /* a string among choices */
    FK_NAMES,         /* a string or a list of strings -> list */
    FK_NAMES_OR_NULL, /* same, null means "not given" */
    FK_SPARSITY,      /* a number or {sparsity: [names]} */
    FK_INIT_SPARSITY, /* a number or __FROM_PARAM__ */
    FK_MASK,          /* a mask type string or [rows, cols] */
    FK_MAP,           /* a mapping, checked by bind */
    FK_LIST,          /* a list of numbers or strings */
    FK_IGNORED        /* accepted and dropped (log_types) */
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
    int end_comparator; /* -1: end -1 or >= start; 1: end > start (SparseML also has 0) */
    bind_fn bind;
} rschema;

#define LOG_TYPES                                                                                  \
    {                                                                                              \
        "log_types", FK_IGNORED, 0, NULL, NULL                                                     \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, FK_IGNORED, 0, NULL, NULL                                                            \
    }

/* start/end must be -1 or >= 0, and the end_comparator rule holds. */
static ics_status check_epochs(rmod *m, const char *source, int end_comparator, ics_error *err)
{
    double start = m->pub.start_epoch, end = m->pub.end_epoch;
    if (start != -1 && start < 0)
        return rmod_field_fail(m, source, "start_epoch", err,
                               "start_epoch must be -1 or >= 0, got %g", start);
    if (end != -1 && end < 0)
        return rmod_field_fail(m, source, "end_epoch", err, "end_epoch must be -1 or >= 0, got %g",
                               end);
    /* SparseML's end_comparator rules (BaseScheduled.validate_schedule) */
    if (end_comparator == -1 && end != -1 && end < start)
        return rmod_field_fail(m, source, "end_epoch", err,
                               "end_epoch (%g) must be -1 or >= start_epoch (%g)", end, start);
    if (end_comparator == 1 && end <= start)
        return rmod_field_fail(m, source, "end_epoch", err,
                               "end_epoch (%g) must be > start_epoch (%g)", end, start);
    return ICS_OK;
}

/* ---- schemas --------------------------------------------------------- */

static const rfield epoch_range_fields[] = {{"start_epoch", FK_FLOAT, 1, NULL, NULL},
                                            {"end_epoch", FK_FLOAT, 1, NULL, NULL},
                                            LOG_TYPES,
                                            END};

static const rfield lr_function_fields[] = {
    {"lr_func", FK_ENUM, 1, NULL, "linear|cosine|cyclic_linear"},
    {"init_lr", FK_FLOAT, 1, NULL, NULL},
    {"final_lr", FK_FLOAT, 1, NULL, NULL},
    {"start_epoch", FK_FLOAT, 1, NULL, NULL},
    {"end_epoch", FK_FLOAT, 1, NULL, NULL},
    {"cycle_epochs", FK_FLOAT, 0, "1.0", NULL},
    {"update_frequency", FK_FLOAT, 0, "-1", NULL},
    {"param_groups", FK_LIST, 0, NULL, NULL},
    LOG_TYPES,
    END};

static const rfield lr_fields[] = {
    {"lr_class", FK_ENUM, 1, NULL, "StepLR|MultiStepLR|ExponentialLR|CosineAnnealingWarmRestarts"},
    {"lr_kwargs", FK_MAP, 1, NULL, NULL},
    {"init_lr", FK_FLOAT, 1, NULL, NULL},
    {"start_epoch", FK_FLOAT, 1, NULL, NULL},
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

#define GMP_COMMON                                                                                 \
    {"init_sparsity", FK_INIT_SPARSITY, 1, NULL, NULL},                                            \
        {"final_sparsity", FK_SPARSITY, 1, NULL, NULL}, {"start_epoch", FK_FLOAT, 1, NULL, NULL},  \
        {"end_epoch", FK_FLOAT, 1, NULL, NULL}, {"update_frequency", FK_FLOAT, 1, NULL, NULL},     \
        {"params", FK_NAMES, 1, NULL, NULL}, {"leave_enabled", FK_BOOL, 0, "true", NULL},          \
        {"inter_func", FK_ENUM, 0, "cubic", "linear|cubic|inverse_cubic"},                         \
    {                                                                                              \
        "mask_type", FK_MASK, 0, "unstructured", NULL                                              \
    }

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
    {"EpochRangeModifier", ICS_MOD_EPOCH_RANGE, epoch_range_fields, -1, rbind_epoch_range},
    {"LearningRateFunctionModifier", ICS_MOD_LR_FUNCTION, lr_function_fields, 1, rbind_lr_function},
    {"LearningRateModifier", ICS_MOD_LR, lr_fields, -1, rbind_lr},
    {"SetLearningRateModifier", ICS_MOD_SET_LR, set_lr_fields, -1, rbind_set_lr},
    {"SetWeightDecayModifier", ICS_MOD_SET_WEIGHT_DECAY, set_wd_fields, -1, rbind_set_wd},
    {"GMPruningModifier", ICS_MOD_GM_PRUNING, gm_fields, -1, rbind_pruning},
    {"MagnitudePruningModifier", ICS_MOD_MAGNITUDE_PRUNING, magnitude_fields, -1, rbind_pruning},
    {"GlobalMagnitudePruningModifier", ICS_MOD_GLOBAL_MAGNITUDE_PRUNING, magnitude_fields, -1,
     rbind_pruning},
    {"ACDCPruningModifier", ICS_MOD_ACDC_PRUNING, acdc_fields, 1, rbind_pruning},
    {"ConstantPruningModifier", ICS_MOD_CONSTANT_PRUNING, constant_fields, -1, rbind_pruning},
    {"QuantizationModifier", ICS_MOD_QUANTIZATION, quantization_fields, -1, rbind_quantization},
    {"TrainableParamsModifier", ICS_MOD_TRAINABLE_PARAMS, trainable_fields, -1, rbind_trainable},
    {"DistillationModifier", ICS_MOD_DISTILLATION, distillation_fields, -1, rbind_distillation},
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
    case FK_FLOAT:
        return "a number";
    case FK_INT:
        return "an integer";
    case FK_BOOL:
        return "true or false";
    case FK_STRING:
        return "a string";
    case FK_ENUM:
        return "one of";
    case FK_NAMES:
    case FK_NAMES_OR_NULL:
        return "a name or a list of names";
    case FK_SPARSITY:
        return "a number or a {sparsity: [params]} mapping";
    case FK_INIT_SPARSITY:
        return "a number or __FROM_PARAM__";
    case FK_MASK:
        return "a mask type string or [rows, cols]";
    case FK_MAP:
        return "a mapping";
    case FK_LIST:
        return "a list";
    default:
        return "anything";
    }
}

/* 1 when every item of a list is a string. */
static int all_strings(const rv *list)
{
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i].kind != RV_STRING) return 0;
    return 1;
}

/* Checks a value against a field kind and normalizes it in place (ints
 * for float fields become floats, a single name becomes a list). Returns
 * 1 when it fits, 0 when it does not, -1 when out of memory. */
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
    case FK_BOOL:
        return v->kind == RV_BOOL;
    case FK_STRING:
        return v->kind == RV_STRING;
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
            if (!v->items) {
                rv_clear(&item);
                return -1;
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
                int fits = conform(&names, g);
                if (fits <= 0) return fits;
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
    case FK_MAP:
        return v->kind == RV_MAP;
    case FK_LIST:
        if (v->kind != RV_LIST) return 0;
        for (size_t i = 0; i < v->count; i++)
            if (v->items[i].kind != RV_STRING && v->items[i].kind != RV_INT) return 0;
        return 1;
    default:
        return 1;
    }
}

/* A field's default (text in the table) as a value of its kind. */
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

/* A value as short flow text for an error message. */
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
            st =
                RECIPE_FAIL(err, source, k->line, k->column,
                            "unknown field '%s' for %s (fields: %s)", k->text, schema->name, known);
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
        int fits = conform(f, &v);
        if (fits < 0) {
            rv_clear(&v);
            st = ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory reading field '%s'", k->text);
            break;
        }
        if (!fits) {
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
    for (size_t i = 0; i < m->alloc_count; i++)
        free(m->allocs[i]);
    free(m->allocs);
    m->allocs = NULL;
    m->alloc_count = 0;
    memset(&m->pub.u, 0, sizeof m->pub.u);
    m->pub.start_epoch = rmod_num(m, "start_epoch", -1);
    m->pub.end_epoch = rmod_num(m, "end_epoch", -1);
    m->pub.update_frequency = rmod_num(m, "update_frequency", -1);
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
    for (size_t i = 0; i < m->alloc_count; i++)
        free(m->allocs[i]);
    free(m->allocs);
    rv_clear(&m->fields);
    free(m);
}
