/*
 * compose_staged (SparseML's BaseManager.compose_staged without
 * keep_original_epochs): the next recipe runs after the base recipe.
 *
 * base_end = base's max_epochs. Base modifiers that never end (end -1) end
 * at base_end. Every absolute epoch of the next recipe moves by base_end:
 * start_epoch and end_epoch (-1 ends stay -1), QuantizationModifier's
 * disable_quantization_observer_epoch and freeze_bn_stats_epoch (as
 * upstream's QuantizationModifier.advance_epochs), and MultiStepLR
 * milestones, which are absolute epochs too (an icsparse addition). A next start_epoch of -1 ("from
 * the start") becomes base_end (upstream's advance_epochs: max(0, start) + base_end).
 */
#include "ics_build_config.h"
#include "sparsify/recipe_internal.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds shift to a numeric field unless it is absent or -1 ("never"). */
static ics_status shift_field(rmod *m, const char *field, double shift, ics_error *err)
{
    rv *v = rv_map_get(&m->fields, field);
    if (!v || !rv_is_number(v) || v->num == -1) return ICS_OK;
    v->num += shift;
    return ICS_OK;
}

/* Moves every absolute epoch of a next-stage modifier by base_end. */
static ics_status shift_next_modifier(rmod *m, double base_end, ics_error *err)
{
    rv *start = rv_map_get(&m->fields, "start_epoch");
    if (start) {
        start->num = start->num == -1 ? base_end : start->num + base_end;
        start->kind = RV_FLOAT;
    }
    ics_status st = shift_field(m, "end_epoch", base_end, err);
    if (st == ICS_OK) st = shift_field(m, "disable_quantization_observer_epoch", base_end, err);
    if (st == ICS_OK) st = shift_field(m, "freeze_bn_stats_epoch", base_end, err);
    rv *kw = rv_map_get(&m->fields, "lr_kwargs");
    rv *ms = kw ? rv_map_get(kw, "milestones") : NULL;
    for (size_t i = 0; ms && ms->kind == RV_LIST && i < ms->count; i++)
        if (rv_is_number(&ms->items[i])) ms->items[i].num += base_end;
    return st;
}

/* Copies stage metadata when there is any. */
static ics_status copy_metadata(rv *dst, const rv *src, ics_error *err)
{
    if (src->kind == RV_NULL) return ICS_OK;
    return rv_copy(dst, src, err);
}

ics_status ics_recipe_compose(const ics_recipe *base, const ics_recipe *next, ics_recipe **out,
                              ics_error *err)
{
    *out = NULL;
    char base_name[160], next_name[160];
    /* stage names as upstream generates them */
    if (!base->staged && !next->staged) {
        snprintf(base_name, sizeof base_name, "stage_0");
        snprintf(next_name, sizeof next_name, "stage_1");
    } else if (base->staged && !next->staged) {
        snprintf(next_name, sizeof next_name, "stage_%zu", base->stage_count + 1);
    } else if (!base->staged && next->staged) {
        snprintf(base_name, sizeof base_name, "pre_%s", next->stages[0].name);
    }
    const char **bnames =
        ics_calloc(base->stage_count + next->stage_count, sizeof *bnames, "stage names", err);
    if (!bnames) return err ? err->status : ICS_ERR_NOMEM;
    const char **nnames = bnames + base->stage_count;
    for (size_t s = 0; s < base->stage_count; s++)
        bnames[s] = base->staged ? base->stages[s].name : base_name;
    for (size_t s = 0; s < next->stage_count; s++)
        nnames[s] = next->staged ? next->stages[s].name : next_name;
    for (size_t i = 0; i < base->stage_count; i++)
        for (size_t j = 0; j < next->stage_count; j++)
            if (strcmp(bnames[i], nnames[j]) == 0) {
                ics_status st = ICS_FAIL(err, ICS_ERR_CONFIG,
                                         "compose: base (%s) and next (%s) recipes must not share "
                                         "stage names; both have '%s'",
                                         base->source, next->source, bnames[i]);
                free(bnames);
                return st;
            }

    ics_recipe *r = NULL;
    char source[512];
    snprintf(source, sizeof source, "compose(%s, %s)", base->source, next->source);
    ics_status st = recipe_new(source, &r, err);
    if (st != ICS_OK) {
        free(bnames);
        return st;
    }
    r->staged = 1;
    for (size_t s = 0; st == ICS_OK && s < base->stage_count; s++) {
        st = recipe_add_stage(r, bnames[s], err);
        if (st == ICS_OK)
            st = copy_metadata(&r->stages[r->stage_count - 1].metadata,
                               base->staged ? &base->stages[s].metadata : &base->metadata, err);
    }
    for (size_t s = 0; st == ICS_OK && s < next->stage_count; s++) {
        st = recipe_add_stage(r, nnames[s], err);
        if (st == ICS_OK)
            st = copy_metadata(&r->stages[r->stage_count - 1].metadata,
                               next->staged ? &next->stages[s].metadata : &next->metadata, err);
    }
    free(bnames);
    double base_end = ics_recipe_max_epochs(base);
    size_t index = 0;
    for (size_t i = 0; st == ICS_OK && i < base->mod_count; i++) {
        rmod *m;
        st = rmod_copy(base->mods[i], &m, err);
        if (st != ICS_OK) break;
        m->source_index = index++;
        if (m->pub.end_epoch == -1 && rv_map_get(&m->fields, "end_epoch"))
            st = rmod_set_float(m, "end_epoch", base_end, err);
        if (st == ICS_OK) st = rmod_bind(m, r->source, err);
        if (st != ICS_OK) {
            rmod_free(m);
            break;
        }
        st = recipe_add_mod(r, m, err);
    }
    for (size_t i = 0; st == ICS_OK && i < next->mod_count; i++) {
        rmod *m;
        st = rmod_copy(next->mods[i], &m, err);
        if (st != ICS_OK) break;
        m->source_index = index++;
        m->pub.stage += (int)base->stage_count;
        st = shift_next_modifier(m, base_end, err);
        if (st == ICS_OK) st = rmod_bind(m, r->source, err);
        if (st != ICS_OK) {
            rmod_free(m);
            break;
        }
        st = recipe_add_mod(r, m, err);
    }
    if (st != ICS_OK) {
        ics_recipe_destroy(r);
        return st;
    }
    recipe_sort(r);
    *out = r;
    return ICS_OK;
}
