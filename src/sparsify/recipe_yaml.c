/*
 * libyaml events -> a small document tree with line and column on every
 * node. Aliases stay links to the node that carries the anchor instead of
 * being copied, so a recipe_args override set on an anchored variable is
 * seen through every alias of it (SparseML resolves aliases before
 * applying overrides, so a sweep over an aliased variable silently changes
 * nothing there; see docs/RECIPES.md).
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

ics_status recipe_fail_at(ics_error *err, ics_status status, const char *file, int src_line,
                          const char *source, int line, int column, const char *fmt, ...)
{
    char message[ICS_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const char *src = source ? source : "<recipe>";
    if (line > 0 && column > 0)
        return ics_error_set_at(err, status, file, src_line, "%s:%d:%d: %s", src, line, column,
                                message);
    if (line > 0)
        return ics_error_set_at(err, status, file, src_line, "%s:%d: %s", src, line, message);
    return ics_error_set_at(err, status, file, src_line, "%s: %s", src, message);
}

void yn_free(ynode *node)
{
    if (!node) return;
    if (node->kind != YN_ALIAS)
        for (size_t i = 0; i < node->count; i++)
            yn_free(node->items[i]);
    free(node->items);
    yn_free(node->kept);
    free(node->tag);
    free(node->anchor);
    free(node->text);
    free(node);
}

const ynode *yn_deref(const ynode *node)
{
    /* An override wins over what the node says; an alias is its anchor's
     * node (which may itself carry an override). Bounded: a chain longer
     * than this would be a cycle, which the parser cannot build. */
    for (int hops = 0; node && hops < 64; hops++) {
        if (node->override)
            node = node->override;
        else if (node->kind == YN_ALIAS)
            node = node->target;
        else
            break;
    }
    return node;
}

ynode *yn_map_get(const ynode *map, const char *key)
{
    if (!map || map->kind != YN_MAP) return NULL;
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        const ynode *k = yn_deref(map->items[i]);
        if (k && k->kind == YN_SCALAR && strcmp(k->text, key) == 0) return map->items[i + 1];
    }
    return NULL;
}

typedef struct anchor_entry {
    const char *name;
    ynode *node;
} anchor_entry;

typedef struct parse_state {
    const char *source;
    int line_offset;
    ynode *stack[256];
    int depth;
    ynode *root;
    anchor_entry *anchors;
    size_t anchor_count, anchor_cap;
} parse_state;

static ynode *node_new(parse_state *ps, yn_kind kind, yaml_mark_t mark, const yaml_char_t *tag,
                       const yaml_char_t *anchor, ics_error *err)
{
    ynode *n = ics_calloc(1, sizeof *n, "recipe YAML node", err);
    if (!n) return NULL;
    n->kind = kind;
    n->line = (int)mark.line + 1 + ps->line_offset;
    n->column = (int)mark.column + 1;
    if (tag) n->tag = ics_strdup((const char *)tag, err);
    if (anchor) n->anchor = ics_strdup((const char *)anchor, err);
    if ((tag && !n->tag) || (anchor && !n->anchor)) {
        yn_free(n);
        return NULL;
    }
    return n;
}

static ics_status add_anchor(parse_state *ps, ynode *node, ics_error *err)
{
    if (!node->anchor) return ICS_OK;
    if (ps->anchor_count == ps->anchor_cap) {
        size_t cap = ps->anchor_cap ? ps->anchor_cap * 2 : 32;
        anchor_entry *a = ics_realloc(ps->anchors, cap * sizeof *a, "recipe anchors", err);
        if (!a) return err ? err->status : ICS_ERR_NOMEM;
        ps->anchors = a;
        ps->anchor_cap = cap;
    }
    ps->anchors[ps->anchor_count].name = node->anchor;
    ps->anchors[ps->anchor_count].node = node;
    ps->anchor_count++;
    return ICS_OK;
}

/* Attaches a finished node to the open sequence or mapping (or as root). */
static ics_status attach(parse_state *ps, ynode *node, ics_error *err)
{
    if (ps->depth == 0) {
        if (ps->root) {
            int line = node->line, column = node->column;
            yn_free(node);
            return RECIPE_FAIL(err, ps->source, line, column, "more than one YAML document");
        }
        ps->root = node;
        return ICS_OK;
    }
    ynode *parent = ps->stack[ps->depth - 1];
    if (parent->count == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        ynode **items = ics_realloc(parent->items, cap * sizeof *items, "recipe YAML items", err);
        if (!items) {
            yn_free(node);
            return err ? err->status : ICS_ERR_NOMEM;
        }
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->count++] = node;
    return ICS_OK;
}

/* Parser errors from libyaml carry a problem and a mark; say both. */
static ics_status parser_error(parse_state *ps, const yaml_parser_t *p, ics_error *err)
{
    int line = (int)p->problem_mark.line + 1 + ps->line_offset;
    int column = (int)p->problem_mark.column + 1;
    if (p->context)
        return RECIPE_FAIL(err, ps->source, line, column, "YAML syntax error: %s %s",
                           p->problem ? p->problem : "error", p->context);
    return RECIPE_FAIL(err, ps->source, line, column, "YAML syntax error: %s",
                       p->problem ? p->problem : "error");
}

