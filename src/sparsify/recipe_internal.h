/*
 * src/sparsify/recipe_internal.h: the pieces of the recipe loader shared
 * between its files.
 *
 *   recipe_yaml.c      libyaml events -> a document tree (ynode) with line and
 *                      column on every node, aliases kept as links to their
 *                      anchor's node (so an override reaches every alias)
 *   recipe_expr.c      the eval() arithmetic grammar
 *   recipe_value.c     evaluated values (rv): scalars, lists, mappings
 *   recipe_vars.c      variable scopes, recipe_args, evaluation of nodes
 *   recipe_modifiers.c modifier schemas (field names, defaults), type checks
 *   recipe_fields.c    field access for the bind functions
 *   recipe_bind.c      bind functions: training modifiers (LR, WD, QAT, KD ...)
 *   recipe_bind_pruning.c  bind function: pruning modifiers
 *   recipe_load.c      recipe layout: flat or staged, ordering, front matter
 *   recipe_schedule.c  interpolate, max_epochs, sparsity at an epoch
 *   recipe_select.c    params selectors against a caller's parameter list
 *   recipe_compose.c   compose_staged
 *   recipe_write.c     YAML serialization
 *   recipe_explain.c   the normalized summary
 */
#ifndef ICS_SPARSIFY_RECIPE_INTERNAL_H
#define ICS_SPARSIFY_RECIPE_INTERNAL_H

#include <icsparse/recipe.h>
#include <stddef.h>

/* ---- error helper ---------------------------------------------------- */

