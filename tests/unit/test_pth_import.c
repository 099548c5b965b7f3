/* Importing torch.save checkpoints (src/io/pth_import.c) on fixtures made
 * by the real torch (tests/torchref/import_make.py): the logits after
 * import equal torch's, the metadata comes through, and every refusal says
 * what is wrong. Exits 77 (skip) when torch is not available. */
#include "test_util.h"

#include <icsparse/checkpoint.h>
#include <icsparse/model.h>
#include <icsparse/qat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/pth_import.h"

static char *fixtures;
static int torch_ok;

static char *fx(const char *name)
{
    static char path[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", fixtures, name);
    return path[k];
}

static ics_model *make(const char *arch, int classes)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = classes;
    o.in_h = o.in_w = 8;
    o.cifar_stem = 1;
    ics_model *m = NULL;
    ics_error err;
    if (ics_model_create(arch, &o, &m, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return NULL;
    }
    ics_model_init_params(m, 1);
    return m;
}

/* The model's logits on x.npy compared with torch's (1e-4 relative). */
static void check_logits(ics_model *m, const char *want_name)
{
    int64_t shape[4];
    int nd;
    float *x = ics_test_npy_read_f32(fixtures, "x", shape, &nd);
    float *want = ics_test_npy_read_f32(fixtures, want_name, shape, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    ics_error err;
    const float *got = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, 2, 0, &err), ICS_OK);
    CU_ASSERT_EQUAL_FATAL(ics_model_forward(m, x, 2, &got, &err), ICS_OK);
    size_t n = (size_t)(shape[0] * shape[1]);
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    CU_ASSERT(scale > 1e-3); /* the reference is not degenerate */
    ICS_ASSERT_CLOSE(want_name, got, want, n, 1e-4 * scale, 1e-4);
    free(x);
    free(want);
}

static void test_resnet18_plain(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    ics_model *m = make("resnet18", 10);
    ics_pth_import_report rep;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_pth_import_into_model(fx("r18_plain.pth"), m, &rep, &err), ICS_OK);
    CU_ASSERT_EQUAL(rep.tensors_loaded, ics_model_num_tensors(m));
    CU_ASSERT_EQUAL(rep.renamed, 0);
    CU_ASSERT_EQUAL(rep.module_prefix, 0);
    CU_ASSERT_EQUAL(rep.reinitialized, 0);
    CU_ASSERT_EQUAL(rep.has_epoch, 0);
    CU_ASSERT_PTR_NULL(rep.recipe);
    CU_ASSERT_EQUAL(rep.file_num_classes, 10);
    check_logits(m, "r18_plain_logits");
    ics_pth_import_report_free(&rep);
    ics_model_destroy(m);
}

static void test_resnet18_sparsezoo_checkpoint(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    ics_model *m = make("resnet18", 10);
    ics_pth_import_report rep;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_pth_import_into_model(fx("r18_zoo.pth"), m, &rep, &err), ICS_OK);
    CU_ASSERT_EQUAL(rep.tensors_loaded, ics_model_num_tensors(m));
    CU_ASSERT_EQUAL(rep.renamed, ics_model_num_tensors(m));
    CU_ASSERT_EQUAL(rep.module_prefix, ics_model_num_tensors(m));
    CU_ASSERT_EQUAL(rep.has_optimizer, 1);
    CU_ASSERT_EQUAL(rep.has_epoch, 1);
    CU_ASSERT_DOUBLE_EQUAL(rep.epoch, 9.0, 0);
    CU_ASSERT_STRING_EQUAL(rep.arch_key, "resnet18");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rep.recipe);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.recipe, "!GMPruningModifier"));
    check_logits(m, "r18_zoo_logits");
    /* the zeros arrive as zeros (the recipe manager makes masks from them) */
    int t = ics_model_find_tensor(m, "layer2.0.downsample.0.weight");
    CU_ASSERT_FATAL(t >= 0);
    const float *w = ics_model_tensor_data(m, t);
    int64_t zeros = 0;
    for (int64_t i = 0; i < ics_model_tensor(m, t)->numel; i++)
        zeros += w[i] == 0.0f;
    CU_ASSERT(zeros > ics_model_tensor(m, t)->numel / 4);
    ics_pth_import_report_free(&rep);
    ics_model_destroy(m);
}