static ics_status handle_event(parse_state *ps, const yaml_event_t *ev, ics_error *err)
{
    ynode *n = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = node_new(ps, YN_SCALAR, ev->start_mark, ev->data.scalar.tag, ev->data.scalar.anchor,
                     err);
        if (!n) return err ? err->status : ICS_ERR_NOMEM;
        n->text = ics_malloc(ev->data.scalar.length + 1, "recipe YAML scalar", err);
        if (!n->text) {
            yn_free(n);
            return err ? err->status : ICS_ERR_NOMEM;
        }
        memcpy(n->text, ev->data.scalar.value, ev->data.scalar.length);
        n->text[ev->data.scalar.length] = '\0';
        if (strlen(n->text) != ev->data.scalar.length) {
            int line = n->line, column = n->column;
            yn_free(n);
            return RECIPE_FAIL(err, ps->source, line, column, "NUL character in a scalar");
        }
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        /* !!str forces a string, like a quoted scalar */
        if (n->tag && strcmp(n->tag, YAML_STR_TAG) == 0) n->plain = 0;
        if (add_anchor(ps, n, err) != ICS_OK) {
            yn_free(n);
            return err ? err->status : ICS_ERR_NOMEM;
        }
        return attach(ps, n, err);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_seq = ev->type == YAML_SEQUENCE_START_EVENT;
        n = node_new(ps, is_seq ? YN_SEQ : YN_MAP, ev->start_mark,
                     is_seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag,
                     is_seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor, err);
        if (!n) return err ? err->status : ICS_ERR_NOMEM;
        if (ps->depth >= (int)(sizeof ps->stack / sizeof ps->stack[0])) {
            int line = n->line, column = n->column;
            yn_free(n);
            return RECIPE_FAIL(err, ps->source, line, column, "YAML nested too deeply");
        }
        if (add_anchor(ps, n, err) != ICS_OK) {
            yn_free(n);
            return err ? err->status : ICS_ERR_NOMEM;
        }
        /* attach first (the parent owns it), then open it */
        ics_status st = attach(ps, n, err);
        if (st != ICS_OK) return st;
        ps->stack[ps->depth++] = n;
        return ICS_OK;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (ps->depth > 0) ps->depth--;
        return ICS_OK;
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        ynode *target = NULL;
        /* the most recent definition wins, as in YAML */
        for (size_t i = ps->anchor_count; i-- > 0;)
            if (strcmp(ps->anchors[i].name, name) == 0) {
                target = ps->anchors[i].node;
                break;
            }
        int line = (int)ev->start_mark.line + 1 + ps->line_offset;
        int column = (int)ev->start_mark.column + 1;
        if (!target)
            return RECIPE_FAIL(err, ps->source, line, column,
                               "undefined alias *%s (no anchor &%s before it)", name, name);
        for (int d = 0; d < ps->depth; d++)
            if (ps->stack[d] == target)
                return RECIPE_FAIL(err, ps->source, line, column,
                                   "alias *%s refers to a node that contains it", name);
        n = node_new(ps, YN_ALIAS, ev->start_mark, NULL, NULL, err);
        if (!n) return err ? err->status : ICS_ERR_NOMEM;
        n->text = ics_strdup(name, err);
        if (!n->text) {
            yn_free(n);
            return err ? err->status : ICS_ERR_NOMEM;
        }
        n->target = target;
        return attach(ps, n, err);
    }
    default:
        return ICS_OK;
    }
}

/* Appends (key, value) to a mapping node (takes ownership of both). */
static ics_status map_append(ynode *map, ynode *key, ynode *value, ics_error *err)
{
    if (map->count + 2 > map->cap) {
        size_t cap = map->cap ? map->cap * 2 : 8;
        while (cap < map->count + 2)
            cap *= 2;
        ynode **items = ics_realloc(map->items, cap * sizeof *items, "recipe YAML items", err);
        if (!items) {
            yn_free(key);
            yn_free(value);
            return err ? err->status : ICS_ERR_NOMEM;
        }
        map->items = items;
        map->cap = cap;
    }
    map->items[map->count++] = key;
    map->items[map->count++] = value;
    return ICS_OK;
}

/* Appends node to a holder sequence (takes ownership). */
static ics_status keep_node(ynode *holder, ynode *node, ics_error *err)
{
    ynode **items =
        ics_realloc(holder->items, (holder->count + 1) * sizeof *items, "recipe YAML items", err);
    if (!items) {
        yn_free(node);
        return err ? err->status : ICS_ERR_NOMEM;
    }
    holder->items = items;
    holder->items[holder->count++] = node;
    holder->cap = holder->count;
    return ICS_OK;
}

