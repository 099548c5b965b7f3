/* icsparse-compose: staged recipes. Explains a recipe (modifiers, evaluated
 * fields, epoch ranges, the parameters each one selects) or composes a
 * base recipe with the next stage's into one staged recipe file. */
#include "ics_build_config.h"
#include "apps/app.h"

#include <icsparse/model.h>
#include <icsparse/recipe.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const ics_app_option options[] = {
    {"explain", 0, 1, NULL, "RECIPE", "none", "print a normalized summary of RECIPE"},
    {"recipe-args", 0, 1, "recipe.args", "JSON", NULL,
     "recipe variable overrides (JSON or YAML mapping)"},
    {"arch", 0, 1, NULL, "ARCH", "none",
     "with --explain: what each modifier selects in model ARCH"},
    {"param-names", 0, 1, NULL, "FILE", "none",
     "with --explain: the model's parameters, one 'name prunable(0|1)' per line"},
    {"base", 0, 1, NULL, "RECIPE", "none", "compose: the recipe trained so far"},
    {"next", 0, 1, NULL, "RECIPE", "none", "compose: the next stage's recipe"},
    {"output", 'o', 1, NULL, "FILE", "none",
     "compose: where the staged recipe goes (written atomically)"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

typedef struct param_table {
    ics_param_info *params;
    size_t count;
    char *text; /* the names point into it */
} param_table;

/* Reads "name prunable" lines; blank lines and # comments are skipped. */
static ics_status read_param_names(const char *path, param_table *t, ics_error *err)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 0, len = 0;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *grown = realloc(t->text, cap);
            if (!grown) {
                fclose(f);
                return ICS_FAIL(err, ICS_ERR_NOMEM, "%s: out of memory", path);
            }
            t->text = grown;
        }
        memcpy(t->text + len, buf, n);
        len += n;
    }
    fclose(f);
    if (!t->text) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no parameter names", path);
    t->text[len] = '\0';
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += t->text[i] == '\n';
    t->params = calloc(lines, sizeof *t->params);
    if (!t->params) return ICS_FAIL(err, ICS_ERR_NOMEM, "%s: out of memory", path);
    int line_no = 0;
    for (char *line = t->text, *next; line; line = next) {
        line_no++;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *name = strtok(line, " \t\r");
        if (!name || name[0] == '#') continue;
        char *flag = strtok(NULL, " \t\r");
        if (!flag || (strcmp(flag, "0") != 0 && strcmp(flag, "1") != 0) || strtok(NULL, " \t\r"))
            return ICS_FAIL(err, ICS_ERR_FORMAT,
                            "%s:%d: expected 'name prunable' with prunable 0 or 1", path, line_no);
        t->params[t->count].name = name;
        t->params[t->count].prunable = flag[0] == '1';
        t->count++;
    }
    if (!t->count) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: no parameter names", path);
    return ICS_OK;
}

/* --arch: the trainable tensors of the architecture as the model library
 * builds it (torchvision state_dict names; buffers and counters are not
 * parameters, as in named_parameters()). Only the tensor table is used:
 * the slabs are allocated zeroed and never touched. */
static ics_status arch_param_names(const char *arch, param_table *t, ics_error *err)
{
    memset(t, 0, sizeof *t);
    ics_model *model = NULL;
    ics_status st = ics_model_create(arch, NULL, &model, err);
    if (st != ICS_OK) return st;
    int n = ics_model_num_tensors(model);
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += strlen(ics_model_tensor(model, i)->name) + 1;
    t->text = malloc(bytes ? bytes : 1);
    t->params = calloc((size_t)n + 1, sizeof *t->params);
    if (!t->text || !t->params) {
        ics_model_destroy(model);
        return ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory listing the parameters of %s", arch);
    }
    char *p = t->text;
    for (int i = 0; i < n; i++) {
        const ics_tensor_info *info = ics_model_tensor(model, i);
        if (info->kind == ICS_TENSOR_BUFFER || info->kind == ICS_TENSOR_COUNTER) continue;
        size_t len = strlen(info->name) + 1;
        memcpy(p, info->name, len);
        t->params[t->count].name = p;
        t->params[t->count].prunable = info->prunable;
        t->count++;
        p += len;
    }
    ics_model_destroy(model);
    return ICS_OK;
}

