/*
 * TrainableParamsModifier: between its start and end the selected
 * parameters are trainable or frozen (torch's requires_grad). A frozen
 * parameter gets no gradient in torch, so the optimizer skips it entirely:
 * no weight decay, no momentum, no change to its state. icsparse's
 * optimizer steps every view, so the manager zeroes the frozen gradients,
 * saves the frozen tensors and their optimizer state before the step and
 * restores them after it: the step leaves them exactly as they were.
 * At the end (end_epoch != -1) the flags before the start come back.
 */
#include "ics_build_config.h"
#include "sparsify/manager_internal.h"
#include "core/alloc.h"
#include "core/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

ics_status mgr_trainable_create(ics_manager *m, mgr_mod *mm, ics_error *err)
{
    int nt = ics_model_num_tensors(m->model);
    unsigned char *sel = ics_calloc((size_t)nt, 1, "trainable selection", err);
    mgr_trainable *t = ics_calloc(1, sizeof *t, "trainable state", err);
    if (!sel || !t) {
        free(sel);
        free(t);
        return ICS_ERR_NOMEM;
    }
    mm->trainable = t;
    ics_status st = mgr_select(m, &mm->mod->u.trainable.params, sel, err);
    if (st != ICS_OK) {
        free(sel);
        return ics_error_prefix(err, "TrainableParamsModifier (line %d): ", mm->mod->line);
    }
    for (int i = 0; i < nt; i++)
        t->count += sel[i];
    t->tensor = ics_malloc((t->count ? t->count : 1) * sizeof *t->tensor, "trainable tensors", err);
    t->was = ics_calloc(t->count ? t->count : 1, 1, "trainable flags", err);
    if (!t->tensor || !t->was) {
        free(sel);
        return ICS_ERR_NOMEM;
    }
    size_t k = 0;
    for (int i = 0; i < nt; i++)
        if (sel[i]) t->tensor[k++] = i;
    free(sel);
    /* room to save each tensor this modifier may freeze: data + optimizer slots */
    if (!mm->mod->u.trainable.trainable) {
        int slots = m->optim ? ics_optim_slot_count(m->optim) : 0;
        for (size_t j = 0; j < t->count; j++) {
            int ti = t->tensor[j];
            if (m->save_offset[ti] != SIZE_MAX) continue;
            m->save_offset[ti] = m->save_floats;
            m->save_floats += (size_t)ics_model_tensor(m->model, ti)->numel * (size_t)(1 + slots);
        }
    }
    return ICS_OK;
}

void mgr_trainable_destroy(mgr_trainable *t)
{
    if (!t) return;
    free(t->tensor);
    free(t->was);
    free(t);
}

void mgr_trainable_start(ics_manager *m, mgr_mod *mm)
{
    mgr_trainable *t = mm->trainable;
    int trainable = mm->mod->u.trainable.trainable;
    for (size_t j = 0; j < t->count; j++) {
        t->was[j] = m->frozen[t->tensor[j]];
        m->frozen[t->tensor[j]] = (unsigned char)!trainable;
    }
    ICS_INFO("TrainableParamsModifier (line %d): %zu parameters %s", mm->mod->line, t->count,
             trainable ? "trainable" : "frozen");
}

void mgr_trainable_end(ics_manager *m, mgr_mod *mm)
{
    mgr_trainable *t = mm->trainable;
    for (size_t j = 0; j < t->count; j++)
        m->frozen[t->tensor[j]] = t->was[j];
}

/* Copies a frozen tensor and its optimizer state to (dir 0) or from (dir 1)
 * the save area. */
static void frozen_copy(ics_manager *m, int ti, int dir)
{
    const ics_tensor_info *info = ics_model_tensor(m->model, ti);
    size_t n = (size_t)info->numel;
    float *save = m->save + m->save_offset[ti];
    float *data = ics_model_tensor_data(m->model, ti);
    if (dir == 0)
        memcpy(save, data, n * sizeof *data);
    else
        memcpy(data, save, n * sizeof *data);
    if (!m->optim || m->optim_index[ti] < 0) return;
    int slots = ics_optim_slot_count(m->optim);
    for (int s = 0; s < slots; s++) {
        float *state = ics_optim_slot_param(m->optim, s, (size_t)m->optim_index[ti]);
        float *keep = save + n * (size_t)(1 + s);
        if (dir == 0)
            memcpy(keep, state, n * sizeof *state);
        else
            memcpy(state, keep, n * sizeof *state);
    }
}

void mgr_trainable_before_step(ics_manager *m)
{
    int nt = ics_model_num_tensors(m->model);
    m->frozen_saved = 0;
    for (int ti = 0; ti < nt; ti++) {
        if (!m->frozen[ti]) continue;
        float *g = ics_model_tensor_grad(m->model, ti);
        size_t n = (size_t)ics_model_tensor(m->model, ti)->numel;
        if (g) memset(g, 0, n * sizeof *g);
        if (m->save_offset[ti] != SIZE_MAX) frozen_copy(m, ti, 0);
        m->frozen_saved = 1;
    }
}

void mgr_trainable_after_step(ics_manager *m)
{
    if (!m->frozen_saved) return;
    int nt = ics_model_num_tensors(m->model);
    for (int ti = 0; ti < nt; ti++)
        if (m->frozen[ti] && m->save_offset[ti] != SIZE_MAX) frozen_copy(m, ti, 1);
    m->frozen_saved = 0;
}
