/* Evaluation over a split: see evaluate.h. */
#include "ics_build_config.h"
#include "train/evaluate.h"

#include "backend/backend.h"
#include "core/alloc.h"
#include "dist/dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t ics_split_rows(const ics_split_source *src)
{
    int64_t n = 0;
    for (int i = 0; i < src->count; i++) n += ics_dataset_count(src->readers[i], src->split);
    return n;
}

ics_status ics_split_read(const ics_split_source *src, int64_t first, int64_t n, uint8_t *images,
                          int32_t *labels, ics_error *err)
{
    const ics_dataset_meta *meta = ics_dataset_reader_meta(src->readers[0]);
    size_t row_bytes = (size_t)meta->height * meta->width * meta->channels;
    int64_t base = 0;
    for (int i = 0; i < src->count && n > 0; i++) {
        int64_t rows = ics_dataset_count(src->readers[i], src->split);
        if (first < base + rows) {
            int64_t off = first - base;
            int64_t take = rows - off < n ? rows - off : n;
            ics_status st = ics_dataset_read(src->readers[i], src->split, off, take,
                                             images ? images : NULL, labels ? labels : NULL, err);
            if (st) return st;
            if (images) images += (size_t)take * row_bytes;
            if (labels) labels += take;
            first += take;
            n -= take;
        }
        base += rows;
    }
    if (n > 0) return ICS_FAIL(err, ICS_ERR_INVALID, "split %s: rows past its end requested", src->split);
    return ICS_OK;
}

void ics_normalize_images(const uint8_t *in, float *out, int64_t pixels, int channels, const double *mean,
                          const double *std)
{
    float scale[ICS_DATASET_MAX_CHANNELS], shift[ICS_DATASET_MAX_CHANNELS];
    for (int c = 0; c < channels; c++) {
        /* (x/255 - m)/s = x * (1/(255 s)) - m/s */
        scale[c] = (float)(1.0 / (255.0 * std[c]));
        shift[c] = (float)(-mean[c] / std[c]);
    }
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; p++)
        for (int c = 0; c < channels; c++)
            out[p * channels + c] = (float)in[p * channels + c] * scale[c] + shift[c];
}

int ics_topk_hit(const float *logits, int classes, int32_t label, int k)
{
    float v = logits[label];
    int better = 0;
    for (int j = 0; j < classes; j++)
        if (logits[j] > v || (logits[j] == v && j < label)) better++;
    return better < k;
}

ics_status ics_evaluate(ics_model *model, const ics_split_source *src, int batch, const double *mean,
                        const double *std, int64_t max_rows, ics_eval_result *out, ics_error *err)
{
    memset(out, 0, sizeof *out);
    const ics_dataset_meta *meta = ics_dataset_reader_meta(src->readers[0]);
    int64_t total = ics_split_rows(src);
    if (max_rows > 0 && max_rows < total) total = max_rows;
    int rank = ics_dist_rank(), world = ics_dist_size();
    int64_t lo = total * rank / world, hi = total * (rank + 1) / world;
    size_t row = (size_t)meta->height * meta->width * meta->channels;
    int classes = ics_model_get_options(model)->num_classes;
    uint8_t *raw = ics_malloc(row * (size_t)batch, "evaluation images", err);
    float *x = ics_malloc_aligned(row * (size_t)batch * sizeof(float), "evaluation inputs", err);
    int32_t *labels = ics_malloc(sizeof(int32_t) * (size_t)batch, "evaluation labels", err);
    float *probs = ics_malloc(sizeof(float) * (size_t)batch * (size_t)classes, "evaluation probabilities", err);
    ics_status st = (raw && x && labels && probs) ? ICS_OK : ICS_ERR_NOMEM;
    const ics_backend_ops *ops = ics_backend_cpu();
    int was_training = ics_model_is_training(model);
    ics_model_set_training(model, 0);
    /* sums: loss, top1 hits, top5 hits, count */
    double sums[4] = {0, 0, 0, 0};
    for (int64_t first = lo; !st && first < hi; first += batch) {
        int n = (int)(hi - first < batch ? hi - first : batch);
        st = ics_split_read(src, first, n, raw, labels, err);
        if (st) break;
        ics_normalize_images(raw, x, (int64_t)n * meta->height * meta->width, meta->channels, mean, std);
        const float *logits = NULL;
        st = ics_model_forward(model, x, n, &logits, err);
        if (st) break;
        float loss = ops->softmax_xent_forward(n, classes, logits, labels, 0.0f, probs);
        sums[0] += (double)loss * n;
        for (int i = 0; i < n; i++) {
            sums[1] += ics_topk_hit(logits + (size_t)i * classes, classes, labels[i], 1);
            sums[2] += ics_topk_hit(logits + (size_t)i * classes, classes, labels[i], classes < 5 ? classes : 5);
        }
        sums[3] += n;
    }
    ics_model_set_training(model, was_training);
    free(raw);
    ics_free_aligned(x);
    free(labels);
    free(probs);
    /* Every rank joins the reduction even after a local failure, so no
     * rank waits forever; then all agree on the outcome. */
    ics_status agreed = ics_dist_agree(st, err);
    if (agreed) return agreed;
    st = ics_dist_allreduce_sum_f64(sums, 4, err);
    if (st) return st;
    out->count = (int64_t)sums[3];
    if (sums[3] > 0) {
        out->loss = sums[0] / sums[3];
        out->top1 = 100.0 * sums[1] / sums[3];
        out->top5 = 100.0 * sums[2] / sums[3];
    } else {
        out->loss = out->top1 = out->top5 = NAN;
    }
    return ICS_OK;
}
