/*
 * The normalized summary `icsparse-compose --explain` prints: the layout,
 * max_epochs, and each modifier in schedule order with its epoch range,
 * every field at its evaluated value, and (given the model's parameter
 * list) which parameters its selectors pick.
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "from 0 to 40", "from the start, never ends": see recipe_internal.h. */
void recipe_epoch_range_text(const ics_modifier *m, char *buf, size_t size)
{
    char start[32], end[32];
    if (m->start_epoch == -1)
        snprintf(start, sizeof start, "the start");
    else
        snprintf(start, sizeof start, "%g", m->start_epoch);
    if (m->end_epoch == -1)
        snprintf(end, sizeof end, "never ends");
    else
        snprintf(end, sizeof end, "%g", m->end_epoch);
    if (m->end_epoch == -1)
        snprintf(buf, size, "from %s, never ends", start);
    else
        snprintf(buf, size, "from %s to %s", start, end);
}

static const ics_name_list *selectors_of(const ics_modifier *m)
{
    switch (m->type) {
    case ICS_MOD_GM_PRUNING:
    case ICS_MOD_MAGNITUDE_PRUNING:
    case ICS_MOD_GLOBAL_MAGNITUDE_PRUNING:
    case ICS_MOD_ACDC_PRUNING:
    case ICS_MOD_CONSTANT_PRUNING:
        return &m->u.pruning.params;
    case ICS_MOD_TRAINABLE_PARAMS:
        return &m->u.trainable.params;
    default:
        return NULL;
    }
}

ics_status ics_recipe_explain(const ics_recipe *r, const ics_param_info *params, size_t param_count,
                              FILE *out, ics_error *err)
{
    rbuf b = {0};
    rbuf_printf(&b, "recipe: %s\n", r->source);
    if (r->staged) {
        rbuf_printf(&b, "layout: staged, %zu stages:", r->stage_count);
        for (size_t s = 0; s < r->stage_count; s++)
            rbuf_printf(&b, " %s", r->stages[s].name);
        rbuf_printf(&b, "\n");
    } else {
        rbuf_printf(&b, "layout: flat\n");
    }
    rbuf_printf(&b, "max_epochs: %d\n", ics_recipe_max_epochs(r));
    rbuf_printf(&b, "modifiers: %zu (schedule order)\n", r->mod_count);
    unsigned char *selected = NULL;
    if (params) {
        selected = ics_calloc(param_count ? param_count : 1, 1, "selection flags", err);
        if (!selected) {
            free(b.data);
            return err ? err->status : ICS_ERR_NOMEM;
        }
    }
    ics_status st = ICS_OK;
    for (size_t i = 0; i < r->mod_count && st == ICS_OK; i++) {
        const rmod *m = r->mods[i];
        char range[96];
        recipe_epoch_range_text(&m->pub, range, sizeof range);
        rbuf_printf(&b, "\n[%zu] %s", i + 1, m->pub.type_name);
        if (r->staged) rbuf_printf(&b, " (stage %s)", r->stages[m->pub.stage].name);
        if (m->pub.line) rbuf_printf(&b, " (line %d)", m->pub.line);
        rbuf_printf(&b, "\n    epochs: %s\n", range);
        recipe_write_fields(&b, m, "    ");
        const ics_name_list *sel = selectors_of(&m->pub);
        if (params && sel) {
            memset(selected, 0, param_count);
            st = ics_recipe_select(sel, params, param_count, selected, err);
            if (st != ICS_OK) {
                ics_error_prefix(err, "%s: %s: ", r->source, m->pub.type_name);
                break;
            }
            size_t count = 0;
            for (size_t p = 0; p < param_count; p++)
                count += selected[p];
            rbuf_printf(&b, "    selects %zu of %zu parameters:\n", count, param_count);
            for (size_t p = 0; p < param_count; p++)
                if (selected[p]) rbuf_printf(&b, "      %s\n", params[p].name);
        }
    }
    free(selected);
    if (st == ICS_OK && b.failed) st = ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory explaining");
    if (st == ICS_OK && (fputs(b.data, out) == EOF || fflush(out) != 0))
        st = ICS_FAIL(err, ICS_ERR_IO, "cannot write the explanation");
    free(b.data);
    return st;
}
