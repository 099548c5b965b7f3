/*
 * ONNX and .pth exports checked against the real tools, per architecture:
 * a random checkpoint (test_export_ckpt.c) is exported by the
 * icsparse-export executable in several settings, and
 * tests/torchref/export_check.py verifies each file with
 * onnx.checker (full_check), onnxruntime against icsparse-eval's logits on
 * the same inputs, torch.load(weights_only=True) + load_state_dict(strict)
 * for the .pth (its _metadata equal to torch's module's), and exact zeros
 * for pruned weights. Skips (77) when
 * $PYTHON_TORCH lacks onnx, onnxruntime, h5py or torch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <icsparse/model.h>

#include "test_export_ckpt.h"
#include "test_util.h"

static char *root;

typedef struct export_setting {
    int fold, batch, dynamic_shape, opset; /* batch 0: dynamic */
} export_setting;

typedef struct export_case {
    const char *id, *arch;
    int classes, in_c, h, w, cifar;
    float width;
    int alt_h, alt_w; /* second image size for --dynamic-shape exports (0: none) */
    int pth, deploy;
    export_setting settings[7]; /* ends at opset 0 */
} export_case;

/* All four static/dynamic combinations with BN folded, and BN kept in
 * both extremes, on resnet18; the other archs take two settings each so
 * every program stays within its time budget. */
static const export_case cases[] = {
    {"simple_cnn",
     "simple_cnn",
     10,
     1,
     28,
     28,
     0,
     0,
     0,
     0,
     1,
     1,
     {{1, 0, 0, 13}, {0, 2, 0, 17}, {1, 2, 0, 15}, {0, 0, 0, 14}, {0, 0, 0, 0}}},
    {"resnet18_cifar",
     "resnet18",
     10,
     3,
     32,
     32,
     1,
     0,
     40,
     24,
     1,
     0,
     {{1, 0, 0, 13}, {1, 2, 0, 14}, {1, 0, 1, 15}, {1, 2, 1, 17}, {0, 0, 1, 13}, {0, 2, 0, 16}}},
    {"resnet18_imagenet_stem",
     "resnet18",
     10,
     3,
     64,
     64,
     0,
     0,
     48,
     80,
     0,
     0,
     {{1, 0, 1, 13}, {0, 2, 0, 17}, {0, 0, 0, 0}}},
    {"resnet50_cifar",
     "resnet50",
     10,
     3,
     32,
     32,
     1,
     0,
     24,
     24,
     1,
     0,
     {{1, 0, 1, 13}, {0, 2, 0, 15}, {0, 0, 0, 0}}},
    {"mobilenet_v2",
     "mobilenet_v2",
     10,
     3,
     32,
     32,
     0,
     1.0f,
     64,
     64,
     1,
     0,
     {{1, 0, 1, 13}, {0, 2, 0, 17}, {0, 0, 0, 0}}},
    {"vgg11_bn_32", "vgg11_bn", 10, 3, 32, 32, 0, 0, 0, 0, 0, 0, {{1, 0, 0, 13}, {0, 0, 0, 0}}},
    {"lenet", "lenet", 10, 1, 28, 28, 0, 0, 0, 0, 1, 0, {{0, 2, 0, 13}, {0, 0, 0, 0}}},
    {NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {{0, 0, 0, 0}}}};

static const char *export_bin(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/src/apps/icsparse-export", ics_test_builddir());
    return path;
}

/* Runs one icsparse-export command line; prints its output on failure. */
static int run_export(const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s --quiet %s", export_bin(), args);
    char *out = NULL;
    int rc = ics_test_run(cmd, &out);
    if (rc != 0) fprintf(stderr, "%s\n-> exit %d: %s\n", cmd, rc, out ? out : "");
    free(out);
    return rc;
}