/* Copies one merged pair in as a new key and an alias of the value, unless
 * the mapping has that key already (explicit keys, and earlier merged
 * mappings, win). */
static ics_status merge_pair(ynode *map, const ynode *key, ynode *value, ics_error *err)
{
    const ynode *k = yn_deref(key);
    if (k->kind != YN_SCALAR || yn_map_get(map, k->text)) return ICS_OK;
    ynode *nk = ics_calloc(1, sizeof *nk, "recipe YAML node", err);
    ynode *nv = ics_calloc(1, sizeof *nv, "recipe YAML node", err);
    if (nk) nk->text = ics_strdup(k->text, err);
    if (nv) nv->text = ics_strdup("<<", err);
    if (!nk || !nv || !nk->text || !nv->text) {
        yn_free(nk);
        yn_free(nv);
        return err ? err->status : ICS_ERR_NOMEM;
    }
    nk->kind = YN_SCALAR;
    nk->plain = k->plain;
    nk->line = k->line;
    nk->column = k->column;
    nv->kind = YN_ALIAS;
    nv->target = value;
    nv->line = value->line;
    nv->column = value->column;
    return map_append(map, nk, nv, err);
}

/* YAML merge keys (`<<: *defaults`, `<<: [*a, *b]`), which PyYAML's safe
 * loader applies: the pairs of the merged mappings join the mapping as
 * aliases of their values (so overrides still reach them), explicit keys
 * win. Children first, so a merged mapping is complete before it is used. */
static ics_status expand_merges(ynode *n, const char *source, ics_error *err)
{
    if (!n || n->kind == YN_ALIAS || n->kind == YN_SCALAR) return ICS_OK;
    for (size_t i = 0; i < n->count; i++) {
        ics_status st = expand_merges(n->items[i], source, err);
        if (st != ICS_OK) return st;
    }
    if (n->kind != YN_MAP) return ICS_OK;
    for (size_t i = 0; i + 1 < n->count;) {
        ynode *k = n->items[i];
        if (!(k->kind == YN_SCALAR && k->plain && strcmp(k->text, "<<") == 0)) {
            i += 2;
            continue;
        }
        ynode *v = n->items[i + 1];
        const ynode *src = yn_deref(v);
        const ynode *const *maps = &src;
        size_t map_count = 1;
        if (src->kind == YN_SEQ) {
            maps = (const ynode *const *)src->items;
            map_count = src->count;
        }
        for (size_t j = 0; j < map_count; j++)
            if (yn_deref(maps[j])->kind != YN_MAP)
                return RECIPE_FAIL(err, source, v->line, v->column,
                                   "a merge key '<<' needs a mapping or a list of mappings");
        /* take the << pair out (after the checks, so the tree stays whole on
         * error), then add the merged pairs at the end */
        memmove(&n->items[i], &n->items[i + 2], (n->count - i - 2) * sizeof *n->items);
        n->count -= 2;
        ics_status st = ICS_OK;
        for (size_t j = 0; j < map_count && st == ICS_OK; j++) {
            ynode *m = (ynode *)yn_deref(maps[j]);
            for (size_t p = 0; p + 1 < m->count && st == ICS_OK; p += 2)
                st = merge_pair(n, m->items[p], m->items[p + 1], err);
        }
        yn_free(k);
        /* the merged aliases point into v's subtree: keep it owned by n */
        if (!n->kept) {
            n->kept = ics_calloc(1, sizeof *n->kept, "recipe YAML node", err);
            if (!n->kept) {
                yn_free(v);
                return err ? err->status : ICS_ERR_NOMEM;
            }
            n->kept->kind = YN_SEQ;
        }
        ics_status kst = keep_node(n->kept, v, err);
        if (kst != ICS_OK) return kst;
        if (st != ICS_OK) return st;
    }
    return ICS_OK;
}

ics_status yn_parse(const char *text, size_t length, const char *source, int line_offset,
                    ynode **out, ics_error *err)
{
    *out = NULL;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ICS_FAIL(err, ICS_ERR_NOMEM, "%s: cannot initialize the YAML parser",
                        source ? source : "<recipe>");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, length);
    parse_state ps = {.source = source, .line_offset = line_offset};
    ics_status st = ICS_OK;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = parser_error(&ps, &parser, err);
            break;
        }
        int done = ev.type == YAML_STREAM_END_EVENT;
        st = handle_event(&ps, &ev, err);
        yaml_event_delete(&ev);
        if (st != ICS_OK || done) break;
    }
    yaml_parser_delete(&parser);
    free(ps.anchors);
    if (st != ICS_OK) {
        yn_free(ps.root);
        return st;
    }
    if (!ps.root) return RECIPE_FAIL(err, source, 0, 0, "the recipe is empty");
    st = expand_merges(ps.root, source, err);
    if (st != ICS_OK) {
        yn_free(ps.root);
        return st;
    }
    *out = ps.root;
    return ICS_OK;
}
