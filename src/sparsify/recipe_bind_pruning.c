/*
 * Bind function of the pruning modifiers (GM, Magnitude, GlobalMagnitude,
 * AC/DC, Constant): sparsity targets, mask types, the AC/DC phase rule.
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

/* mask_type: SparseML's get_mask_creator_default names, N:M strings and
 * [rows, cols] block shapes. */
static ics_status bind_mask(rmod *m, const char *source, ics_pruning_spec *s, ics_error *err)
{
    const rv *v = rmod_get(m, "mask_type");
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
    if (strcmp(t, "unstructured") == 0)
        s->mask_type = ICS_MASK_UNSTRUCTURED;
    else if (strcmp(t, "channel") == 0)
        s->mask_type = ICS_MASK_CHANNEL;
    else if (strcmp(t, "filter") == 0)
        s->mask_type = ICS_MASK_FILTER;
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
        return rmod_field_fail(m, source, "mask_type", err,
                               "unknown mask_type '%s' (unstructured, channel, filter, block4, "
                               "tensorrt, \"N:M\" with 0 < N < M, or [rows, cols])",
                               t);
    }
    return ICS_OK;
}

/* Every pruning modifier: selectors, sparsity groups (one per target
 * sparsity), interpolation, mask type; AC/DC phase rule; Constant keeps
 * the current zeros (init_from_param) with update_frequency -1. */
