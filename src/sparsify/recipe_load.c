/*
 * Recipe layout (SparseML's optim/helpers.py and modifier.py, re-done):
 *
 *   - a top-level key containing "modifiers" holds a list of modifiers:
 *     the recipe is flat and every such list is concatenated;
 *   - otherwise a top-level mapping holding a "modifiers" key is a stage
 *     (`stage_0:` ...), with its own variables, lists and metadata;
 *   - `metadata` / `__metadata__` is metadata; every other key is a
 *     variable (`version` included, as upstream).
 *
 * recipe_args override variables before anything is evaluated. An
 * override is set on the variable's value node, so aliases of an anchored
 * variable see it too. A name that is no variable anywhere but is a field
 * of some modifier overrides that field in every modifier (upstream's
 * rule for flat recipes); a name found nowhere is an error.
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ics_status recipe_new(const char *source, ics_recipe **out, ics_error *err)
{
    ics_recipe *r = ics_calloc(1, sizeof *r, "recipe", err);
    if (!r) return err ? err->status : ICS_ERR_NOMEM;
    r->source = ics_strdup(source ? source : "<recipe>", err);
    if (!r->source) {
        free(r);
        return err ? err->status : ICS_ERR_NOMEM;
    }
    *out = r;
    return ICS_OK;
}

ics_status recipe_add_stage(ics_recipe *r, const char *name, ics_error *err)
{
    rstage *stages =
        ics_realloc(r->stages, (r->stage_count + 1) * sizeof *stages, "recipe stages", err);
    if (!stages) return err ? err->status : ICS_ERR_NOMEM;
    r->stages = stages;
    rstage *s = &r->stages[r->stage_count];
    memset(s, 0, sizeof *s);
    if (name && !(s->name = ics_strdup(name, err))) return err ? err->status : ICS_ERR_NOMEM;
    r->stage_count++;
    return ICS_OK;
}

ics_status recipe_add_mod(ics_recipe *r, rmod *mod, ics_error *err)
{
    rmod **mods = ics_realloc(r->mods, (r->mod_count + 1) * sizeof *mods, "recipe modifiers", err);
    if (!mods) {
        rmod_free(mod);
        return err ? err->status : ICS_ERR_NOMEM;
    }
    r->mods = mods;
    r->mods[r->mod_count++] = mod;
    return ICS_OK;
}

void ics_recipe_destroy(ics_recipe *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->mod_count; i++)
        rmod_free(r->mods[i]);
    free(r->mods);
    for (size_t i = 0; i < r->stage_count; i++) {
        free(r->stages[i].name);
        rv_clear(&r->stages[i].metadata);
    }
    free(r->stages);
    rv_clear(&r->metadata);
    free(r->source);
    free(r);
}

/* SparseML's BaseModifier.comparator order: end_epoch (-1 = never ends,
 * last), then start_epoch, then the identifier; icsparse uses the class
 * name and then source order where SparseML hashes the properties. */
static int mod_compare(const void *pa, const void *pb)
{
    const rmod *a = *(const rmod *const *)pa, *b = *(const rmod *const *)pb;
    double ea = a->pub.end_epoch == -1 ? 1e300 : a->pub.end_epoch;
    double eb = b->pub.end_epoch == -1 ? 1e300 : b->pub.end_epoch;
    if (ea != eb) return ea < eb ? -1 : 1;
    if (a->pub.start_epoch != b->pub.start_epoch)
        return a->pub.start_epoch < b->pub.start_epoch ? -1 : 1;
    int c = strcmp(a->pub.type_name, b->pub.type_name);
    if (c) return c;
    return a->source_index < b->source_index ? -1 : a->source_index > b->source_index;
}

/* See recipe_internal.h: schedule order (mod_compare). */
void recipe_sort(ics_recipe *r)
{
    if (r->mod_count > 1) qsort(r->mods, r->mod_count, sizeof *r->mods, mod_compare);
}

size_t ics_recipe_modifier_count(const ics_recipe *r)
{
    return r->mod_count;
}

const ics_modifier *ics_recipe_modifier(const ics_recipe *r, size_t index)
{
    return index < r->mod_count ? &r->mods[index]->pub : NULL;
}

size_t ics_recipe_stage_count(const ics_recipe *r)
{
    return r->stage_count;
}