static void test_to_checkpoint(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 0; /* from the file */
    o.in_channels = 0;
    o.in_h = o.in_w = 8;
    o.cifar_stem = 1;
    ics_error err;
    char *out = fx("r18_zoo.h5");
    CU_ASSERT_EQUAL_FATAL(ics_pth_import_to_checkpoint(fx("r18_zoo.pth"), NULL, &o, out, &err),
                          ICS_OK);
    ics_checkpoint_reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_checkpoint_open(out, &r, &err), ICS_OK);
    const ics_checkpoint_info *info = ics_checkpoint_get_info(r);
    CU_ASSERT_STRING_EQUAL(info->arch, "resnet18");
    CU_ASSERT_EQUAL(info->model_options.num_classes, 10);
    CU_ASSERT_EQUAL(info->model_options.in_channels, 3);
    CU_ASSERT_STRING_EQUAL(info->kind, "imported");
    int64_t shape[2];
    int nd;
    float *sp = ics_test_npy_read_f32(fixtures, "r18_zoo_sparsity", shape, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
    CU_ASSERT_DOUBLE_EQUAL(info->sparsity, sp[0], 1e-6);
    free(sp);
    char *recipe = NULL;
    CU_ASSERT_EQUAL(ics_checkpoint_get_text(r, "recipe", &recipe, &err), ICS_OK);
    CU_ASSERT(recipe && strstr(recipe, "final_sparsity: 0.5"));
    free(recipe);
    ics_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_checkpoint_create_model(r, &m, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_checkpoint_verify_model_checksum(r, m, &err), ICS_OK);
    check_logits(m, "r18_zoo_logits");
    ics_model_destroy(m);
    ics_checkpoint_close(r);
    /* a plain state_dict has no arch_key: the caller must name it */
    CU_ASSERT_EQUAL(ics_pth_import_to_checkpoint(fx("r18_plain.pth"), "", &o, fx("x.h5"), &err),
                    ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "has no arch_key"));
    CU_ASSERT_EQUAL(
        ics_pth_import_to_checkpoint(fx("r18_plain.pth"), "resnet18", &o, fx("x.h5"), &err),
        ICS_OK);
}

static void test_simple_cnn_dtypes(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    ics_error err;
    ics_pth_import_report rep;
    ics_model *m = make("simple_cnn", 10);
    CU_ASSERT_EQUAL_FATAL(ics_pth_import_into_model(fx("cnn_f64.pth"), m, &rep, &err), ICS_OK);
    CU_ASSERT_EQUAL(
        *ics_model_tensor_counter(m, ics_model_find_tensor(m, "features.1.num_batches_tracked")),
        7);
    CU_ASSERT_EQUAL(rep.has_epoch, 1);
    CU_ASSERT_DOUBLE_EQUAL(rep.epoch, 2.5, 0);
    check_logits(m, "cnn_f64_logits");
    ics_pth_import_report_free(&rep);
    ics_model_destroy(m);

    m = make("simple_cnn", 10);
    CU_ASSERT_EQUAL_FATAL(ics_pth_import_into_model(fx("cnn_half.pth"), m, NULL, &err), ICS_OK);
    check_logits(m, "cnn_half_logits");
    ics_model_destroy(m);
}

