/*
 * Recipe variables and the evaluation of recipe nodes.
 *
 * A variable is a top-level (or stage-level) key whose value is not a
 * modifier list. Numbers and eval() strings are numeric variables; anything
 * else (strings, lists) is kept as it is and may only be used as a whole,
 * as `eval(name)` (SparseML's "non-evaluatable variables", e.g.
 * `params: eval(prune_params)`). Variables are evaluated on demand with a
 * mark for "being evaluated", which finds cycles and gives the same result
 * as SparseML's fixed-point loop for every acyclic recipe, in any order.
 * A stage's scope has the global scope as parent: stage variables shadow
 * global ones.
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

ics_status rscope_add(rscope *scope, const char *name, ynode *node, ics_error *err)
{
    if (scope->count == scope->cap) {
        size_t cap = scope->cap ? scope->cap * 2 : 16;
        rvar *vars = ics_realloc(scope->vars, cap * sizeof *vars, "recipe variables", err);
        if (!vars) return err ? err->status : ICS_ERR_NOMEM;
        scope->vars = vars;
        scope->cap = cap;
    }
    rvar *v = &scope->vars[scope->count++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->node = node;
    return ICS_OK;
}

void rscope_free(rscope *scope)
{
    free(scope->vars);
    scope->vars = NULL;
    scope->count = scope->cap = 0;
}

rvar *rscope_find(const rscope *scope, const char *name)
{
    for (const rscope *s = scope; s; s = s->parent)
        for (size_t i = 0; i < s->count; i++)
            if (strcmp(s->vars[i].name, name) == 0) return &s->vars[i];
    return NULL;
}

/* If text is "eval(...)" (spaces around allowed), returns the start of the
 * inside and its length; else NULL. */
static const char *eval_body(const char *text, size_t *length, size_t *offset)
{
    const char *s = text;
    while (isspace((unsigned char)*s))
        s++;
    if (strncmp(s, "eval(", 5) != 0) return NULL;
    const char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (end <= s + 5 || end[-1] != ')') return NULL;
    *length = (size_t)(end - 1 - (s + 5));
    *offset = (size_t)(s + 5 - text);
    return s + 5;
}

static int is_identifier(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    if (i == n || !(isalpha((unsigned char)s[i]) || s[i] == '_')) return 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_'))
        i++;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    return i == n;
}

typedef struct lookup_ctx {
    const rscope *scope;
} lookup_ctx;

static ics_status evaluate_var(const rscope *scope, rvar *v, ics_error *err);

static ics_status lookup_variable(void *ctx, const char *name, int line, int column, rnum *out,
                                  ics_error *err)
{
    const rscope *scope = ((lookup_ctx *)ctx)->scope;
    rvar *v = rscope_find(scope, name);
    if (!v)
        return RECIPE_FAIL(err, scope->source, line, column,
                           "unknown variable '%s' in eval() (define it at the top of the recipe "
                           "or in the stage)",
                           name);
    if (v->state == 1)
        return RECIPE_FAIL(err, scope->source, line, column,
                           "variable '%s' depends on itself (a cycle of eval() variables)", name);
    /* a stage variable is evaluated in its own scope: find which scope has it */
    const rscope *owner = scope;
    while (owner && !(v >= owner->vars && v < owner->vars + owner->count))
        owner = owner->parent;
    ics_status st = evaluate_var(owner ? owner : scope, v, err);
    if (st != ICS_OK) return st;
    if (!v->numeric)
        return RECIPE_FAIL(err, scope->source, line, column,
                           "variable '%s' is not a number; only eval(%s) alone may use it", name,
                           name);
    *out = v->value;
    return ICS_OK;
}

static ics_status eval_text(const rscope *scope, const char *body, size_t length, int line,
                            int column, rnum *out, ics_error *err)
{
    char *expr = ics_malloc(length + 1, "eval() text", err);
    if (!expr) return err ? err->status : ICS_ERR_NOMEM;
    memcpy(expr, body, length);
    expr[length] = '\0';
    lookup_ctx ctx = {scope};
    ics_status st = rexpr_eval(expr, lookup_variable, &ctx, scope->source, line, column, out, err);
    free(expr);
    return st;
}

static ics_status evaluate_var(const rscope *scope, rvar *v, ics_error *err)
{
    if (v->state == 2) return ICS_OK;
    const ynode *n = yn_deref(v->node);
    v->state = 1;
    ics_status st = ICS_OK;
    v->numeric = 0;
    if (n && n->kind == YN_SCALAR) {
        size_t length, offset;
        const char *body = eval_body(n->text, &length, &offset);
        if (body && !is_identifier(body, length)) {
            st = eval_text(scope, body, length, n->line,
                           n->column + (int)offset + (n->plain ? 0 : 1), &v->value, err);
            v->numeric = st == ICS_OK;
        } else if (body) {
            /* eval(name): the named variable, numeric or not */
            char name[128];
            size_t i = 0, j = 0;
            while (i < length && isspace((unsigned char)body[i]))
                i++;
            while (i < length && j + 1 < sizeof name && !isspace((unsigned char)body[i]))
                name[j++] = body[i++];
            name[j] = '\0';
            rvar *w = rscope_find(scope, name);
            int column = n->column + (int)offset + (n->plain ? 0 : 1);
            if (!w) {
                st = RECIPE_FAIL(err, scope->source, n->line, column,
                                 "unknown variable '%s' in eval()", name);
            } else if (w->state == 1) {
                st = RECIPE_FAIL(err, scope->source, n->line, column,
                                 "variable '%s' depends on itself (a cycle of eval() variables)",
                                 name);
            } else {
                st = evaluate_var(scope, w, err);
                if (st == ICS_OK && w->numeric) {
                    v->numeric = 1;
                    v->value = w->value;
                }
            }
        } else if (n->plain && rexpr_parse_number(n->text, &v->value)) {
            v->numeric = 1;
        }
    }
    v->state = 2;
    return st;
}

