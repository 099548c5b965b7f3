/*
 * Mask creators (mask.h): unstructured, filter, channel, block and N:M
 * masks from weight magnitudes, layer-wise or with one global threshold.
 */
#include "ics_build_config.h"
#include "sparsify/mask.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A tensor seen as [O, I, K]: output channels, input channels, kernel
 * positions (torch layout index = (o * I + i) * K + k). A 1-D tensor is
 * [numel, 1, 1]. */
typedef struct layout {
    int64_t o, i, k;
} layout;

static layout layout_of(int ndim, const int64_t *shape, size_t numel)
{
    layout l = {(int64_t)numel, 1, 1};
    if (ndim >= 2) {
        l.o = shape[0];
        l.i = shape[1];
        l.k = 1;
        for (int d = 2; d < ndim; d++)
            l.k *= shape[d];
    }
    return l;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Number of scoring units of a tensor for a mask kind (N:M: its groups). */
static int64_t unit_count(const ics_mask_kind *kind, layout l)
{
    switch (kind->type) {
    case ICS_MASK_FILTER:
        return l.o;
    case ICS_MASK_CHANNEL:
        return l.i;
    case ICS_MASK_BLOCK:
        return ceil_div(l.o, kind->rows) * l.k * ceil_div(l.i, kind->cols);
    case ICS_MASK_NM:
        return l.o * l.k * ceil_div(l.i, kind->m);
    default:
        return l.o * l.i * l.k;
    }
}

/* The unit of element e (torch layout). Blocks and N:M groups run along
 * input channels at a fixed kernel position: the [O, kh, kw, I] view. */
static int64_t unit_of(const ics_mask_kind *kind, layout l, int64_t e)
{
    int64_t o = e / (l.i * l.k), rem = e % (l.i * l.k);
    int64_t i = rem / l.k, k = rem % l.k;
    switch (kind->type) {
    case ICS_MASK_FILTER:
        return o;
    case ICS_MASK_CHANNEL:
        return i;
    case ICS_MASK_BLOCK:
        return ((o / kind->rows) * l.k + k) * ceil_div(l.i, kind->cols) + i / kind->cols;
    case ICS_MASK_NM:
        return (o * l.k + k) * ceil_div(l.i, kind->m) + i / kind->m;
    default:
        return e;
    }
}

ics_status ics_mask_check(const ics_mask_kind *kind, const char *name, int ndim,
                          const int64_t *shape, ics_error *err)
{
    (void)shape;
    if ((kind->type == ICS_MASK_NM || kind->type == ICS_MASK_BLOCK) && ndim != 2 && ndim != 4)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "tensor %s: a %s mask needs a 2-D (linear) or 4-D (conv) weight, it has "
                        "%d dimensions",
                        name, kind->type == ICS_MASK_NM ? "N:M" : "block", ndim);
    if (kind->type == ICS_MASK_CHANNEL && ndim < 2)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "tensor %s: a channel mask needs input channels (>= 2 dimensions)", name);
    return ICS_OK;
}

/* Mean |w| of each unit of one tensor into score[0..units) (and the unit
 * sizes when size is not NULL). NaN scores become +inf: a NaN weight is
 * never ranked among the smallest. */
static ics_status score_units(const ics_mask_kind *kind, const ics_mask_target *t, float *score,
                              uint32_t *size, int64_t units, ics_error *err)
{
    layout l = layout_of(t->ndim, t->shape, t->numel);
    if (kind->type == ICS_MASK_UNSTRUCTURED) {
        for (size_t e = 0; e < t->numel; e++) {
            float a = fabsf(t->weight[e]);
            score[e] = isnan(a) ? INFINITY : a;
            if (size) size[e] = 1;
        }
        return ICS_OK;
    }
    double *sum = ics_calloc((size_t)units, sizeof *sum, "mask unit sums", err);
    uint32_t *cnt = ics_calloc((size_t)units, sizeof *cnt, "mask unit counts", err);
    if (!sum || !cnt) {
        free(sum);
        free(cnt);
        return ICS_ERR_NOMEM;
    }
    for (size_t e = 0; e < t->numel; e++) {
        int64_t u = unit_of(kind, l, (int64_t)e);
        sum[u] += fabs((double)t->weight[e]);
        cnt[u]++;
    }
    for (int64_t u = 0; u < units; u++) {
        double s = cnt[u] ? sum[u] / cnt[u] : 0.0;
        score[u] = isnan(s) ? INFINITY : (float)s;
        if (size) size[u] = cnt[u];
    }
    free(sum);
    free(cnt);
    return ICS_OK;
}