/* Records "source:line:column: message" (line/column omitted when 0). */
ics_status recipe_fail_at(ics_error *err, ics_status status, const char *file, int src_line,
                          const char *source, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
#define RECIPE_FAIL(err, source, line, column, ...)                                                \
    recipe_fail_at((err), ICS_ERR_FORMAT, __FILE__, __LINE__, (source), (line), (column),          \
                   __VA_ARGS__)

/* ---- YAML document tree ---------------------------------------------- */

typedef enum yn_kind { YN_SCALAR, YN_SEQ, YN_MAP, YN_ALIAS } yn_kind;

typedef struct ynode {
    yn_kind kind;
    int line, column; /* 1-based */
    char *tag;        /* "!GMPruningModifier", or NULL */
    char *anchor;     /* "&name" defined here, or NULL */
    char *text;       /* scalar text; alias: the anchor name */
    int plain;        /* scalar written without quotes */
    size_t count;     /* seq: items; map: 2*pairs (key, value, key, value ...) */
    size_t cap;
    struct ynode **items;
    struct ynode *target;   /* alias: the anchored node (not owned) */
    struct ynode *override; /* recipe_args value replacing this node (not owned) */
    struct ynode *kept;     /* owned: merge (<<) values that merged aliases point into */
} ynode;

/* Parses YAML text (one document) into a tree. line_offset is added to every
 * line (front matter of a .md file). Undefined aliases are errors. */
ics_status yn_parse(const char *text, size_t length, const char *source, int line_offset,
                    ynode **out, ics_error *err);
void yn_free(ynode *node);
/* The node a value really is: follows overrides and aliases. */
const ynode *yn_deref(const ynode *node);
/* Mapping lookup by key text (NULL when absent). */
ynode *yn_map_get(const ynode *map, const char *key);

/* ---- expressions ----------------------------------------------------- */

/* A number as Python sees it: an int or a float. */
typedef struct rnum {
    double v;
    int is_int;
} rnum;

/* Looks a variable up: ICS_OK and *out, or an error (unknown, not numeric). */
typedef ics_status (*rexpr_lookup_fn)(void *ctx, const char *name, int line, int column, rnum *out,
                                      ics_error *err);

/* Evaluates an arithmetic expression (the text inside eval(...)). Errors
 * point at line, column + offset of the bad token. */
ics_status rexpr_eval(const char *expr, rexpr_lookup_fn lookup, void *ctx, const char *source,
                      int line, int column, rnum *out, ics_error *err);
/* Parses a YAML plain number (int or float); 1 on success. */
int rexpr_parse_number(const char *text, rnum *out);

/* ---- evaluated values ------------------------------------------------ */

typedef enum rv_kind { RV_NULL, RV_BOOL, RV_INT, RV_FLOAT, RV_STRING, RV_LIST, RV_MAP } rv_kind;

typedef struct rv {
    rv_kind kind;
    int line, column;
    int b;
    double num; /* RV_INT and RV_FLOAT */
    char *s;    /* RV_STRING */
    size_t count;
    struct rv *items; /* RV_LIST, RV_MAP values */
    char **keys;      /* RV_MAP keys */
} rv;

void rv_clear(rv *v);
ics_status rv_copy(rv *dst, const rv *src, ics_error *err);
/* Appends to a list or (key, value) to a map; takes ownership of item. */
ics_status rv_list_push(rv *list, rv *item, ics_error *err);
ics_status rv_map_put(rv *map, const char *key, rv *item, ics_error *err);
rv *rv_map_get(const rv *map, const char *key);
int rv_is_number(const rv *v);
int rv_equal(const rv *a, const rv *b);
/* Appends the value in YAML flow style to a growable buffer. */
typedef struct rbuf {
    char *data;
    size_t len, cap;
    int failed;
} rbuf;
void rbuf_printf(rbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rbuf_number(rbuf *b, double v, int is_int);
void rbuf_string(rbuf *b, const char *s);
void rbuf_value(rbuf *b, const rv *v);

/* ---- variables --------------------------------------------------------- */

typedef struct rvar {
    const char *name;
    ynode *node; /* the value node (its override, if any, is set on it) */
    int state;   /* 0 new, 1 evaluating, 2 done */
    int numeric;
    rnum value;
} rvar;

typedef struct rscope {
    rvar *vars;
    size_t count, cap;
    const struct rscope *parent;
    const char *source;
} rscope;

ics_status rscope_add(rscope *scope, const char *name, ynode *node, ics_error *err);
void rscope_free(rscope *scope);
rvar *rscope_find(const rscope *scope, const char *name);
/* Evaluates every variable of the scope (errors: cycles, unknown names). */
ics_status rscope_evaluate(rscope *scope, ics_error *err);
/* Converts a node to an evaluated value: eval() strings evaluated in scope,
 * plain scalars typed as YAML 1.1 (null, bool, int, float, string). */
ics_status rvalue_from_node(const rscope *scope, const ynode *node, rv *out, ics_error *err);

/* ---- modifiers ----------------------------------------------------------- */

typedef struct rmod {
    ics_modifier pub;
    const struct rschema *schema;
    rv fields; /* RV_MAP in schema order: effective values */
    size_t source_index;
    void **allocs; /* storage behind pub's arrays */
    size_t alloc_count;
} rmod;

/* Builds a modifier from a tagged mapping node (schema check, defaults,
 * validation). */
ics_status rmod_from_node(const rscope *scope, const ynode *node, int stage, rmod **out,
                          ics_error *err);
/* Rebuilds pub from fields (after compose edits start/end) and validates. */
ics_status rmod_bind(rmod *mod, const char *source, ics_error *err);
ics_status rmod_copy(const rmod *src, rmod **out, ics_error *err);
void rmod_free(rmod *mod);
/* Sets a float field (start_epoch, end_epoch) in fields. */
ics_status rmod_set_float(rmod *mod, const char *field, double value, ics_error *err);
/* Schema facts for printing: 1 when the field is a float. */
int rmod_field_is_float(const rmod *mod, const char *field);

/* Field access for bind functions (recipe_fields.c). */
const rv *rmod_get(const rmod *m, const char *key);
double rmod_num(const rmod *m, const char *key, double dflt);
int rmod_bool(const rmod *m, const char *key, int dflt);
const char *rmod_str(const rmod *m, const char *key);
/* An error at a field's line and column (the modifier's for a default). */
ics_status rmod_field_fail(const rmod *m, const char *source, const char *key, ics_error *err,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Zeroed storage freed with the modifier (and on every rebind). */
void *rmod_alloc(rmod *m, size_t bytes, ics_error *err);
/* A list value as a name list pointing into the value (numbers as text). */
ics_status rmod_names(rmod *m, const rv *list, ics_name_list *out, ics_error *err);
/* 0 <= v < 1, else an error naming key. */
ics_status rmod_check_fraction(const rmod *m, const char *source, const char *key, double v,
                               ics_error *err);

/* Bind functions, one per schema family (recipe_bind*.c): fields -> pub.u,
 * with SparseML's constructor checks. */
ics_status rbind_epoch_range(rmod *m, const char *source, ics_error *err);
ics_status rbind_lr_function(rmod *m, const char *source, ics_error *err);
ics_status rbind_lr(rmod *m, const char *source, ics_error *err);
ics_status rbind_set_lr(rmod *m, const char *source, ics_error *err);
ics_status rbind_set_wd(rmod *m, const char *source, ics_error *err);
ics_status rbind_pruning(rmod *m, const char *source, ics_error *err);
ics_status rbind_quantization(rmod *m, const char *source, ics_error *err);
ics_status rbind_trainable(rmod *m, const char *source, ics_error *err);
ics_status rbind_distillation(rmod *m, const char *source, ics_error *err);

/* ---- the recipe -------------------------------------------------------- */

typedef struct rstage {
    char *name;  /* NULL for a flat recipe */
    rv metadata; /* RV_NULL when absent */
} rstage;

struct ics_recipe {
    char *source;
    int staged;
    size_t stage_count;
    rstage *stages;
    rv metadata; /* flat recipe's metadata, RV_NULL when absent */
    size_t mod_count;
    rmod **mods; /* schedule order */
};

/* Creates an empty recipe owning a copy of source. */
ics_status recipe_new(const char *source, ics_recipe **out, ics_error *err);
/* Appends a stage / a modifier (takes ownership). */
ics_status recipe_add_stage(ics_recipe *r, const char *name, ics_error *err);
ics_status recipe_add_mod(ics_recipe *r, rmod *mod, ics_error *err);
/* Sorts modifiers into schedule order. */
void recipe_sort(ics_recipe *r);
/* Writes one modifier's fields "key: value" lines with an indent. */
void recipe_write_fields(rbuf *b, const rmod *mod, const char *indent);
/* Epoch range in words: "[5, 85)", "from the start, never ends". */
void recipe_epoch_range_text(const ics_modifier *m, char *buf, size_t size);

#endif