const char *ics_recipe_stage_name(const ics_recipe *r, size_t index)
{
    return index < r->stage_count ? r->stages[index].name : NULL;
}

int ics_recipe_is_staged(const ics_recipe *r)
{
    return r->staged;
}

/* SparseML: any key containing "modifiers" holds a modifier list. */
static int is_modifier_key(const char *key)
{
    return strstr(key, "modifiers") != NULL;
}

/* `metadata` (RECIPE_METADATA_KEY) or `__metadata__`. */
static int is_metadata_key(const char *key)
{
    return strcmp(key, "metadata") == 0 || strcmp(key, "__metadata__") == 0;
}

/* A mapping holding a modifier list is a stage. */
static int has_modifier_key(const ynode *map)
{
    if (!map || map->kind != YN_MAP) return 0;
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        const ynode *k = yn_deref(map->items[i]);
        if (k->kind == YN_SCALAR && is_modifier_key(k->text)) return 1;
    }
    return 0;
}

/* The first node under n with an application tag (a `!Modifier`), or NULL.
 * Aliases are not followed: their anchors are checked where they stand. */
static const ynode *find_tagged(const ynode *n)
{
    if (!n || n->kind == YN_ALIAS) return NULL;
    if (n->tag && n->tag[0] == '!' && n->tag[1] != '!') return n;
    for (size_t i = 0; i < n->count; i++) {
        const ynode *t = find_tagged(n->items[i]);
        if (t) return t;
    }
    return NULL;
}

/* What the loader sees in one mapping (the top level or a stage). */
typedef struct layout {
    rscope scope;
    ynode *lists[64];
    int list_count;
    ynode *metadata;
} layout;

/* Sorts one mapping's keys into modifier lists, metadata, stages (top
 * level only) and variables. */
static ics_status scan_mapping(const ynode *map, const char *source, layout *lay, ynode **stages,
                               int *stage_count, int max_stages, ics_error *err)
{
    for (size_t i = 0; i + 1 < map->count; i += 2) {
        const ynode *k = yn_deref(map->items[i]);
        ynode *value = map->items[i + 1];
        if (k->kind != YN_SCALAR)
            return RECIPE_FAIL(err, source, k->line, k->column, "a top-level key must be a name");
        for (size_t j = 0; j < i; j += 2)
            if (strcmp(yn_deref(map->items[j])->text, k->text) == 0)
                return RECIPE_FAIL(err, source, k->line, k->column, "duplicate key '%s'", k->text);
        const ynode *v = yn_deref(value);
        if (is_modifier_key(k->text)) {
            if (v->kind == YN_SCALAR && v->text[0] == '\0' && !v->tag) continue; /* empty list */
            if (v->kind != YN_SEQ)
                return RECIPE_FAIL(err, source, v->line, v->column,
                                   "'%s' must be a list of !Modifier mappings", k->text);
            if (lay->list_count == 64)
                return RECIPE_FAIL(err, source, k->line, k->column, "too many modifier lists");
            lay->lists[lay->list_count++] = value;
        } else if (is_metadata_key(k->text)) {
            lay->metadata = value;
        } else if (has_modifier_key(v)) {
            if (!stages)
                return RECIPE_FAIL(err, source, k->line, k->column,
                                   "stage '%s' inside a stage: stages only at the top level",
                                   k->text);
            stages[(*stage_count)++] = map->items[i];
        } else {
            /* upstream: a modifier in a list whose key lacks "modifiers" is
             * an error, not a variable nobody reads */
            const ynode *tagged = find_tagged(value);
            if (tagged)
                return RECIPE_FAIL(err, source, tagged->line, tagged->column,
                                   "%s under '%s': modifiers must be in a list under a key "
                                   "containing 'modifiers'",
                                   tagged->tag, k->text);
            ics_status st = rscope_add(&lay->scope, k->text, value, err);
            if (st != ICS_OK) return st;
        }
    }
    return ICS_OK;
}

/* Sets every modifier field named key (in the lists of lay) to value. */
static int override_fields(layout *lay, const char *key, ynode *value)
{
    int found = 0;
    for (int l = 0; l < lay->list_count; l++) {
        const ynode *list = yn_deref(lay->lists[l]);
        for (size_t i = 0; i < list->count; i++) {
            ynode *field = yn_map_get(yn_deref(list->items[i]), key);
            if (field) {
                field->override = value;
                found = 1;
            }
        }
    }
    return found;
}