static void test_transfer_learning(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    ics_error err;
    ics_pth_import_report rep;
    ics_model *m = make("simple_cnn", 10);
    int cw = ics_model_find_tensor(m, "classifier.weight");
    size_t n = (size_t)ics_model_tensor(m, cw)->numel;
    float *before = malloc(n * sizeof *before);
    memcpy(before, ics_model_tensor_data(m, cw), n * sizeof *before);
    FILE *log = tmpfile();
    ics_log_set_stream(log);
    ics_status st = ics_pth_import_into_model(fx("cnn_transfer.pth"), m, &rep, &err);
    ics_log_set_stream(stderr);
    CU_ASSERT_EQUAL_FATAL(st, ICS_OK);
    char text[2048] = "";
    rewind(log);
    size_t got = fread(text, 1, sizeof text - 1, log);
    text[got] = '\0';
    fclose(log);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(text, "classifier 'classifier' has 5 classes there, the model 10"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "re-initialized"));
    CU_ASSERT_EQUAL(rep.reinitialized, 2);
    CU_ASSERT_STRING_EQUAL(rep.reinit_layer, "classifier");
    CU_ASSERT_EQUAL(rep.file_num_classes, 5);
    CU_ASSERT_EQUAL(rep.tensors_loaded, ics_model_num_tensors(m) - 2);
    CU_ASSERT_EQUAL(memcmp(before, ics_model_tensor_data(m, cw), n * sizeof *before), 0);
    int64_t shape[4];
    int nd;
    float *conv0 = ics_test_npy_read_f32(fixtures, "conv0", shape, &nd);
    int t = ics_model_find_tensor(m, "features.0.weight");
    CU_ASSERT_EQUAL(
        memcmp(conv0, ics_model_tensor_data(m, t), (size_t)ics_model_tensor(m, t)->numel * 4), 0);
    free(conv0);
    free(before);
    ics_pth_import_report_free(&rep);
    ics_model_destroy(m);
}

static void test_qat_extras(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    ics_error err;
    ics_pth_import_report rep;
    ics_model *m = make("simple_cnn", 10);
    CU_ASSERT_EQUAL_FATAL(ics_pth_import_into_model(fx("cnn_qat.pth"), m, &rep, &err), ICS_OK);
    CU_ASSERT_EQUAL(rep.qat_extras, 3);
    CU_ASSERT_EQUAL(rep.tensors_loaded, ics_model_num_tensors(m));
    ics_pth_import_report_free(&rep);
    ics_model_destroy(m);
}

/* A recipe that quantizes over a plain state_dict: the structure is
 * applied, every quantizer is reported missing (observers on: they
 * calibrate on the first training batch). */
static void test_qat_recipe_without_state(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    ics_error err;
    ics_pth_import_report rep;
    ics_model *m = make("simple_cnn", 10);
    CU_ASSERT_EQUAL_FATAL(ics_pth_import_into_model(fx("cnn_qat_recipe.pth"), m, &rep, &err),
                          ICS_OK);
    CU_ASSERT_EQUAL(rep.qat_structure, 1);
    CU_ASSERT(ics_model_qat_active(m));
    CU_ASSERT_EQUAL(rep.qat_quantizers, 0);
    /* quant, features.0 and .4 groups, classifier: 4 activation and 3
     * weight quantizers */
    CU_ASSERT_EQUAL(rep.qat_missing, 7);
    CU_ASSERT_EQUAL(rep.qat_observers, 1);
    CU_ASSERT_EQUAL(rep.tensors_loaded, ics_model_num_tensors(m));
    ics_pth_import_report_free(&rep);
    ics_model_destroy(m);
}

/* torch's eager QAT simple_cnn (tests/torchref/import_make.py): the
 * recipe's structure, the fused modules' BN keys and every quantizer map
 * over; the logits equal torch's QAT model in eval mode within one step of
 * the output quantizer. */
