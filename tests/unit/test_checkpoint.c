/* The checkpoint format: exact round trips of model, optimizer and EMA
 * state, text and masks; atomic writes; every refusal with its message. */
#include "ics_build_config.h"
#include "test_util.h"

#include <icsparse/checkpoint.h>
#include "train/ema.h"
#include "train/optim.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp;

static ics_model *small_model(int num_classes, uint64_t seed)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = num_classes;
    o.in_channels = 1;
    o.in_h = o.in_w = 28;
    ics_model *m = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_model_create("simple_cnn", &o, &m, &err), ICS_OK);
    ics_model_init_params(m, seed);
    return m;
}

static char *path_of(const char *name)
{
    char *p = malloc(strlen(tmp) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmp, name);
    return p;
}

static ics_optim *sgd_over(ics_model *m, ics_param_view *views, size_t *n)
{
    size_t k = 0;
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *t = ics_model_tensor(m, i);
        if (t->kind == ICS_TENSOR_BUFFER || t->kind == ICS_TENSOR_COUNTER) continue;
        views[k] = (ics_param_view){t->name, ics_model_tensor_data(m, i), ics_model_tensor_grad(m, i),
                                    (size_t)t->numel, t->ndim, 0};
        k++;
    }
    *n = k;
    ics_optim_hparams hp;
    ics_optim_hparams_default(&hp, ICS_OPTIM_SGD);
    hp.momentum = 0.9;
    ics_optim_group g = {1.0, 5e-4};
    ics_optim *opt = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_optim_create(&opt, &hp, &g, 1, views, k, &err), ICS_OK);
    return opt;
}