/* Applies every recipe_args key (see the file comment); a key that
 * names nothing is an error. */
static ics_status apply_overrides(const ynode *args, layout *global, layout *stage_layouts,
                                  int stage_count, const char *source, ics_error *err)
{
    for (size_t i = 0; i + 1 < args->count; i += 2) {
        const ynode *k = yn_deref(args->items[i]);
        ynode *value = args->items[i + 1];
        if (k->kind != YN_SCALAR)
            return RECIPE_FAIL(err, "recipe_args", k->line, k->column, "a key must be a name");
        int found = 0;
        rvar *v = rscope_find(&global->scope, k->text);
        if (v) {
            v->node->override = value;
            found = 1;
        }
        for (int s = 0; s < stage_count; s++) {
            rvar *w = rscope_find(&stage_layouts[s].scope, k->text);
            if (w && w != v) {
                w->node->override = value;
                found = 1;
            }
        }
        if (!found) {
            found = override_fields(global, k->text, value);
            for (int s = 0; s < stage_count; s++)
                found |= override_fields(&stage_layouts[s], k->text, value);
        }
        if (!found)
            return ICS_FAIL(err, ICS_ERR_CONFIG,
                            "recipe_args: '%s' is not a variable of %s (set the variable in the "
                            "recipe in order to override it)",
                            k->text, source);
    }
    return ICS_OK;
}

/* recipe_args text -> a mapping node (*out stays NULL for empty text).
 * JSON and YAML mappings parse as YAML. SparseML also takes "k=v,k2:v2"
 * (parse_recipe_variables' CSV form), which is turned into a mapping here;
 * its values are numbers when they read as numbers, else strings. */
static ics_status parse_recipe_args(const char *text, ynode **out, ics_error *err)
{
    *out = NULL;
    ynode *args = NULL;
    ics_status st = yn_parse(text, strlen(text), "recipe_args", 0, &args, err);
    if (st == ICS_ERR_FORMAT) {
        /* a syntax error in the arguments is a usage error */
        ics_error_prefix(err, "bad recipe_args: ");
        if (err) err->status = ICS_ERR_CONFIG;
        return ICS_ERR_CONFIG;
    }
    if (st != ICS_OK) return st;
    const ynode *a = yn_deref(args);
    if (a->kind == YN_MAP) {
        *out = args;
        return ICS_OK;
    }
    int csv = a->kind == YN_SCALAR && a->plain && (strchr(a->text, '=') || strchr(a->text, ':'));
    int empty = a->kind == YN_SCALAR && a->text[0] == '\0';
    yn_free(args);
    if (empty) return ICS_OK;
    if (!csv)
        return ICS_FAIL(err, ICS_ERR_CONFIG,
                        "recipe_args must be a JSON or YAML mapping of variable names to values, "
                        "or k=v,k2=v2; got '%s'",
                        text);
    rbuf b = {0};
    rbuf_printf(&b, "{");
    const char *p = text;
    for (int first = 1; *p; first = 0) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char pair[512];
        if (len >= sizeof pair) len = sizeof pair - 1;
        memcpy(pair, p, len);
        pair[len] = '\0';
        for (char *c = pair; *c; c++)
            if (*c == ':') *c = '='; /* upstream: "k:v" is "k=v" */
        char *eq = strchr(pair, '=');
        char *key = pair, *value = eq ? eq + 1 : NULL;
        if (eq) *eq = '\0';
        while (*key == ' ')
            key++;
        for (char *e = key + strlen(key); e > key && e[-1] == ' ';)
            *--e = '\0';
        while (value && *value == ' ')
            value++;
        for (char *e = value ? value + strlen(value) : NULL; e && e > value && e[-1] == ' ';)
            *--e = '\0';
        if (!value || strchr(value, '=') || !key[0] || strpbrk(key, "{}!'\" []")) {
            free(b.data);
            return ICS_FAIL(err, ICS_ERR_CONFIG,
                            "recipe_args: '%.*s' is not a key=value pair (in '%s')", (int)len, p,
                            text);
        }
        rnum r;
        rbuf_printf(&b, "%s%s: ", first ? "" : ", ", key);
        if (rexpr_parse_number(value, &r))
            rbuf_printf(&b, "%s", value);
        else
            rbuf_string(&b, value);
        p += len + (comma ? 1 : 0);
        if (!comma) break;
    }
    rbuf_printf(&b, "}");
    if (b.failed) {
        free(b.data);
        return ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory reading recipe_args");
    }
    st = yn_parse(b.data, b.len, "recipe_args", 0, out, err);
    free(b.data);
    return st;
}

