/*
 * TorchScript exports and SparseZoo samples checked against the real
 * tools, for every architecture: a random checkpoint (test_export_ckpt.c)
 * is exported by the icsparse-export executable with --format
 * torchscript (and, for two of them, --sparsezoo-dir with samples, from a
 * small dataset or random), and tests/torchref/torchscript_check.py
 * opens each archive with torch.jit.load and compares its logits with
 * icsparse-eval's on the same inputs (two batch sizes, a second image size
 * for resnet18), its state_dict with the checkpoint, train() mode with the
 * torchvision-structured module, and the samples with onnxruntime and
 * numpy. Skips (77) when $PYTHON_TORCH lacks torch, h5py, numpy or
 * onnxruntime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <icsparse/model.h>

#include "data/dataset.h"
#include "test_export_ckpt.h"
#include "test_util.h"

static char *root;

typedef struct ts_case {
    const char *id, *arch;
    int classes, in_c, h, w, cifar;
    int alt_h, alt_w; /* a second image size (0: none) */
    int train;        /* compare train() mode with models_ref.py */
    int zoo;          /* 0: no SparseZoo dir; 1: random samples; 2: samples from a dataset */
} ts_case;

/* Small inputs keep the program within its time budget; vgg11_bn at 96x96
 * has 3x3 features that AdaptiveAvgPool2d((7, 7)) spreads over overlapping
 * windows, vgg16_bn at 32x32 1x1 features it replicates. */
static const ts_case cases[] = {
    {"simple_cnn", "simple_cnn", 10, 1, 28, 28, 0, 0, 0, 1, 2},
    {"lenet", "lenet", 10, 1, 28, 28, 0, 0, 0, 0, 0},
    {"resnet18_cifar", "resnet18", 10, 3, 32, 32, 1, 40, 24, 1, 1},
    {"resnet34_imagenet_stem", "resnet34", 10, 3, 64, 64, 0, 0, 0, 0, 0},
    {"resnet50_cifar", "resnet50", 10, 3, 32, 32, 1, 0, 0, 0, 0},
    {"resnet101_cifar", "resnet101", 10, 3, 32, 32, 1, 0, 0, 0, 0},
    {"mobilenet_v2", "mobilenet_v2", 10, 3, 32, 32, 0, 0, 0, 0, 0},
    {"vgg11_bn_96", "vgg11_bn", 10, 3, 96, 96, 0, 0, 0, 0, 0},
    {"vgg16_bn_32", "vgg16_bn", 10, 3, 32, 32, 0, 0, 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0}};

/* Runs one icsparse-export command line; prints its output on failure. */
static int run_export(const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/src/apps/icsparse-export --quiet %s", ics_test_builddir(), args);
    char *out = NULL;
    int rc = ics_test_run(cmd, &out);
    if (rc != 0) fprintf(stderr, "%s\n-> exit %d: %s\n", cmd, rc, out ? out : "");
    free(out);
    return rc;
}

/* A dataset of the case's image shape: val holds 6 random rows. */
static int write_dataset(const ts_case *c, const char *path)
{
    ics_dataset_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.height = c->h;
    meta.width = c->w;
    meta.channels = c->in_c;
    for (int k = 0; k < c->in_c; k++) {
        meta.mean[k] = 0.25 + 0.125 * k;
        meta.std[k] = 0.3 - 0.05 * k;
    }
    meta.source = strdup("test_export_torchscript");
    ics_error err;
    if (ics_dataset_meta_number_classes(&meta, c->classes, &err) != ICS_OK) return -1;
    enum { ROWS = 6 };
    size_t row = (size_t)c->h * c->w * c->in_c;
    uint8_t *images = malloc(ROWS * row);
    int32_t labels[ROWS];
    uint64_t s = 99;
    for (size_t i = 0; images && i < ROWS * row; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        images[i] = (uint8_t)(s >> 56);
    }
    for (int i = 0; i < ROWS; i++)
        labels[i] = (i * 7 + 3) % c->classes;
    const uint8_t *const im[3] = {NULL, images, NULL};
    const int32_t *const lb[3] = {NULL, labels, NULL};
    const int64_t counts[3] = {0, ROWS, 0};
    ics_dataset_write_options wo = {0, 0};
    ics_status st =
        images ? ics_dataset_write_file(path, &meta, &wo, im, lb, counts, &err) : ICS_ERR_NOMEM;
    if (st != ICS_OK) fprintf(stderr, "write_dataset: %s\n", err.message);
    free(images);
    ics_dataset_meta_clear(&meta);
    return st == ICS_OK ? 0 : -1;
}