ics_status rscope_evaluate(rscope *scope, ics_error *err)
{
    for (size_t i = 0; i < scope->count; i++) {
        ics_status st = evaluate_var(scope, &scope->vars[i], err);
        if (st != ICS_OK) return st;
    }
    return ICS_OK;
}

static int text_is(const char *s, const char *const *options)
{
    for (; *options; options++)
        if (strcmp(s, *options) == 0) return 1;
    return 0;
}

ics_status rvalue_from_node(const rscope *scope, const ynode *node, rv *out, ics_error *err)
{
    memset(out, 0, sizeof *out);
    const ynode *n = yn_deref(node);
    out->line = node->line;
    out->column = node->column;
    if (n->kind == YN_SCALAR) {
        size_t length, offset;
        const char *body = eval_body(n->text, &length, &offset);
        if (body) {
            int column = n->column + (int)offset + (n->plain ? 0 : 1);
            if (is_identifier(body, length)) {
                char name[128];
                size_t i = 0, j = 0;
                while (i < length && isspace((unsigned char)body[i]))
                    i++;
                while (i < length && j + 1 < sizeof name && !isspace((unsigned char)body[i]))
                    name[j++] = body[i++];
                name[j] = '\0';
                rvar *w = rscope_find(scope, name);
                if (!w)
                    return RECIPE_FAIL(err, scope->source, n->line, column,
                                       "unknown variable '%s' in eval()", name);
                ics_status st = evaluate_var(scope, w, err);
                if (st != ICS_OK) return st;
                if (!w->numeric) {
                    /* a non-numeric variable used whole: its value as written */
                    st = rvalue_from_node(scope, w->node, out, err);
                    out->line = node->line;
                    out->column = node->column;
                    return st;
                }
                out->kind = w->value.is_int ? RV_INT : RV_FLOAT;
                out->num = w->value.v;
                return ICS_OK;
            }
            rnum r;
            ics_status st = eval_text(scope, body, length, n->line, column, &r, err);
            if (st != ICS_OK) return st;
            out->kind = r.is_int ? RV_INT : RV_FLOAT;
            out->num = r.v;
            return ICS_OK;
        }
        static const char *const nulls[] = {"null", "Null", "NULL", "~", "", NULL};
        static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes",
                                            "YES",  "on",   "On",   "ON",  NULL};
        static const char *const falses[] = {"false", "False", "FALSE", "no",  "No",
                                             "NO",    "off",   "Off",   "OFF", NULL};
        rnum r;
        if (n->plain && text_is(n->text, nulls)) {
            out->kind = RV_NULL;
        } else if (n->plain && text_is(n->text, trues)) {
            out->kind = RV_BOOL;
            out->b = 1;
        } else if (n->plain && text_is(n->text, falses)) {
            out->kind = RV_BOOL;
            out->b = 0;
        } else if (n->plain && rexpr_parse_number(n->text, &r)) {
            out->kind = r.is_int ? RV_INT : RV_FLOAT;
            out->num = r.v;
        } else {
            out->kind = RV_STRING;
            out->s = ics_strdup(n->text, err);
            if (!out->s) return err ? err->status : ICS_ERR_NOMEM;
        }
        return ICS_OK;
    }
    if (n->tag && n->tag[0] == '!' && n->tag[1] != '!')
        return RECIPE_FAIL(err, scope->source, n->line, n->column,
                           "modifier %s is not in a list under a key containing 'modifiers'",
                           n->tag);
    out->kind = n->kind == YN_SEQ ? RV_LIST : RV_MAP;
    if (n->kind == YN_SEQ) {
        for (size_t i = 0; i < n->count; i++) {
            rv item;
            ics_status st = rvalue_from_node(scope, n->items[i], &item, err);
            if (st == ICS_OK) st = rv_list_push(out, &item, err);
            if (st != ICS_OK) {
                rv_clear(&item);
                rv_clear(out);
                return st;
            }
        }
        return ICS_OK;
    }
    for (size_t i = 0; i + 1 < n->count; i += 2) {
        const ynode *k = yn_deref(n->items[i]);
        if (!k || k->kind != YN_SCALAR) {
            rv_clear(out);
            return RECIPE_FAIL(err, scope->source, n->items[i]->line, n->items[i]->column,
                               "a mapping key must be a scalar");
        }
        if (rv_map_get(out, k->text)) {
            int line = k->line, column = k->column;
            rv_clear(out);
            return RECIPE_FAIL(err, scope->source, line, column, "duplicate key '%s'", k->text);
        }
        rv item;
        ics_status st = rvalue_from_node(scope, n->items[i + 1], &item, err);
        if (st == ICS_OK) st = rv_map_put(out, k->text, &item, err);
        if (st != ICS_OK) {
            rv_clear(&item);
            rv_clear(out);
            return st;
        }
    }
    return ICS_OK;
}
