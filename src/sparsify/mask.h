/*
 * src/sparsify/mask.h: mask creators. A mask is one 0/1 float per weight
 * element (torch layout). A creator splits a tensor into scoring units,
 * scores each unit by the mean |w| of its elements, and zeroes the lowest
 * units:
 *   unstructured  one unit per element
 *   filter        one unit per output channel (dim 0)
 *   channel       one unit per input channel (dim 1)
 *   block RxC     R output channels x C consecutive input channels at one
 *                 kernel position (conv weights are seen as [O, kh, kw, I]:
 *                 input channels last, as SparseML's FourBlockMaskCreator);
 *                 a trailing partial block is scored by its own elements
 *   N:M           groups of M consecutive input channels at one output
 *                 channel and kernel position keep their N largest |w|
 *                 (a trailing group of g < M keeps min(g, N): zero padding)
 * Layer-wise: each tensor loses round(s * units) units. Global: one ranking
 * over the units of all tensors; the lowest units are zeroed while the
 * zeroed elements stay <= round(s * elements) (exact for unstructured).
 * Ties are broken by position (lower index pruned first), so masks are
 * deterministic.
 */
#ifndef ICS_SPARSIFY_MASK_H
#define ICS_SPARSIFY_MASK_H

#include <stddef.h>
#include <stdint.h>

#include <icsparse/recipe.h>
#include <icsparse/status.h>

/* The structure of a mask. */
typedef struct ics_mask_kind {
    ics_mask_type type;
    int n, m;       /* ICS_MASK_NM */
    int rows, cols; /* ICS_MASK_BLOCK */
} ics_mask_kind;

/* One tensor to mask: weights (read), mask (written), torch shape. */
typedef struct ics_mask_target {
    const char *name;
    const float *weight;
    float *mask;
    int ndim;
    const int64_t *shape;
    size_t numel;
} ics_mask_target;

/* Checks that kind can mask a tensor of this shape (N:M and blocks need a
 * 2-D or 4-D weight; channel needs >= 2 dims); error names the tensor. */
ics_status ics_mask_check(const ics_mask_kind *kind, const char *name, int ndim,
                          const int64_t *shape, ics_error *err);

/* Layer-wise: writes each target's mask for its own sparsity[i] (N:M
 * ignores the value unless it is 0, which gives an all-ones mask). */
ics_status ics_mask_compute_layerwise(const ics_mask_kind *kind, ics_mask_target *targets,
                                      size_t count, const double *sparsity, ics_error *err);
/* Global: one threshold over all targets for `sparsity` of their elements.
 * N:M has no global form: it is applied per tensor. */
ics_status ics_mask_compute_global(const ics_mask_kind *kind, ics_mask_target *targets,
                                   size_t count, double sparsity, ics_error *err);

#endif