ics_status rbind_pruning(rmod *m, const char *source, ics_error *err)
{
    ics_pruning_spec *s = &m->pub.u.pruning;
    ics_modifier_type type = m->pub.type;
    ics_status st = rmod_names(m, rmod_get(m, "params"), &s->params, err);
    if (st != ICS_OK) return st;
    s->leave_enabled = rmod_bool(m, "leave_enabled", type != ICS_MOD_CONSTANT_PRUNING);
    s->global_sparsity =
        rmod_bool(m, "global_sparsity",
                  type == ICS_MOD_GLOBAL_MAGNITUDE_PRUNING || type == ICS_MOD_ACDC_PRUNING);
    if (type == ICS_MOD_GLOBAL_MAGNITUDE_PRUNING) s->global_sparsity = 1;
    s->momentum_buffer_reset = rmod_bool(m, "momentum_buffer_reset", 0);
    const char *inter = rmod_str(m, "inter_func");
    s->inter_func = !inter || strcmp(inter, "cubic") == 0 ? ICS_INTER_CUBIC
                    : strcmp(inter, "linear") == 0        ? ICS_INTER_LINEAR
                                                          : ICS_INTER_INVERSE_CUBIC;
    st = bind_mask(m, source, s, err);
    if (st != ICS_OK) return st;

    if (type == ICS_MOD_CONSTANT_PRUNING) {
        if (m->pub.update_frequency != -1)
            return rmod_field_fail(m, source, "update_frequency", err,
                                   "update_frequency must be -1 (the mask is fixed)");
        s->init_from_param = 1;
        return ICS_OK;
    }
    if (s->params.count == 0 &&
        !(rmod_get(m, "final_sparsity") && rmod_get(m, "final_sparsity")->kind == RV_MAP))
        return rmod_field_fail(m, source, "params", err,
                               "params must select at least one parameter");
    if (!(m->pub.update_frequency > 0 || m->pub.update_frequency == -1))
        return rmod_field_fail(m, source, "update_frequency", err,
                               "update_frequency must be > 0 or -1, got %g",
                               m->pub.update_frequency);

    if (type == ICS_MOD_ACDC_PRUNING) {
        s->compression_sparsity = rmod_num(m, "compression_sparsity", 0);
        st = rmod_check_fraction(m, source, "compression_sparsity", s->compression_sparsity, err);
        if (st != ICS_OK) return st;
        if (!(m->pub.update_frequency > 0))
            return rmod_field_fail(m, source, "update_frequency", err,
                                   "update_frequency (the phase length) must be > 0");
        if (m->pub.start_epoch < 0)
            return rmod_field_fail(m, source, "start_epoch", err, "start_epoch must be >= 0");
        /* AC/DC alternates decompressed (even) and compressed (odd) phases of
         * update_frequency epochs from start_epoch. Training must end on a
         * compressed phase, so end_epoch is cut to an even number of whole
         * phases (SparseML's rule uses the absolute epoch's parity and can
         * end decompressed; docs/RECIPES.md). */
        double f = m->pub.update_frequency;
        double phases = floor((m->pub.end_epoch - m->pub.start_epoch) / f + 1e-9);
        if (fmod(phases, 2.0) != 0) phases -= 1;
        if (phases < 2)
            return rmod_field_fail(
                m, source, "end_epoch", err,
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
        ics_sparsity_group *g = rmod_alloc(m, sizeof *g, err);
        if (!g) return err ? err->status : ICS_ERR_NOMEM;
        g->sparsity = s->compression_sparsity;
        g->params = s->params;
        s->groups = g;
        s->init_sparsity = 0;
        return ICS_OK;
    }

    /* gradual magnitude pruning */
    if (rmod_bool(m, "phased", 0))
        return rmod_field_fail(m, source, "phased", err,
                               "phased pruning is not supported (as upstream)");
    const char *score = rmod_str(m, "score_type");
    if (score && strcmp(score, "magnitude") != 0)
        return rmod_field_fail(m, source, "score_type", err,
                               "score_type must be 'magnitude', got '%s'", score);
    if (m->pub.end_epoch != -1 && m->pub.end_epoch == m->pub.start_epoch)
        return rmod_field_fail(m, source, "end_epoch", err,
                               "end_epoch must be greater than start_epoch for gradual pruning");
    const rv *init = rmod_get(m, "init_sparsity");
    if (init->kind == RV_STRING) {
        s->init_from_param = 1;
    } else {
        s->init_sparsity = init->num;
        st = rmod_check_fraction(m, source, "init_sparsity", s->init_sparsity, err);
        if (st != ICS_OK) return st;
    }
    const rv *fin = rmod_get(m, "final_sparsity");
    if (fin->kind != RV_MAP) {
        st = rmod_check_fraction(m, source, "final_sparsity", fin->num, err);
        if (st != ICS_OK) return st;
        ics_sparsity_group *g = rmod_alloc(m, sizeof *g, err);
        if (!g) return err ? err->status : ICS_ERR_NOMEM;
        g->sparsity = fin->num;
        g->params = s->params;
        s->groups = g;
        s->group_count = 1;
        return ICS_OK;
    }
    /* {sparsity: [params]}: each group its own target; params must be [] */
    if (s->params.count)
        return rmod_field_fail(m, source, "params", err,
                               "with a final_sparsity mapping, params must be [] (the mapping "
                               "lists the parameters)");
    ics_sparsity_group *groups = rmod_alloc(m, fin->count * sizeof *groups, err);
    if (!groups) return err ? err->status : ICS_ERR_NOMEM;
    size_t total = 0;
    for (size_t i = 0; i < fin->count; i++) {
        rnum r;
        if (!rexpr_parse_number(fin->keys[i], &r))
            return RECIPE_FAIL(err, source, fin->items[i].line, fin->items[i].column,
                               "%s: final_sparsity key '%s' is not a number", m->pub.type_name,
                               fin->keys[i]);
        groups[i].sparsity = r.v;
        st = rmod_check_fraction(m, source, "final_sparsity", r.v, err);
        if (st == ICS_OK) st = rmod_names(m, &fin->items[i], &groups[i].params, err);
        if (st != ICS_OK) return st;
        total += groups[i].params.count;
    }
    s->groups = groups;
    s->group_count = fin->count;
    /* params = the union, for selection and explain */
    const char **names = rmod_alloc(m, total * sizeof *names, err);
    int *lines = rmod_alloc(m, total * sizeof *lines, err);
    int *columns = rmod_alloc(m, total * sizeof *columns, err);
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
