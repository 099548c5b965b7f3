/*
 * src/train/optim_internal.h: the optimizer's layout, shared by optim.c
 * (creation, state slots, groups) and the update kernels (optim_sgd.c,
 * optim_adam.c, optim_clip.c). Not part of the optimizer's interface.
 */
#ifndef ICS_TRAIN_OPTIM_INTERNAL_H
#define ICS_TRAIN_OPTIM_INTERNAL_H

#include "train/optim.h"

#define ICS_OPTIM_MAX_SLOTS 2
/* Elements per partial sum in the gradient-norm reduction: fixed, so the
 * summation order never depends on the number of threads. */
#define ICS_OPTIM_NORM_BLOCK 8192
/* Loops shorter than this stay on one thread (the fork costs more). */
#define ICS_OPTIM_PARALLEL_MIN 32768

struct ics_optim {
    ics_optim_hparams hp;
    ics_optim_group *groups;
    int n_groups;
    ics_param_view *params;
    size_t n_params;
    size_t *offsets;     /* per parameter: first float in each slot slab */
    size_t slab_floats;  /* floats per slot slab */
    int n_slots;
    const char *slot_names[ICS_OPTIM_MAX_SLOTS];
    float *slots[ICS_OPTIM_MAX_SLOTS];
    int64_t steps;
    size_t *first_block;   /* per parameter: its first norm block */
    size_t *block_param;   /* per norm block: its parameter */
    double *norm_partials; /* one per norm block */
    size_t n_blocks;
};

/* The kernels: one optimizer step over one parameter. step is the 1-based
 * index of this step (torch's state["step"] after its increment). */
void ics_optim_sgd_update(const ics_optim *opt, size_t index, int64_t step);
void ics_optim_adam_update(const ics_optim *opt, size_t index, int64_t step);

#endif
