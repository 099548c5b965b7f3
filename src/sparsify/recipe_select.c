/*
 * `params` selectors against a caller's parameter list, as SparseML's
 * get_named_layers_and_params_by_regex with params_strict=True:
 *   - "__ALL__": every parameter (upstream turns it into "re:.*");
 *   - "__ALL_PRUNABLE__": the weights of Conv and Linear layers (the caller
 *     marks them prunable);
 *   - "re:REGEX": Python's re.match, i.e. anchored at the start but not at
 *     the end ("re:.*conv*" selects every name containing "con"), compiled
 *     as POSIX extended with Python's \d \w \s (?:...) translated;
 *   - anything else: an exact name.
 * A selector that selects nothing is an error naming it and its line.
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

/* Python regex -> POSIX ERE for the subset recipes use, anchored at the
 * start like re.match. Returns malloc'd text. */
static char *translate_regex(const char *py, ics_error *err)
{
    size_t n = strlen(py);
    char *out = ics_malloc(n * 12 + 8, "regex", err);
    if (!out) return NULL;
    char *o = out;
    o += sprintf(o, "^(");
    for (size_t i = 0; i < n; i++) {
        if (py[i] == '\\' && i + 1 < n) {
            char c = py[++i];
            switch (c) {
            case 'd':
                o += sprintf(o, "[0-9]");
                break;
            case 'D':
                o += sprintf(o, "[^0-9]");
                break;
            case 'w':
                o += sprintf(o, "[A-Za-z0-9_]");
                break;
            case 'W':
                o += sprintf(o, "[^A-Za-z0-9_]");
                break;
            case 's':
                o += sprintf(o, "[[:space:]]");
                break;
            default:
                *o++ = '\\';
                *o++ = c;
                break;
            }
        } else if (py[i] == '(' && py[i + 1] == '?' && py[i + 2] == ':') {
            *o++ = '(';
            i += 2;
        } else {
            *o++ = py[i];
        }
    }
    o += sprintf(o, ")");
    *o = '\0';
    return out;
}

ics_status ics_recipe_select(const ics_name_list *selectors, const ics_param_info *params,
                             size_t param_count, unsigned char *selected, ics_error *err)
{
    for (size_t s = 0; s < selectors->count; s++) {
        const char *sel = selectors->names[s];
        int line = selectors->lines ? selectors->lines[s] : 0;
        int column = selectors->columns ? selectors->columns[s] : 0;
        size_t hits = 0;
        if (strcmp(sel, "__ALL__") == 0 || strcmp(sel, "__ALL_PRUNABLE__") == 0) {
            int prunable_only = sel[6] == 'P';
            for (size_t i = 0; i < param_count; i++)
                if (!prunable_only || params[i].prunable) {
                    selected[i] = 1;
                    hits++;
                }
        } else if (strncmp(sel, "re:", 3) == 0) {
            char *pattern = translate_regex(sel + 3, err);
            if (!pattern) return err ? err->status : ICS_ERR_NOMEM;
            regex_t re;
            int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
            free(pattern);
            if (rc != 0) {
                char why[128];
                regerror(rc, &re, why, sizeof why);
                return ICS_FAIL(err, ICS_ERR_FORMAT,
                                "line %d, column %d: bad regular expression in selector '%s': %s",
                                line, column, sel, why);
            }
            for (size_t i = 0; i < param_count; i++)
                if (regexec(&re, params[i].name, 0, NULL, 0) == 0) {
                    selected[i] = 1;
                    hits++;
                }
            regfree(&re);
        } else {
            for (size_t i = 0; i < param_count; i++)
                if (strcmp(params[i].name, sel) == 0) {
                    selected[i] = 1;
                    hits++;
                }
        }
        if (hits == 0)
            return ICS_FAIL(err, ICS_ERR_CONFIG,
                            "line %d, column %d: params selector '%s' matches no parameter of the "
                            "model (%zu parameters)",
                            line, column, sel, param_count);
    }
    return ICS_OK;
}