static void test_round_trip_is_exact(void)
{
    ics_error err;
    ics_model *a = small_model(10, 1);
    ics_param_view views[64];
    size_t nv;
    ics_optim *opt = sgd_over(a, views, &nv);
    /* Some optimizer state: fake gradients and two steps. */
    size_t ng;
    float *grads = ics_model_grads(a, &ng);
    for (size_t i = 0; i < ng; i++) grads[i] = (float)((i % 13) - 6) * 1e-3f;
    ics_optim_step(opt);
    ics_optim_step(opt);
    int64_t *counters = ics_model_counters(a, &ng);
    counters[0] = 1234567890123LL;
    size_t np, nb;
    ics_model_params(a, &np);
    ics_model_buffers(a, &nb);
    ics_ema_config ec = {ICS_EMA_CONSTANT, 0.9, 1, 0, 0, 1, 128, 5};
    ics_ema *ema = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_ema_create(&ema, &ec, np, nb, &err), ICS_OK);
    ics_ema_update(ema, 1.0, ics_model_params(a, NULL), ics_model_buffers(a, NULL));

    ics_checkpoint_info info;
    ics_checkpoint_info_init(&info);
    snprintf(info.arch, sizeof info.arch, "simple_cnn");
    info.model_options = *ics_model_get_options(a);
    info.epoch = 2.5;
    info.global_step = 1171;
    info.val_top1 = 0.91;
    char *path = path_of("a.h5");
    ics_checkpoint_writer *w = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_checkpoint_begin(path, &w, &err), ICS_OK);
    CU_ASSERT(access(path, F_OK) != 0); /* nothing under the final name yet */
    CU_ASSERT_EQUAL(ics_checkpoint_put_info(w, &info, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_checkpoint_put_model(w, a, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_checkpoint_put_optim(w, a, opt, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_checkpoint_put_ema(w, a, ema, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_checkpoint_put_text(w, "recipe", "version: 1.1.0\nmodifiers: []\n", &err), ICS_OK);
    float mask[6] = {1, 0, 1, 1, 0, 0};
    int64_t mshape[2] = {2, 3};
    CU_ASSERT_EQUAL(ics_checkpoint_put_tensor(w, "/masks/x.weight", mask, 2, mshape, 1, &err), ICS_OK);
    CU_ASSERT_EQUAL_FATAL(ics_checkpoint_commit(w, &err), ICS_OK);
    CU_ASSERT(access(path, F_OK) == 0);

    ics_checkpoint_reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_checkpoint_open(path, &r, &err), ICS_OK);
    const ics_checkpoint_info *ri = ics_checkpoint_get_info(r);
    CU_ASSERT_STRING_EQUAL(ri->arch, "simple_cnn");
    CU_ASSERT_EQUAL(ri->global_step, 1171);
    CU_ASSERT_DOUBLE_EQUAL(ri->epoch, 2.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(ri->val_top1, 0.91, 0);
    CU_ASSERT(isnan(ri->test_top1));
    ics_model *b = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_checkpoint_create_model(r, &b, &err), ICS_OK);
    CU_ASSERT_EQUAL(memcmp(ics_model_params(a, NULL), ics_model_params(b, NULL), np * 4), 0);
    CU_ASSERT_EQUAL(memcmp(ics_model_buffers(a, NULL), ics_model_buffers(b, NULL), nb * 4), 0);
    CU_ASSERT_EQUAL(ics_model_counters(b, NULL)[0], 1234567890123LL);
    ics_param_view views_b[64];
    ics_optim *opt_b = sgd_over(b, views_b, &nv);
    CU_ASSERT_EQUAL(ics_checkpoint_get_optim(r, b, opt_b, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_optim_step_count(opt_b), 2);
    size_t slab_a, slab_b;
    float *sa = ics_optim_slot_slab(opt, 0, &slab_a), *sb = ics_optim_slot_slab(opt_b, 0, &slab_b);
    CU_ASSERT_EQUAL_FATAL(slab_a, slab_b);
    CU_ASSERT_EQUAL(memcmp(sa, sb, slab_a * 4), 0);
    ics_ema *ema_b = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_ema_create(&ema_b, &ec, np, nb, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_checkpoint_get_ema(r, b, ema_b, &err), ICS_OK);
    CU_ASSERT_EQUAL(memcmp(ics_ema_params(ema), ics_ema_params(ema_b), np * 4), 0);
    CU_ASSERT_EQUAL(ics_ema_n_averaged(ema_b), ics_ema_n_averaged(ema));
    char *text = NULL;
    CU_ASSERT_EQUAL(ics_checkpoint_get_text(r, "recipe", &text, &err), ICS_OK);
    CU_ASSERT_STRING_EQUAL(text, "version: 1.1.0\nmodifiers: []\n");
    free(text);
    CU_ASSERT_EQUAL(ics_checkpoint_get_text(r, "no_such_text", &text, &err), ICS_OK);
    CU_ASSERT_PTR_NULL(text);
    float back[6];
    CU_ASSERT_EQUAL(ics_checkpoint_get_tensor(r, "/masks/x.weight", back, 2, mshape, &err), ICS_OK);
    CU_ASSERT_EQUAL(memcmp(back, mask, sizeof mask), 0);

    /* A model of another shape: the error names the tensor and both shapes. */
    ics_model *c = small_model(7, 1);
    CU_ASSERT_EQUAL(ics_checkpoint_get_model(r, c, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "/model/classifier.weight has shape [10, 3136], expected [7, 3136]"));
    /* Another optimizer kind. */
    ics_optim_hparams hp;
    ics_optim_hparams_default(&hp, ICS_OPTIM_ADAMW);
    ics_optim_group g = {1.0, 0.0};
    ics_optim *adam = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_optim_create(&adam, &hp, &g, 1, views_b, nv, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_checkpoint_get_optim(r, b, adam, &err), ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "optimizer state is for sgd, the run uses adamw"));
    ics_optim_destroy(adam);
    ics_checkpoint_close(r);
    ics_model_destroy(a);
    ics_model_destroy(b);
    ics_model_destroy(c);
    ics_optim_destroy(opt);
    ics_optim_destroy(opt_b);
    ics_ema_destroy(ema);
    ics_ema_destroy(ema_b);
    free(path);
}

static void test_abort_leaves_nothing(void)
{
    ics_error err;
    char *path = path_of("aborted.h5");
    ics_checkpoint_writer *w = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_checkpoint_begin(path, &w, &err), ICS_OK);
    ics_checkpoint_abort(w);
    CU_ASSERT(access(path, F_OK) != 0);
    char *out = NULL;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c aborted", tmp);
    ics_test_run(cmd, &out);
    CU_ASSERT_STRING_EQUAL(out, "0\n");
    free(out);
    /* A directory that does not exist: a clear error, nothing created. */
    char *bad = path_of("no/such/dir/x.h5");
    CU_ASSERT_EQUAL(ics_checkpoint_begin(bad, &w, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot create checkpoint"));
    free(bad);
    free(path);
}

/* Writes an HDF5 file with the given root attributes (NULL format: none). */
static char *odd_file(const char *name, const char *format, int64_t version, int64_t complete)
{
    char *path = path_of(name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = H5Screate(H5S_SCALAR);
    if (format) {
        hid_t type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, strlen(format) + 1);
        hid_t a = H5Acreate2(f, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, type, format);
        H5Aclose(a);
        H5Tclose(type);
        a = H5Acreate2(f, "format_version", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT64, &version);
        H5Aclose(a);
        a = H5Acreate2(f, "complete", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT64, &complete);
        H5Aclose(a);
    }
    H5Sclose(space);
    H5Fclose(f);
    return path;
}

static void expect_refusal(const char *path, ics_status want, const char *fragment)
{
    ics_checkpoint_reader *r = NULL;
    ics_error err;
    ics_error_clear(&err);
    CU_ASSERT_EQUAL(ics_checkpoint_open(path, &r, &err), want);
    CU_ASSERT_PTR_NULL(r);
    if (!strstr(err.message, fragment)) fprintf(stderr, "\n got: %s\nwant: ...%s...\n", err.message, fragment);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, fragment));
}

static void test_refusals(void)
{
    char *missing = path_of("missing.h5");
    expect_refusal(missing, ICS_ERR_IO, "missing.h5: cannot read checkpoint: No such file or directory");
    char *text = ics_test_write_file(tmp, "text.h5", "this is not HDF5\n");
    expect_refusal(text, ICS_ERR_FORMAT, "text.h5: not an icsparse checkpoint (not an HDF5 file)");
    char *plain = odd_file("plain.h5", NULL, 0, 0);
    expect_refusal(plain, ICS_ERR_FORMAT, "plain.h5: not an icsparse checkpoint (no format attribute)");
    char *other = odd_file("dataset.h5", "icsparse-dataset", 1, 1);
    expect_refusal(other, ICS_ERR_FORMAT, "dataset.h5: format is 'icsparse-dataset', expected 'icsparse-checkpoint'");
    char *future = odd_file("future.h5", "icsparse-checkpoint", 99, 1);
    expect_refusal(future, ICS_ERR_FORMAT, "future.h5: icsparse-checkpoint version 99 is not supported (this icsparse reads version 1)");
    char *half = odd_file("half.h5", "icsparse-checkpoint", 1, 0);
    expect_refusal(half, ICS_ERR_FORMAT, "half.h5: incomplete checkpoint");
    char *noarch = odd_file("noarch.h5", "icsparse-checkpoint", 1, 1);
    expect_refusal(noarch, ICS_ERR_FORMAT, "noarch.h5");
    free(missing);
    free(text);
    free(plain);
    free(other);
    free(future);
    free(half);
    free(noarch);
}

int main(void)
{
    tmp = ics_test_tmpdir("ckpt");
    static const ics_test_case cases[] = {
        {"round trip is exact", test_round_trip_is_exact},
        {"abort leaves nothing", test_abort_leaves_nothing},
        {"refusals", test_refusals},
        {NULL, NULL}};
    ics_test_add_suite("checkpoint", cases);
    int rc = ics_test_main("test_checkpoint");
    ics_test_rmtree(tmp);
    free(tmp);
    return rc;
}