/* k-th smallest value (0-based) of a[0..n), reordering a (quickselect). */
static float select_kth(float *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* Marks the k lowest of score[0..n) (ties: lower index first) in pruned[]. */
static ics_status prune_lowest(const float *score, int64_t n, int64_t k, unsigned char *pruned,
                               ics_error *err)
{
    memset(pruned, 0, (size_t)n);
    if (k <= 0) return ICS_OK;
    if (k >= n) {
        memset(pruned, 1, (size_t)n);
        return ICS_OK;
    }
    float *copy = ics_malloc((size_t)n * sizeof *copy, "mask scores", err);
    if (!copy) return ICS_ERR_NOMEM;
    memcpy(copy, score, (size_t)n * sizeof *copy);
    float thr = select_kth(copy, n, k - 1);
    free(copy);
    int64_t taken = 0;
    for (int64_t u = 0; u < n; u++)
        if (score[u] < thr) {
            pruned[u] = 1;
            taken++;
        }
    for (int64_t u = 0; u < n && taken < k; u++)
        if (score[u] == thr) {
            pruned[u] = 1;
            taken++;
        }
    return ICS_OK;
}

/* N:M on one tensor: in each group the g - min(g, N) lowest (score, index)
 * elements are zeroed. */
static void nm_mask(const ics_mask_kind *kind, ics_mask_target *t)
{
    layout l = layout_of(t->ndim, t->shape, t->numel);
    int64_t mm = kind->m;
    for (int64_t o = 0; o < l.o; o++)
        for (int64_t k = 0; k < l.k; k++)
            for (int64_t i0 = 0; i0 < l.i; i0 += mm) {
                int64_t g = l.i - i0 < mm ? l.i - i0 : mm;
                int64_t drop = g - (g < kind->n ? g : kind->n);
                for (int64_t a = 0; a < g; a++) {
                    int64_t ea = (o * l.i + i0 + a) * l.k + k;
                    float sa = fabsf(t->weight[ea]);
                    if (isnan(sa)) sa = INFINITY;
                    int64_t lower = 0; /* elements ranked below a */
                    for (int64_t b = 0; b < g; b++) {
                        if (b == a) continue;
                        float sb = fabsf(t->weight[(o * l.i + i0 + b) * l.k + k]);
                        if (isnan(sb)) sb = INFINITY;
                        if (sb < sa || (sb == sa && b < a)) lower++;
                    }
                    t->mask[ea] = lower < drop ? 0.0f : 1.0f;
                }
            }
}

static void fill_ones(ics_mask_target *t)
{
    for (size_t e = 0; e < t->numel; e++)
        t->mask[e] = 1.0f;
}

/* Writes the mask of one tensor from its units' pruned flags. */
static void write_mask(const ics_mask_kind *kind, ics_mask_target *t, const unsigned char *pruned)
{
    layout l = layout_of(t->ndim, t->shape, t->numel);
    for (size_t e = 0; e < t->numel; e++)
        t->mask[e] = pruned[unit_of(kind, l, (int64_t)e)] ? 0.0f : 1.0f;
}

ics_status ics_mask_compute_layerwise(const ics_mask_kind *kind, ics_mask_target *targets,
                                      size_t count, const double *sparsity, ics_error *err)
{
    for (size_t t = 0; t < count; t++) {
        ics_mask_target *tg = &targets[t];
        ics_status st = ics_mask_check(kind, tg->name, tg->ndim, tg->shape, err);
        if (st != ICS_OK) return st;
        if (!(sparsity[t] > 0)) {
            fill_ones(tg);
            continue;
        }
        if (kind->type == ICS_MASK_NM) {
            nm_mask(kind, tg);
            continue;
        }
        layout l = layout_of(tg->ndim, tg->shape, tg->numel);
        int64_t units = unit_count(kind, l);
        float *score = ics_malloc((size_t)units * sizeof *score, "mask scores", err);
        unsigned char *pruned = ics_malloc((size_t)units, "mask flags", err);
        if (!score || !pruned) {
            free(score);
            free(pruned);
            return ICS_ERR_NOMEM;
        }
        st = score_units(kind, tg, score, NULL, units, err);
        int64_t k = llround(sparsity[t] * (double)units);
        if (st == ICS_OK) st = prune_lowest(score, units, k, pruned, err);
        if (st == ICS_OK) write_mask(kind, tg, pruned);
        free(score);
        free(pruned);
        if (st != ICS_OK) return st;
    }
    return ICS_OK;
}

typedef struct ranked_unit {
    float score;
    uint32_t size;
    int64_t index; /* into the concatenated unit list */
} ranked_unit;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked_unit *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

ics_status ics_mask_compute_global(const ics_mask_kind *kind, ics_mask_target *targets,
                                   size_t count, double sparsity, ics_error *err)
{
    if (kind->type == ICS_MASK_NM || !(sparsity > 0)) {
        /* N:M is a per-group rule: the same mask whichever the scope */
        double *s = ics_malloc((count ? count : 1) * sizeof *s, "mask sparsities", err);
        if (!s) return ICS_ERR_NOMEM;
        for (size_t t = 0; t < count; t++)
            s[t] = sparsity;
        ics_status st = ics_mask_compute_layerwise(kind, targets, count, s, err);
        free(s);
        return st;
    }
    int64_t total_units = 0, total_elems = 0;
    int64_t *first = ics_malloc((count + 1) * sizeof *first, "mask unit offsets", err);
    if (!first) return ICS_ERR_NOMEM;
    for (size_t t = 0; t < count; t++) {
        ics_status st =
            ics_mask_check(kind, targets[t].name, targets[t].ndim, targets[t].shape, err);
        if (st != ICS_OK) {
            free(first);
            return st;
        }
        first[t] = total_units;
        total_units +=
            unit_count(kind, layout_of(targets[t].ndim, targets[t].shape, targets[t].numel));
        total_elems += (int64_t)targets[t].numel;
    }
    first[count] = total_units;
    float *score =
        ics_malloc((size_t)(total_units ? total_units : 1) * sizeof *score, "mask scores", err);
    uint32_t *size =
        ics_malloc((size_t)(total_units ? total_units : 1) * sizeof *size, "mask unit sizes", err);
    unsigned char *pruned = ics_malloc((size_t)(total_units ? total_units : 1), "mask flags", err);
    ics_status st = ICS_OK;
    if (!score || !size || !pruned) {
        st = ICS_ERR_NOMEM;
        goto done;
    }
    for (size_t t = 0; t < count && st == ICS_OK; t++)
        st = score_units(kind, &targets[t], score + first[t], size + first[t],
                         first[t + 1] - first[t], err);
    if (st != ICS_OK) goto done;
    int64_t budget = llround(sparsity * (double)total_elems);
    if (kind->type == ICS_MASK_UNSTRUCTURED) {
        /* every unit is one element: the budget is a unit count */
        st = prune_lowest(score, total_units, budget, pruned, err);
    } else {
        /* structured units differ in size: lowest first while they fit */
        ranked_unit *r = ics_malloc((size_t)total_units * sizeof *r, "mask ranking", err);
        if (!r) {
            st = ICS_ERR_NOMEM;
            goto done;
        }
        for (int64_t u = 0; u < total_units; u++)
            r[u] = (ranked_unit){score[u], size[u], u};
        qsort(r, (size_t)total_units, sizeof *r, ranked_cmp);
        for (int64_t u = 0; u < total_units; u++)
            pruned[u] = 0;
        int64_t zeroed = 0;
        for (int64_t u = 0; u < total_units && zeroed + r[u].size <= budget; u++) {
            pruned[r[u].index] = 1;
            zeroed += r[u].size;
        }
        free(r);
    }
    if (st == ICS_OK)
        for (size_t t = 0; t < count; t++)
            write_mask(kind, &targets[t], pruned + first[t]);
done:
    free(first);
    free(score);
    free(size);
    free(pruned);
    return st;
}