static void run_case(const ts_case *c)
{
    char dir[4096], path[4600], alt[4600], args[8192], manifest[4600];
    snprintf(dir, sizeof dir, "%s/%s", root, c->id);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0777), 0);
    ics_model_options o;
    ics_model_options_default(&o); /* the architecture's own dropout: identity in eval() */
    o.num_classes = c->classes;
    o.in_channels = c->in_c;
    o.in_h = c->h;
    o.in_w = c->w;
    o.cifar_stem = c->cifar;
    ics_model *m = export_test_model(c->arch, &o, 17);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    CU_ASSERT_EQUAL_FATAL(export_test_write_checkpoint(m, path, NULL, 0, NULL), 0);
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", dir);
    FILE *f = fopen(manifest, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "arch %s %d %d %d %d %d %g\n", c->arch, c->classes, c->in_c, c->h, c->w, c->cifar,
            (double)ics_model_get_options(m)->width_mult);
    fprintf(f, "eval %s/src/apps/icsparse-eval\n", ics_test_builddir());
    fprintf(f, "ckpt %d %d %s\n", c->h, c->w, path);
    if (c->alt_h) {
        snprintf(alt, sizeof alt, "%s/ckpt_%dx%d.h5", dir, c->alt_h, c->alt_w);
        CU_ASSERT_EQUAL(export_test_write_resized(m, c->alt_h, c->alt_w, alt), 0);
        fprintf(f, "ckpt %d %d %s\n", c->alt_h, c->alt_w, alt);
    }
    ics_model_destroy(m);

    snprintf(args, sizeof args, "--checkpoint %s --output %s/ts --format torchscript", path, dir);
    CU_ASSERT_EQUAL(run_export(args), 0);
    fprintf(f, "ts %s/ts/model.pt\n", dir);
    if (c->train) fprintf(f, "train\n");
    if (c->zoo == 1) {
        snprintf(args, sizeof args,
                 "--checkpoint %s --output %s/o --sparsezoo-dir %s/zoo --samples 3", path, dir,
                 dir);
        CU_ASSERT_EQUAL(run_export(args), 0);
        fprintf(f, "zoo %s/zoo 3\n", dir);
    } else if (c->zoo == 2) {
        char data[4600];
        snprintf(data, sizeof data, "%s/data.h5", dir);
        CU_ASSERT_EQUAL_FATAL(write_dataset(c, data), 0);
        snprintf(args, sizeof args,
                 "--checkpoint %s --output %s/o --sparsezoo-dir %s/zoo --samples 4 --samples-from "
                 "val --set data.path=%s",
                 path, dir, dir, data);
        CU_ASSERT_EQUAL(run_export(args), 0);
        fprintf(f, "zoo %s/zoo 4 %s val\n", dir, data);
    }
    fclose(f);
    CU_ASSERT_EQUAL(ics_test_run_torch("tests/torchref/torchscript_check.py", dir), 0);
    /* the archives and checkpoints of the big models are hundreds of MB:
     * removed as soon as checked (on success) */
    if (CU_get_number_of_failures() == 0) ics_test_rmtree(dir);
}

static void test_simple_cnn(void)
{
    run_case(&cases[0]);
}
static void test_lenet(void)
{
    run_case(&cases[1]);
}
static void test_resnet18(void)
{
    run_case(&cases[2]);
}
static void test_resnet34(void)
{
    run_case(&cases[3]);
}
static void test_resnet50(void)
{
    run_case(&cases[4]);
}
static void test_resnet101(void)
{
    run_case(&cases[5]);
}
static void test_mobilenet_v2(void)
{
    run_case(&cases[6]);
}
static void test_vgg11_bn(void)
{
    run_case(&cases[7]);
}
static void test_vgg16_bn(void)
{
    run_case(&cases[8]);
}

int main(void)
{
    const char *py = getenv("PYTHON_TORCH");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy, onnxruntime, h5py, torch' 2>&1",
             py && *py ? py : "/usr/bin/python3");
    if (ics_test_run(cmd, NULL) != 0) {
        fprintf(stderr, "test_export_torchscript: SKIP: $PYTHON_TORCH cannot import numpy, "
                        "onnxruntime, h5py and torch\n");
        return 77;
    }
    root = ics_test_tmpdir("export_torchscript");
    static const ics_test_case tests[] = {
        {"simple_cnn 28x28, train() mode, SparseZoo samples from a dataset", test_simple_cnn},
        {"lenet 28x28 (no BatchNorm)", test_lenet},
        {"resnet18 cifar stem, second size 40x24, train() mode, SparseZoo random samples",
         test_resnet18},
        {"resnet34 imagenet stem 64x64 (max pool)", test_resnet34},
        {"resnet50 cifar stem 32x32", test_resnet50},
        {"resnet101 cifar stem 32x32", test_resnet101},
        {"mobilenet_v2 32x32 (ReLU6, groups, dropout)", test_mobilenet_v2},
        {"vgg11_bn 96x96: 3x3 features pooled adaptively to 7x7", test_vgg11_bn},
        {"vgg16_bn 32x32: 1x1 features replicated to 7x7", test_vgg16_bn},
        {NULL, NULL}};
    ics_test_add_suite("export torchscript", tests);
    int rc = ics_test_main("test_export_torchscript");
    if (rc == 0) ics_test_rmtree(root);
    free(root);
    return rc;
}
