/* Checkpoints with random weights for the export tests (test_export_ckpt.h). */
#include "test_export_ckpt.h"

#include <stdio.h>
#include <string.h>

#include <icsparse/checkpoint.h>

#include "test_util.h"

ics_model *export_test_model(const char *arch, const ics_model_options *opts, uint64_t seed)
{
    ics_error err;
    ics_model *m = NULL;
    if (ics_model_create(arch, opts, &m, &err) != ICS_OK) {
        fprintf(stderr, "export_test_model: %s\n", err.message);
        return NULL;
    }
    ics_model_init_params(m, seed);
    uint64_t rng = seed * 7919u + 1u;
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        float *x = ics_model_tensor_data(m, i);
        size_t n = (size_t)ti->numel;
        size_t len = strlen(ti->name);
        switch (ti->kind) {
        case ICS_TENSOR_WEIGHT:
            /* pruned: every third element exactly zero */
            for (size_t k = 0; k < n; k += 3)
                x[k] = 0.0f;
            break;
        case ICS_TENSOR_BIAS:
            ics_test_fill_uniform(x, n, -0.1f, 0.1f, &rng);
            break;
        case ICS_TENSOR_BN_WEIGHT:
            ics_test_fill_uniform(x, n, 0.5f, 1.5f, &rng);
            break;
        case ICS_TENSOR_BN_BIAS:
            ics_test_fill_uniform(x, n, -0.3f, 0.3f, &rng);
            break;
        case ICS_TENSOR_BUFFER:
            if (len > 11 && strcmp(ti->name + len - 11, "running_var") == 0)
                ics_test_fill_uniform(x, n, 0.5f, 2.0f, &rng);
            else
                ics_test_fill_uniform(x, n, -0.3f, 0.3f, &rng);
            break;
        case ICS_TENSOR_COUNTER:
            *ics_model_tensor_counter(m, i) = 12345;
            break;
        }
    }
    return m;
}

int export_test_write_checkpoint(ics_model *model, const char *path, const char *arch_override,
                                 int qat, const char *recipe)
{
    ics_error err;
    ics_checkpoint_info info;
    ics_checkpoint_info_init(&info);
    snprintf(info.arch, sizeof info.arch, "%s",
             arch_override ? arch_override : ics_model_arch(model));
    info.model_options = *ics_model_get_options(model);
    snprintf(info.kind, sizeof info.kind, "final");
    info.world_size = 1;
    info.qat_active = qat;
    ics_checkpoint_writer *w = NULL;
    ics_status st = ics_checkpoint_begin(path, &w, &err);
    if (st == ICS_OK) st = ics_checkpoint_put_info(w, &info, &err);
    if (st == ICS_OK) st = ics_checkpoint_put_model(w, model, &err);
    if (st == ICS_OK && recipe) st = ics_checkpoint_put_text(w, "recipe", recipe, &err);
    if (st == ICS_OK) {
        st = ics_checkpoint_commit(w, &err);
    } else if (w) {
        ics_checkpoint_abort(w);
    }
    if (st != ICS_OK) fprintf(stderr, "export_test_write_checkpoint: %s\n", err.message);
    return st == ICS_OK ? 0 : -1;
}

int export_test_write_resized(ics_model *model, int in_h, int in_w, const char *path)
{
    ics_model_options o = *ics_model_get_options(model);
    o.in_h = in_h;
    o.in_w = in_w;
    ics_error err;
    ics_model *r = NULL;
    if (ics_model_create(ics_model_arch(model), &o, &r, &err) != ICS_OK) {
        fprintf(stderr, "export_test_write_resized: %s\n", err.message);
        return -1;
    }
    size_t n1, n2;
    float *a = ics_model_params(model, &n1), *b = ics_model_params(r, &n2);
    int ok = n1 == n2;
    if (ok) memcpy(b, a, n1 * sizeof *a);
    a = ics_model_buffers(model, &n1);
    b = ics_model_buffers(r, &n2);
    ok = ok && n1 == n2;
    if (ok) memcpy(b, a, n1 * sizeof *a);
    int64_t *c1 = ics_model_counters(model, &n1), *c2 = ics_model_counters(r, &n2);
    ok = ok && n1 == n2;
    if (ok) memcpy(c2, c1, n1 * sizeof *c1);
    int rc = ok ? export_test_write_checkpoint(r, path, NULL, 0, NULL) : -1;
    ics_model_destroy(r);
    return rc;
}
