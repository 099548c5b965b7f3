/*
 * src/train/evaluate.h: loss, top-1 and top-5 of a model on a dataset split,
 * each rank measuring its contiguous slice of the split's rows and the sums
 * reduced over ranks, so every rank gets the exact figures of the whole
 * split (no padding, no duplicates).
 */
#ifndef ICS_TRAIN_EVALUATE_H
#define ICS_TRAIN_EVALUATE_H

#include <stdint.h>
#include <icsparse/model.h>
#include <icsparse/status.h>

#include "data/dataset.h"

typedef struct ics_eval_result {
    double loss;   /* mean cross-entropy (no label smoothing) */
    double top1;   /* percent */
    double top5;   /* percent */
    int64_t count; /* samples measured, over all ranks */
} ics_eval_result;

/* A split spread over one dataset file or several shards (rows are the
 * concatenation of the files' rows, in the order given). */
typedef struct ics_split_source {
    ics_dataset_reader **readers;
    int count;
    const char *split;
} ics_split_source;

int64_t ics_split_rows(const ics_split_source *src);
/* Reads global rows [first, first+n) (across files) as uint8 NHWC + labels. */
ics_status ics_split_read(const ics_split_source *src, int64_t first, int64_t n, uint8_t *images,
                          int32_t *labels, ics_error *err);

/* uint8 NHWC images -> float NHWC, (x/255 - mean[c]) / std[c]. */
void ics_normalize_images(const uint8_t *in, float *out, int64_t pixels, int channels, const double *mean,
                          const double *std);

/* Evaluates model (which must be planned for at least `batch` samples) in
 * eval mode on the split; restores the model's previous mode. max_rows > 0
 * limits the rows (the first max_rows of the split). */
ics_status ics_evaluate(ics_model *model, const ics_split_source *src, int batch, const double *mean,
                        const double *std, int64_t max_rows, ics_eval_result *out, ics_error *err);

/* Top-k hits of one row of logits: 1 if the label is among the k largest
 * (ties broken toward the lower class index, as a stable sort would). */
int ics_topk_hit(const float *logits, int classes, int32_t label, int k);

#endif
