/* icsparse-eval's work: see eval_run.h. */
#include "ics_build_config.h"
#include "train/eval_run.h"
#include "log/logger.h"

#include <icsparse/checkpoint.h>

#include "core/alloc.h"
#include "core/log.h"
#include "data/h5attr.h"
#include "dist/dist.h"
#include "io/h5_tensor.h"

#include <hdf5.h>
#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ics_status ics_eval_pick_checkpoint(const ics_config *cfg, char *path, size_t size, ics_error *err)
{
    const char *given = ics_config_string(cfg, "eval.checkpoint");
    if (given[0]) {
        snprintf(path, size, "%s", given);
        return ICS_OK;
    }
    /* the run's consolidated model (the pipeline's consolidate step),
     * else its best, else its last checkpoint */
    const char *run = ics_config_string(cfg, "run.dir");
    snprintf(path, size, "%s/model.h5", run);
    if (access(path, R_OK) == 0) return ICS_OK;
    snprintf(path, size, "%s/ckpt/best.h5", run);
    if (access(path, R_OK) == 0) return ICS_OK;
    snprintf(path, size, "%s/ckpt/last.h5", run);
    if (access(path, R_OK) == 0) return ICS_OK;
    return ICS_FAIL(err, ICS_ERR_CONFIG, "no checkpoint to evaluate: eval.checkpoint is empty and %s has no model.h5, "
                    "ckpt/best.h5 or ckpt/last.h5", run);
}

ics_status ics_eval_checkpoint(const ics_config *cfg, const char *checkpoint, ics_eval_result *out,
                               double *sparsity, ics_error *err)
{
    char dataset[1100];
    if (ics_config_string(cfg, "data.path")[0])
        snprintf(dataset, sizeof dataset, "%s", ics_config_string(cfg, "data.path"));
    else
        snprintf(dataset, sizeof dataset, "%s/%s.h5", ics_config_string(cfg, "data.dir"),
                 ics_config_string(cfg, "data.dataset"));
    ics_checkpoint_reader *r = NULL;
    ics_dataset_reader *d = NULL;
    ics_model *model = NULL;
    ics_status st = ics_checkpoint_open(checkpoint, &r, err);
    if (!st) st = ics_dataset_open(dataset, &d, err);
    if (!st) st = ics_checkpoint_load_model(r, &model, err);
    if (!st) {
        const ics_dataset_meta *meta = ics_dataset_reader_meta(d);
        const ics_model_options *mo = ics_model_get_options(model);
        if (meta->height != mo->in_h || meta->width != mo->in_w || meta->channels != mo->in_channels ||
            meta->num_classes != mo->num_classes)
            st = ICS_FAIL(err, ICS_ERR_CONFIG,
                          "%s (%dx%dx%d, %d classes) does not fit the checkpoint's model (%dx%dx%d, %d classes)",
                          dataset, meta->height, meta->width, meta->channels, meta->num_classes, mo->in_h, mo->in_w,
                          mo->in_channels, mo->num_classes);
    }
    int batch = (int)ics_config_int(cfg, "train.eval_batch_size");
    if (!st) st = ics_model_plan(model, batch, 0, err);
    const char *split = ics_config_string(cfg, "eval.split");
    if (!st) {
        ics_split_source src = {&d, 1, split};
        if (ics_split_rows(&src) == 0)
            st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s has no %s split", dataset, split);
        else {
            const ics_dataset_meta *meta = ics_dataset_reader_meta(d);
            st = ics_evaluate(model, &src, batch, meta->mean, meta->std, 0, out, err);
        }
    }
    if (!st && sparsity) *sparsity = ics_model_sparsity(model);
    ics_model_destroy(model);
    ics_dataset_close(d);
    ics_checkpoint_close(r);
    return st;
}