static void test_torch_qat(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    ics_error err;
    ics_pth_import_report rep;
    ics_model *m = make("simple_cnn", 10);
    ics_status st = ics_pth_import_into_model(fx("cnn_torchqat.pth"), m, &rep, &err);
    if (st) fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_EQUAL_FATAL(st, ICS_OK);
    CU_ASSERT_EQUAL(rep.qat_structure, 1);
    CU_ASSERT_EQUAL(rep.qat_quantizers, 7);
    CU_ASSERT_EQUAL(rep.qat_missing, 0);
    CU_ASSERT_EQUAL(rep.qat_extras, 0);
    CU_ASSERT_EQUAL(rep.qat_observers, 0);
    CU_ASSERT_EQUAL(rep.fused_bn, 10); /* features.{0,4}.bn.{weight, bias, running_*, count} */
    CU_ASSERT(rep.module_prefix > ics_model_num_tensors(m)); /* QuantWrapper's "module." */
    CU_ASSERT_EQUAL(rep.tensors_loaded, ics_model_num_tensors(m));
    CU_ASSERT(ics_model_qat_bn_frozen(m)); /* the recipe's freeze_bn_stats_epoch has passed */
    CU_ASSERT(!ics_model_qat_observers(m));
    /* the weight scales are the file's */
    int64_t shape[4];
    int nd;
    float *want_scale = ics_test_npy_read_f32(fixtures, "cnn_torchqat_w4scale", shape, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want_scale);
    int channels = 0;
    const float *scales =
        ics_model_weight_scales(m, ics_model_find_node(m, "features.4"), &channels, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(scales);
    CU_ASSERT_EQUAL_FATAL(channels, 64);
    CU_ASSERT_EQUAL(memcmp(scales, want_scale, 64 * sizeof *scales), 0);
    free(want_scale);
    /* logits */
    float *x = ics_test_npy_read_f32(fixtures, "x", shape, &nd);
    float *want = ics_test_npy_read_f32(fixtures, "cnn_torchqat_logits", shape, &nd);
    float *step = ics_test_npy_read_f32(fixtures, "cnn_torchqat_step", shape, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    CU_ASSERT_PTR_NOT_NULL_FATAL(step);
    ics_act_quant q;
    CU_ASSERT_EQUAL_FATAL(
        ics_model_act_quant_get(m, ics_model_find_node(m, "classifier.activation_post_process"), &q,
                                &err),
        ICS_OK);
    CU_ASSERT_DOUBLE_EQUAL(q.scale, step[0], 1e-6 * step[0]);
    const float *got = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_model_plan(m, 2, 0, &err), ICS_OK);
    CU_ASSERT_EQUAL_FATAL(ics_model_forward(m, x, 2, &got, &err), ICS_OK);
    int distinct = 0;
    for (int i = 0; i < 20; i++) {
        distinct += got[i] != got[0];
        if (fabsf(got[i] - want[i]) > step[0] * 1.001f)
            fprintf(stderr, "logit %d: %g, torch %g (step %g)\n", i, got[i], want[i], step[0]);
        CU_ASSERT(fabsf(got[i] - want[i]) <= step[0] * 1.001f);
    }
    CU_ASSERT(distinct > 5); /* the reference is not degenerate */
    free(x);
    free(want);
    free(step);
    ics_pth_import_report_free(&rep);
    ics_model_destroy(m);
}

/* Each refusal: its status, words of its message, and the model left as
 * it was. */
static void refuse(const char *file, ics_status want, const char *w1, const char *w2)
{
    ics_error err;
    ics_pth_import_report rep;
    ics_model *m = make("simple_cnn", 10);
    size_t np;
    float *p = ics_model_params(m, &np);
    float *copy = malloc(np * sizeof *copy);
    memcpy(copy, p, np * sizeof *copy);
    ics_status st = ics_pth_import_into_model(fx(file), m, &rep, &err);
    CU_ASSERT_EQUAL(st, want);
    if (st != want)
        fprintf(stderr, "%s: status %d, expected %d (%s)\n", file, st, want, err.message);
    if (st) {
        if (!strstr(err.message, w1) || (w2 && !strstr(err.message, w2)))
            fprintf(stderr, "%s: message '%s' lacks '%s' / '%s'\n", file, err.message, w1,
                    w2 ? w2 : "");
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, w1));
        if (w2) CU_ASSERT_PTR_NOT_NULL(strstr(err.message, w2));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, file));
    }
    CU_ASSERT_EQUAL(memcmp(copy, p, np * sizeof *copy), 0);
    free(copy);
    ics_pth_import_report_free(&rep);
    ics_model_destroy(m);
}