/* Builds the modifiers of a layout's lists in source order. */
static ics_status build_modifiers(ics_recipe *r, layout *lay, int stage, size_t *index,
                                  ics_error *err)
{
    for (int l = 0; l < lay->list_count; l++) {
        const ynode *list = yn_deref(lay->lists[l]);
        for (size_t i = 0; i < list->count; i++) {
            rmod *m;
            ics_status st = rmod_from_node(&lay->scope, list->items[i], stage, &m, err);
            if (st != ICS_OK) return st;
            m->source_index = (*index)++;
            st = recipe_add_mod(r, m, err);
            if (st != ICS_OK) return st;
        }
    }
    return ICS_OK;
}

/* Document tree -> recipe: layout, overrides, evaluation, modifiers. */
static ics_status load_tree(ynode *root, const char *source, const char *recipe_args,
                            ics_recipe **out, ics_error *err)
{
    if (root->kind != YN_MAP)
        return RECIPE_FAIL(err, source, root->line, root->column,
                           "a recipe must be a mapping (variables and modifier lists)");
    layout global = {.scope = {.source = source}};
    /* at most one stage per top-level key */
    int max_stages = (int)(root->count / 2) + 1;
    layout *stage_layouts =
        ics_calloc((size_t)max_stages, sizeof *stage_layouts, "recipe stages", err);
    ynode **stage_keys = ics_calloc((size_t)max_stages, sizeof *stage_keys, "recipe stages", err);
    int stage_count = 0;
    ynode *args = NULL;
    ics_recipe *r = NULL;
    ics_status st = stage_layouts && stage_keys ? ICS_OK : err ? err->status : ICS_ERR_NOMEM;
    if (st == ICS_OK)
        st = scan_mapping(root, source, &global, stage_keys, &stage_count, max_stages, err);
    for (int s = 0; st == ICS_OK && s < stage_count; s++) {
        const ynode *key = yn_deref(stage_keys[s]);
        stage_layouts[s].scope.source = source;
        stage_layouts[s].scope.parent = &global.scope;
        st = scan_mapping(yn_deref(yn_map_get(root, key->text)), source, &stage_layouts[s], NULL,
                          NULL, 0, err);
    }
    if (st == ICS_OK && global.list_count && stage_count) {
        const ynode *key = yn_deref(stage_keys[0]);
        st = RECIPE_FAIL(err, source, key->line, key->column,
                         "the recipe has both top-level modifier lists and stages ('%s'); put "
                         "every modifier list in a stage",
                         key->text);
    }
    if (st == ICS_OK && !global.list_count && !stage_count)
        st = RECIPE_FAIL(err, source, root->line, root->column,
                         "no modifiers: a recipe needs a key containing 'modifiers' with a list "
                         "of !Modifier mappings, or stages holding such keys");
    if (st == ICS_OK && recipe_args && recipe_args[0]) {
        st = parse_recipe_args(recipe_args, &args, err);
        if (st == ICS_OK && args)
            st = apply_overrides(yn_deref(args), &global, stage_layouts, stage_count, source, err);
    }
    if (st == ICS_OK) st = rscope_evaluate(&global.scope, err);
    for (int s = 0; st == ICS_OK && s < stage_count; s++)
        st = rscope_evaluate(&stage_layouts[s].scope, err);
    if (st == ICS_OK) st = recipe_new(source, &r, err);
    size_t index = 0;
    if (st == ICS_OK && !stage_count) {
        st = recipe_add_stage(r, NULL, err);
        if (st == ICS_OK) st = build_modifiers(r, &global, 0, &index, err);
        if (st == ICS_OK && global.metadata)
            st = rvalue_from_node(&global.scope, global.metadata, &r->metadata, err);
    }
    for (int s = 0; st == ICS_OK && s < stage_count; s++) {
        r->staged = 1;
        st = recipe_add_stage(r, yn_deref(stage_keys[s])->text, err);
        if (st == ICS_OK) st = build_modifiers(r, &stage_layouts[s], s, &index, err);
        if (st == ICS_OK && stage_layouts[s].metadata)
            st = rvalue_from_node(&stage_layouts[s].scope, stage_layouts[s].metadata,
                                  &r->stages[s].metadata, err);
    }
    if (st == ICS_OK && global.metadata && stage_count) {
        /* top-level metadata of a staged recipe: kept on the recipe */
        st = rvalue_from_node(&global.scope, global.metadata, &r->metadata, err);
    }
    rscope_free(&global.scope);
    for (int s = 0; s < stage_count; s++)
        rscope_free(&stage_layouts[s].scope);
    free(stage_layouts);
    free(stage_keys);
    yn_free(args);
    if (st != ICS_OK) {
        ics_recipe_destroy(r);
        return st;
    }
    recipe_sort(r);
    *out = r;
    return ICS_OK;
}