ics_status ics_eval_logits(const char *checkpoint, const char *inputs_path, const char *logits_path, ics_error *err)
{
    ics_checkpoint_reader *r = NULL;
    ics_model *model = NULL;
    float *x = NULL, *logits = NULL;
    hid_t in = -1;
    ics_status st = ics_checkpoint_open(checkpoint, &r, err);
    if (!st) st = ics_checkpoint_load_model(r, &model, err);
    if (st) goto out;
    ics_h5_quiet();
    in = H5Fopen(inputs_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (in < 0) {
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open inputs (not an HDF5 file?)", inputs_path);
        goto out;
    }
    int ndim = 0;
    int64_t shape[8];
    st = ics_h5_tensor_shape(in, "/inputs", &ndim, shape, inputs_path, err);
    if (st) goto out;
    const ics_model_options *mo = ics_model_get_options(model);
    if (ndim != 4 || shape[1] != mo->in_h || shape[2] != mo->in_w || shape[3] != mo->in_channels) {
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: /inputs must be float [N, %d, %d, %d] (NHWC) for this model", inputs_path,
                      mo->in_h, mo->in_w, mo->in_channels);
        goto out;
    }
    int64_t n = shape[0];
    size_t row = (size_t)mo->in_h * mo->in_w * mo->in_channels;
    x = ics_malloc_aligned((size_t)n * row * sizeof(float) + 1, "inputs", err);
    logits = ics_malloc((size_t)n * mo->num_classes * sizeof(float) + 1, "logits", err);
    if (!x || !logits) {
        st = ICS_ERR_NOMEM;
        goto out;
    }
    st = ics_h5_read_tensor(in, "/inputs", ICS_H5_F32, x, 4, shape, inputs_path, err);
    int batch = n < 64 ? (int)(n ? n : 1) : 64;
    if (!st) st = ics_model_plan(model, batch, 0, err);
    for (int64_t first = 0; !st && first < n; first += batch) {
        int b = (int)(n - first < batch ? n - first : batch);
        const float *out = NULL;
        st = ics_model_forward(model, x + (size_t)first * row, b, &out, err);
        if (!st) memcpy(logits + (size_t)first * mo->num_classes, out, sizeof(float) * (size_t)b * mo->num_classes);
    }
    if (!st) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp-%ld", logits_path, (long)getpid());
        hid_t o = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (o < 0) {
            st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create", tmp);
        } else {
            int64_t lshape[2] = {n, mo->num_classes};
            st = ics_h5_write_tensor(o, "/logits", ICS_H5_F32, logits, 2, lshape, tmp, err);
            if (!st) st = ics_h5_attr_put_string(o, "format", "icsparse-logits", tmp, err);
            if (!st) st = ics_h5_attr_put_string(o, "checkpoint", checkpoint, tmp, err);
            if (H5Fclose(o) < 0 && !st) st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot close", tmp);
            if (!st && rename(tmp, logits_path) != 0)
                st = ICS_FAIL(err, ICS_ERR_IO, "cannot rename %s to %s", tmp, logits_path);
            if (st) remove(tmp);
        }
    }
out:
    if (in >= 0) H5Fclose(in);
    ics_free_aligned(x);
    free(logits);
    ics_model_destroy(model);
    ics_checkpoint_close(r);
    return st;
}

ics_status ics_eval_write_results(const ics_config *cfg, const char *checkpoint, const char *split,
                                  const ics_eval_result *res, double sparsity, ics_error *err)
{
    if (ics_dist_rank() != 0) return ICS_OK;
    char path[1100], tmp[1200];
    snprintf(path, sizeof path, "%s/results.json", ics_config_string(cfg, "run.dir"));
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    ics_status st = ics_log_mkdirs(ics_config_string(cfg, "run.dir"), err);
    if (st) return st;
    FILE *f = fopen(tmp, "w");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write results: %s", tmp, strerror(errno));
    fprintf(f, "{\n  \"checkpoint\": \"%s\",\n  \"split\": \"%s\",\n  \"count\": %lld,\n", checkpoint, split,
            (long long)res->count);
    fprintf(f, "  \"%s_loss\": %.10g,\n  \"%s_top1\": %.10g,\n  \"%s_top5\": %.10g,\n", split, res->loss, split,
            res->top1, split, res->top5);
    fprintf(f, "  \"sparsity\": %.10g\n}\n", sparsity);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write results", path);
    }
    return ICS_OK;
}