static void test_refusals(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    refuse("cnn_torchqat_nofq4.pth", ICS_ERR_FORMAT, "'features.4.activation_post_process')",
           "no state there and the observers are off");
    refuse("cnn_torchqat_affine.pth", ICS_ERR_NOT_IMPLEMENTED,
           "'module.classifier.weight_fake_quant.zero_point'[0] = 3", "affine weight quantization");
    refuse("cnn_missing.pth", ICS_ERR_FORMAT, "tensor 'features.5.weight' of simple_cnn is missing",
           "closest key present: 'features.5.wieght'");
    refuse("cnn_shape.pth", ICS_ERR_FORMAT, "tensor 'features.4.weight' has shape [64, 32, 1, 1]",
           "expects [64, 32, 3, 3]");
    /* transfer learning needs the weight's rows to differ: a bias alone
     * is an error */
    refuse("cnn_bias.pth", ICS_ERR_FORMAT,
           "tensor 'classifier.bias' has shape [5], simple_cnn expects [10]", NULL);
    refuse("cnn_extra.pth", ICS_ERR_FORMAT, "unexpected key 'head.weight'", NULL);
    refuse("not_a_state_dict.pth", ICS_ERR_FORMAT, "no state_dict", NULL);
    refuse("cnn_dup.pth", ICS_ERR_FORMAT,
           "keys 'features.0.weight' and 'module.features.0.weight' both stand for", NULL);
    refuse("cnn_longkey.pth", ICS_ERR_FORMAT, "is too long", NULL);
    refuse("cnn_counter.pth", ICS_ERR_FORMAT, "'features.1.num_batches_tracked' has 2 elements",
           "scalar");
    /* a model of another architecture: the first tensor missing, closest
     * key named, with its SparseZoo origin */
    ics_model *m = make("resnet18", 10);
    ics_error err;
    CU_ASSERT_EQUAL(ics_pth_import_into_model(fx("cnn_f64.pth"), m, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "tensor 'conv1.weight' of resnet18 is missing"));
    ics_model_destroy(m);
    m = make("simple_cnn", 10);
    CU_ASSERT_EQUAL(ics_pth_import_into_model(fx("r18_zoo.pth"), m, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "from 'module."));
    ics_model_destroy(m);
    /* no file */
    m = make("simple_cnn", 10);
    CU_ASSERT_NOT_EQUAL(ics_pth_import_into_model(fx("absent.pth"), m, NULL, &err), ICS_OK);
    ics_model_destroy(m);
}

/* Truncated and byte-flipped copies of a torch file: an error or a
 * success, never a crash (ASan builds check the memory too). */