static void run_case(const export_case *c)
{
    char dir[4096], path[4600], alt[4600], args[8192];
    snprintf(dir, sizeof dir, "%s/%s", root, c->id);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0777), 0);
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = c->classes;
    o.in_channels = c->in_c;
    o.in_h = c->h;
    o.in_w = c->w;
    o.cifar_stem = c->cifar;
    if (c->width > 0) o.width_mult = c->width;
    o.dropout = 0.2f; /* dropout is omitted from the ONNX graph */
    if (strcmp(c->arch, "simple_cnn") == 0) o.dropout = 0.0f; /* the reference module has none */
    ics_model *m = export_test_model(c->arch, &o, 11);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    CU_ASSERT_EQUAL_FATAL(export_test_write_checkpoint(m, path, NULL, 0, NULL), 0);
    char manifest[4600];
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", dir);
    FILE *f = fopen(manifest, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "arch %s %d %d %d %d %d %g\n", c->arch, c->classes, c->in_c, c->h, c->w, c->cifar,
            (double)(c->width > 0 ? c->width : 1.0f));
    fprintf(f, "eval %s/src/apps/icsparse-eval\n", ics_test_builddir());
    fprintf(f, "ckpt %d %d %s\n", c->h, c->w, path);
    if (c->alt_h) {
        snprintf(alt, sizeof alt, "%s/ckpt_%dx%d.h5", dir, c->alt_h, c->alt_w);
        CU_ASSERT_EQUAL(export_test_write_resized(m, c->alt_h, c->alt_w, alt), 0);
        fprintf(f, "ckpt %d %d %s\n", c->alt_h, c->alt_w, alt);
    }
    ics_model_destroy(m);
    for (int k = 0; c->settings[k].opset; k++) {
        const export_setting *s = &c->settings[k];
        char deploy[4700] = "";
        if (c->deploy && k == 0) {
            /* the deployment directory, and the SparseZoo directory with
             * its own deployment/, model.onnx and training/model.pth */
            snprintf(deploy, sizeof deploy, "--deployment-dir %s/dep --sparsezoo-dir %s/zoo", dir,
                     dir);
            fprintf(f, "deploy %s/dep\ndeploy %s/zoo\npth %s/zoo/training/model.pth\n", dir, dir,
                    dir);
            fprintf(f, "onnx %s/zoo/model.onnx %d %d %d %d\n", dir, s->batch, s->dynamic_shape,
                    s->fold, s->opset);
        }
        snprintf(args, sizeof args,
                 "--checkpoint %s --output %s/e%d --opset %d --batch-size %d %s --fold-bn %s %s",
                 path, dir, k, s->opset, s->batch, s->dynamic_shape ? "--dynamic-shape" : "",
                 s->fold ? "true" : "false", deploy);
        CU_ASSERT_EQUAL(run_export(args), 0);
        fprintf(f, "onnx %s/e%d/model.onnx %d %d %d %d\n", dir, k, s->batch, s->dynamic_shape,
                s->fold, s->opset);
    }
    if (c->pth) {
        snprintf(args, sizeof args, "--checkpoint %s --output %s/pth --format pth", path, dir);
        CU_ASSERT_EQUAL(run_export(args), 0);
        fprintf(f, "pth %s/pth/model.pth\n", dir);
    }
    fclose(f);
    CU_ASSERT_EQUAL(ics_test_run_torch("tests/torchref/export_check.py", dir), 0);
}

static void test_simple_cnn(void)
{
    run_case(&cases[0]);
}
static void test_resnet18_cifar(void)
{
    run_case(&cases[1]);
}
static void test_resnet18_imagenet_stem(void)
{
    run_case(&cases[2]);
}
static void test_resnet50_cifar(void)
{
    run_case(&cases[3]);
}
static void test_mobilenet_v2(void)
{
    run_case(&cases[4]);
}
static void test_vgg11_bn(void)
{
    run_case(&cases[5]);
}
static void test_lenet(void)
{
    run_case(&cases[6]);
}

int main(void)
{
    const char *py = getenv("PYTHON_TORCH");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import onnx, onnxruntime, h5py, torch' 2>&1",
             py && *py ? py : "/usr/bin/python3");
    if (ics_test_run(cmd, NULL) != 0) {
        fprintf(stderr, "test_export_onnx: SKIP: $PYTHON_TORCH cannot import onnx, onnxruntime, "
                        "h5py and torch\n");
        return 77;
    }
    root = ics_test_tmpdir("export_onnx");
    static const ics_test_case tests[] = {
        {"simple_cnn 28x28: fold on/off, static/dynamic batch, opsets 13-17, .pth, deployment dir",
         test_simple_cnn},
        {"resnet18 cifar stem: all four static/dynamic combinations, fold on/off, .pth",
         test_resnet18_cifar},
        {"resnet18 imagenet stem 64x64, dynamic shape 48x80", test_resnet18_imagenet_stem},
        {"resnet50 cifar stem 32x32, dynamic shape 24x24, .pth", test_resnet50_cifar},
        {"mobilenet_v2 32x32, dynamic shape 64x64, .pth", test_mobilenet_v2},
        {"vgg11_bn 32x32: 1x1 features replicated to 7x7", test_vgg11_bn},
        {"lenet 28x28, static batch 2, .pth", test_lenet},
        {NULL, NULL}};
    ics_test_add_suite("export onnx", tests);
    int rc = ics_test_main("test_export_onnx");
    if (rc == 0) ics_test_rmtree(root);
    free(root);
    return rc;
}