static ics_status explain(ics_app *app, const char *path, const char *args, ics_error *err)
{
    const char *arch = ics_app_option_value(app, "arch");
    const char *names = ics_app_option_value(app, "param-names");
    if (arch && names)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "give --arch or --param-names, not both");
    param_table t = {0};
    ics_status st = ICS_OK;
    if (names)
        st = read_param_names(names, &t, err);
    else if (arch)
        st = arch_param_names(arch, &t, err);
    ics_recipe *r = NULL;
    if (st == ICS_OK) st = ics_recipe_load_file(path, args, &r, err);
    if (st == ICS_OK) st = ics_recipe_explain(r, t.count ? t.params : NULL, t.count, stdout, err);
    if (st == ICS_OK && fflush(stdout) != 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "cannot write to standard output");
    ics_recipe_destroy(r);
    free(t.params);
    free(t.text);
    return st;
}

/* Writes text to path through a temporary name in the same directory, so
 * a crash never leaves a half-written recipe under the final name. */
static ics_status write_atomically(const char *path, const char *text, ics_error *err)
{
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) return ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    ics_status st = ICS_OK;
    if (!f) {
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        size_t n = strlen(text);
        int bad = fwrite(text, 1, n, f) != n;
        bad |= fflush(f) != 0;
        bad |= fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        if (bad)
            st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            st =
                ICS_FAIL(err, ICS_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        if (st != ICS_OK) unlink(tmp);
    }
    free(tmp);
    return st;
}

static ics_status compose(const char *base_path, const char *next_path, const char *out_path,
                          const char *args, ics_error *err)
{
    ics_recipe *base = NULL, *next = NULL, *composed = NULL;
    /* recipe_args belong to the next stage: the base was trained already
     * with whatever arguments it had, and its evaluated values are final */
    ics_status st = ics_recipe_load_file(base_path, NULL, &base, err);
    if (st == ICS_OK) st = ics_recipe_load_file(next_path, args, &next, err);
    if (st == ICS_OK) st = ics_recipe_compose(base, next, &composed, err);
    char *text = st == ICS_OK ? ics_recipe_to_yaml(composed, err) : NULL;
    if (st == ICS_OK && !text) st = err->status;
    if (st == ICS_OK) st = write_atomically(out_path, text, err);
    free(text);
    ics_recipe_destroy(base);
    ics_recipe_destroy(next);
    ics_recipe_destroy(composed);
    return st;
}

static ics_status run(ics_app *app, ics_error *err)
{
    const char *args = ics_config_string(ics_app_config(app), "recipe.args");
    const char *explain_path = ics_app_option_value(app, "explain");
    const char *base = ics_app_option_value(app, "base");
    const char *next = ics_app_option_value(app, "next");
    const char *out = ics_app_option_value(app, "output");
    if (explain_path && (base || next || out))
        return ICS_FAIL(err, ICS_ERR_CONFIG, "--explain does not go with --base/--next/-o");
    if (explain_path) return explain(app, explain_path, args, err);
    if (!base || !next || !out)
        return ICS_FAIL(err, ICS_ERR_CONFIG,
                        "give --explain RECIPE, or --base A.yaml --next B.yaml -o OUT.yaml");
    return compose(base, next, out, args, err);
}

int main(int argc, char **argv)
{
    static const ics_app_spec spec = {
        "icsparse-compose",
        "Explain a SparseML recipe, or compose the recipe trained so far with the next stage's.",
        NULL,
        0,
        0,
        options,
        0,
        run};
    return ics_app_main(&spec, argc, argv);
}