/* Parses YAML text and loads it (line_offset: front matter). */
static ics_status load_text(const char *text, size_t length, const char *source, int line_offset,
                            const char *recipe_args, ics_recipe **out, ics_error *err)
{
    *out = NULL;
    ynode *root = NULL;
    ics_status st = yn_parse(text, length, source, line_offset, &root, err);
    if (st != ICS_OK) return st;
    st = load_tree(root, source, recipe_args, out, err);
    yn_free(root);
    return st;
}

ics_status ics_recipe_load_string(const char *text, const char *source_name,
                                  const char *recipe_args, ics_recipe **out, ics_error *err)
{
    return load_text(text, strlen(text), source_name ? source_name : "<recipe>", 0, recipe_args,
                     out, err);
}

/* The YAML front matter of a .md recipe: from the first line that starts
 * (after blanks) with `---` or `+++` to the next `---` or `+++` (SparseML's
 * re.search of ^\s*(?:---|\+\+\+)(.*?)(?:---|\+\+\+) with MULTILINE and
 * DOTALL). Line numbers stay the file's. */
static ics_status front_matter(const char *text, const char *path, const char **start,
                               size_t *length, int *line_offset, ics_error *err)
{
    const char *p = NULL;
    for (const char *line = text; line && *line;) {
        const char *q = line;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (strncmp(q, "---", 3) == 0 || strncmp(q, "+++", 3) == 0) {
            p = q + 3;
            break;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    if (!p)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: a .md recipe needs YAML front matter between '---' lines", path);
    const char *end_dash = strstr(p, "---"), *end_plus = strstr(p, "+++");
    const char *end = end_dash && (!end_plus || end_dash < end_plus) ? end_dash : end_plus;
    if (!end)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: the YAML front matter has no closing '---'",
                        path);
    int lines = 0;
    for (const char *q = text; q < p; q++)
        lines += *q == '\n';
    *start = p;
    *length = (size_t)(end - p);
    *line_offset = lines;
    return ICS_OK;
}

ics_status ics_recipe_load_file(const char *path, const char *recipe_args, ics_recipe **out,
                                ics_error *err)
{
    *out = NULL;
    const char *dot = strrchr(path, '.');
    int is_md = dot && strcmp(dot, ".md") == 0;
    if (!dot || (!is_md && strcmp(dot, ".yaml") != 0 && strcmp(dot, ".yml") != 0))
        return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: a recipe file must end in .yaml, .yml or .md",
                        path);
    FILE *f = fopen(path, "rb");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open recipe: %s", path, strerror(errno));
    char *text = NULL;
    size_t length = 0, cap = 0;
    ics_status st = ICS_OK;
    for (;;) {
        if (length + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = ics_realloc(text, cap, "recipe text", err);
            if (!grown) {
                st = err ? err->status : ICS_ERR_NOMEM;
                break;
            }
            text = grown;
        }
        size_t n = fread(text + length, 1, cap - length - 1, f);
        length += n;
        if (n == 0) {
            if (ferror(f)) st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot read recipe", path);
            break;
        }
    }
    fclose(f);
    if (st != ICS_OK) {
        free(text);
        return st;
    }
    text[length] = '\0';
    if (strlen(text) != length) {
        free(text);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: the recipe contains a NUL byte", path);
    }
    const char *start = text;
    size_t yaml_length = length;
    int line_offset = 0;
    if (is_md) st = front_matter(text, path, &start, &yaml_length, &line_offset, err);
    if (st == ICS_OK) st = load_text(start, yaml_length, path, line_offset, recipe_args, out, err);
    free(text);
    return st;
}