static void damage(const char *file)
{
    size_t len;
    char *orig = ics_test_read_file(fx(file), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(orig);
    char *buf = malloc(len);
    uint64_t state = 99;
    int failures = 0;
    for (int k = 0; k < 120; k++) {
        size_t n = len;
        memcpy(buf, orig, len);
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        if (k < 40) {
            n = (size_t)((state >> 33) % len); /* truncated */
        } else {
            for (int f = 0; f < 1 + k % 4; f++) {
                state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                /* most flips in the pickle and directory at the ends */
                size_t at =
                    (state >> 33) % 2 ? len - 1 - (state >> 40) % 4096 % len : (state >> 33) % len;
                buf[at] ^= (char)(1u << ((state >> 20) % 8));
            }
        }
        FILE *f = fopen(fx("damaged.pth"), "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fwrite(buf, 1, n, f);
        fclose(f);
        ics_model *m = make("simple_cnn", 10);
        ics_error err;
        ics_pth_import_report rep;
        failures += ics_pth_import_into_model(fx("damaged.pth"), m, &rep, &err) != ICS_OK;
        ics_pth_import_report_free(&rep);
        ics_model_destroy(m);
    }
    CU_ASSERT(failures >= 40); /* every truncation at least is refused */
    free(buf);
    free(orig);
}

static void test_damaged_files_never_crash(void)
{
    if (!torch_ok) CU_FAIL_FATAL("torch fixtures");
    damage("cnn_f64.pth");
    /* recipe, QAT structure and quantizer mapping on damaged input */
    damage("cnn_torchqat.pth");
}

static void test_key_mapping(void)
{
    char out[64];
    CU_ASSERT_EQUAL(ics_pth_import_map_key("module.input.conv.weight", out, sizeof out), 1);
    CU_ASSERT_STRING_EQUAL(out, "conv1.weight");
    CU_ASSERT_EQUAL(ics_pth_import_map_key("input.bn.running_var", out, sizeof out), 1);
    CU_ASSERT_STRING_EQUAL(out, "bn1.running_var");
    CU_ASSERT_EQUAL(ics_pth_import_map_key("sections.3.0.identity.bn.bias", out, sizeof out), 1);
    CU_ASSERT_STRING_EQUAL(out, "layer4.0.downsample.1.bias");
    CU_ASSERT_EQUAL(ics_pth_import_map_key("sections.1.0.identity.conv.weight", out, sizeof out),
                    1);
    CU_ASSERT_STRING_EQUAL(out, "layer2.0.downsample.0.weight");
    CU_ASSERT_EQUAL(ics_pth_import_map_key("sections.0.1.conv2.weight", out, sizeof out), 1);
    CU_ASSERT_STRING_EQUAL(out, "layer1.1.conv2.weight");
    CU_ASSERT_EQUAL(ics_pth_import_map_key("module.module.classifier.fc.bias", out, sizeof out), 1);
    CU_ASSERT_STRING_EQUAL(out, "fc.bias");
    CU_ASSERT_EQUAL(ics_pth_import_map_key("module.classifier.1.weight", out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "classifier.1.weight");
    CU_ASSERT_EQUAL(ics_pth_import_map_key("sections.x.conv", out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "sections.x.conv");
    CU_ASSERT_EQUAL(ics_pth_import_map_key("layer1.0.conv1.weight", out, 8), -1);
}

int main(void)
{
    static const ics_test_case mapping[] = {{"SparseZoo and module. names", test_key_mapping},
                                            {NULL, NULL}};
    ics_test_add_suite("pth import names", mapping);
    if (!ics_test_have_torch()) {
        fprintf(stderr, "test_pth_import: $PYTHON_TORCH cannot import torch: skipped\n");
        return 77;
    }
    fixtures = ics_test_tmpdir("pth_import");
    torch_ok = ics_test_run_torch("tests/torchref/import_make.py", fixtures) == 0;
    static const ics_test_case cases[] = {
        {"resnet18 state_dict: logits equal torch's", test_resnet18_plain},
        {"pruned SparseML checkpoint, SparseZoo names, module.",
         test_resnet18_sparsezoo_checkpoint},
        {"to an icsparse checkpoint (classes from the file)", test_to_checkpoint},
        {"float64 and float16 files, counters", test_simple_cnn_dtypes},
        {"transfer learning: classifier re-initialized", test_transfer_learning},
        {"QAT extras skipped and counted", test_qat_extras},
        {"a quantization recipe without quantizer state", test_qat_recipe_without_state},
        {"torch eager QAT: structure, quantizers, logits", test_torch_qat},
        {"refusals name the tensor", test_refusals},
        {"damaged files never crash", test_damaged_files_never_crash},
        {NULL, NULL}};
    ics_test_add_suite("pth import", cases);
    int rc = ics_test_main("test_pth_import");
    ics_test_rmtree(fixtures);
    free(fixtures);
    return rc;
}
