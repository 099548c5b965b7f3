/*
 * TorchScript export, the .npz writer and the SparseZoo samples without
 * Python: the archive read back through src/io's zip and pickle readers
 * (entries, the module tree of __torch__.icsparse objects in eval mode,
 * every tensor bit-identical under its state_dict path, parameters with
 * requires_grad, the TorchScript source's declarations and forward), the
 * .npy bytes of numpy's format 1.0, refusals and their messages, nothing
 * left behind after a failure, allocation-failure walks, and the CLI:
 * --format torchscript, QAT refused, --samples / --samples-from.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <icsparse/export.h>

#include "core/alloc.h"
#include "data/dataset.h"
#include "export/export_npz.h"
#include "io/pth_reader.h"
#include "io/zip_reader.h"
#include "test_export_ckpt.h"
#include "test_util.h"

static char *root;

static ics_model *small_model(const char *arch, int channels, int size)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_channels = channels;
    o.in_h = o.in_w = size;
    o.cifar_stem = 1;
    return export_test_model(arch, &o, 5);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Reads a whole zip entry as a string (caller frees); NULL if missing. */
static char *zip_text(const char *path, const char *entry, size_t *len)
{
    size_t size = 0;
    char *file = ics_test_read_file(path, &size);
    if (!file) return NULL;
    ics_error err;
    ics_zip_reader *zr = NULL;
    uint8_t *out = NULL;
    if (ics_zip_reader_open((const uint8_t *)file, size, path, &zr, &err) == ICS_OK) {
        const ics_zip_entry *e = ics_zip_find(zr, entry);
        if (e && ics_zip_extract(zr, e, 0, &out, len, &err) != ICS_OK) out = NULL;
        ics_zip_reader_close(zr);
    }
    free(file);
    return (char *)out;
}

/* Follows a state_dict key through the pickled module objects. */
static const ics_pv *module_path(const ics_pv *obj, const char *key)
{
    char part[256];
    for (const char *p = key;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!obj || obj->kind != ICS_PV_OBJECT || len >= sizeof part) return NULL;
        memcpy(part, p, len);
        part[len] = '\0';
        obj = ics_pv_dict_get(obj->u.object.state, part);
        if (!dot) return obj;
        p = dot + 1;
    }
}

/* Every object of the tree: a __torch__.icsparse class, training False. */
static int check_objects(const ics_pv *obj)
{
    if (obj->kind != ICS_PV_OBJECT) return 1;
    if (strncmp(obj->u.object.class_name, "__torch__.icsparse.", 19) != 0) return 0;
    const ics_pv *st = obj->u.object.state;
    const ics_pv *training = ics_pv_dict_get(st, "training");
    if (!training || training->kind != ICS_PV_BOOL || training->u.boolean) return 0;
    for (size_t i = 0; i < st->u.dict.len; i++)
        if (!check_objects(st->u.dict.values[i])) return 0;
    return 1;
}

static void check_archive(ics_model *m, const char *path)
{
    ics_error err;
    ics_pth *pth = NULL;
    ics_status st = ics_pth_load(path, &pth, &err);
    if (st != ICS_OK) fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_EQUAL_FATAL(st, ICS_OK);
    CU_ASSERT_STRING_EQUAL(ics_pth_archive_name(pth), "archive");
    const ics_pv *rootobj = ics_pth_root(pth);
    CU_ASSERT_EQUAL_FATAL(rootobj->kind, ICS_PV_OBJECT);
    char want[128];
    snprintf(want, sizeof want, "__torch__.icsparse.%s", ics_model_arch(m));
    CU_ASSERT_STRING_EQUAL(rootobj->u.object.class_name, want);
    CU_ASSERT(check_objects(rootobj));
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        const ics_pv *t = module_path(rootobj, ti->name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL_FATAL(t->kind, ICS_PV_TENSOR);
        CU_ASSERT_EQUAL(t->u.tensor.ndim, ti->ndim);
        CU_ASSERT_EQUAL(t->u.tensor.numel, (size_t)ti->numel);
        for (int d = 0; d < ti->ndim; d++)
            CU_ASSERT_EQUAL(t->u.tensor.shape[d], ti->shape[d]);
        if (ti->kind == ICS_TENSOR_COUNTER) {
            CU_ASSERT_EQUAL(t->u.tensor.dtype, ICS_DT_INT64);
            CU_ASSERT_EQUAL(*(const int64_t *)t->u.tensor.data, *ics_model_tensor_counter(m, i));
            CU_ASSERT_FALSE(t->u.tensor.requires_grad);
        } else {
            CU_ASSERT_EQUAL(t->u.tensor.dtype, ICS_DT_FLOAT32);
            CU_ASSERT(memcmp(t->u.tensor.data, ics_model_tensor_data(m, i),
                             (size_t)ti->numel * sizeof(float)) == 0);
            CU_ASSERT_EQUAL(t->u.tensor.requires_grad, ti->kind != ICS_TENSOR_BUFFER);
        }
    }
    ics_pth_destroy(pth);

    size_t len = 0;
    char *text = zip_text(path, "archive/constants.pkl", &len);
    CU_ASSERT(text && len == 4 && memcmp(text, "\x80\x02).", 4) == 0);
    free(text);
    text = zip_text(path, "archive/version", &len);
    CU_ASSERT(text && strcmp(text, "3\n") == 0);
    free(text);
    text = zip_text(path, "archive/code/__torch__/icsparse.py", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    snprintf(want, sizeof want, "class %s(Module):\n", ics_model_arch(m));
    CU_ASSERT(strncmp(text, want, strlen(want)) == 0);
    snprintf(want, sizeof want, "  def forward(self: __torch__.icsparse.%s,\n    input: Tensor)",
             ics_model_arch(m));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    const char *def = strstr(text, "  def ");
    CU_ASSERT(def && !strstr(def + 1, "  def ")); /* forward is the only method */
    free(text);
}

static void test_archive(void)
{
    ics_error err;
    char path[4600];
    /* simple_cnn: Sequential features and a Linear; resnet18: residual
     * adds, downsample blocks, numbered submodules through getattr */
    const char *archs[] = {"simple_cnn", "resnet18"};
    for (int k = 0; k < 2; k++) {
        ics_model *m = small_model(archs[k], k ? 3 : 1, k ? 16 : 28);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        snprintf(path, sizeof path, "%s/%s.pt", root, archs[k]);
        ics_status st = ics_export_torchscript(m, path, 0, &err);
        if (st != ICS_OK) fprintf(stderr, "%s\n", err.message);
        CU_ASSERT_EQUAL_FATAL(st, ICS_OK);
        check_archive(m, path);
        ics_model_destroy(m);
    }
    size_t len = 0;
    char *src = zip_text(path, "archive/code/__torch__/icsparse.py", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    /* declarations: numbered children by __annotations__, tensors typed */
    CU_ASSERT_PTR_NOT_NULL(strstr(src, "  layer1 : __torch__.icsparse.Sequential\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, "  __annotations__[\"0\"] = __torch__.icsparse.Block\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src,
                                  "class Conv2d(Module):\n  __parameters__ = [\"weight\", ]\n"
                                  "  __buffers__ = []\n  training : bool\n  weight : Tensor\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, "  __buffers__ = [\"running_mean\", \"running_var\", "
                                       "\"num_batches_tracked\", ]\n"));
    /* forward: the ops with torch's argument order, BN counting in train() */
    CU_ASSERT_PTR_NOT_NULL(strstr(
        src, " = torch.conv2d(input, self.conv1.weight, None, [1, 1], [1, 1], [1, 1], 1)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        src, "    if self.training:\n      _2 = torch.add_(self.bn1.num_batches_tracked, 1)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, "self.bn1.running_var, self.training, 0.1, 1e-05, True)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, "getattr(self.layer2, \"0\").downsample, \"0\").weight"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, " = torch.add(x"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, " = torch.adaptive_avg_pool2d(x"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, " = torch.linear(x"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, ", self.fc.weight, self.fc.bias)\n"));
    free(src);

    /* mobilenet_v2: ReLU6 as clamp, grouped convs, dropout in train() only */
    ics_model *m = small_model("mobilenet_v2", 3, 32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    snprintf(path, sizeof path, "%s/mobilenet_v2.pt", root);
    CU_ASSERT_EQUAL_FATAL(ics_export_torchscript(m, path, 0, &err), ICS_OK);
    check_archive(m, path);
    ics_model_destroy(m);
    src = zip_text(path, "archive/code/__torch__/icsparse.py", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    CU_ASSERT_PTR_NOT_NULL(strstr(src, " = torch.clamp(x"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, ", 0.0, 6.0)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, "[1, 1], [1, 1], [1, 1], 32)\n")); /* depthwise, groups 32 */
    CU_ASSERT_PTR_NOT_NULL(strstr(src, " = torch.dropout(x"));
    CU_ASSERT_PTR_NOT_NULL(strstr(src, ", 0.2, self.training)\n"));
    free(src);
}

static void test_refusals(void)
{
    ics_error err;
    char path[4600], dir[4600];
    ics_model *m = small_model("simple_cnn", 1, 28);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    snprintf(dir, sizeof dir, "%s/refusals", root);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/model.pt", dir);
    CU_ASSERT_EQUAL(ics_export_torchscript(m, path, 0, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_export_torchscript(m, path, 0, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "model.pt exists (use --force to replace it)"));
    CU_ASSERT_EQUAL(ics_export_torchscript(m, path, 1, &err), ICS_OK);
    CU_ASSERT_EQUAL(count_entries(dir), 1);
    snprintf(path, sizeof path, "%s/no/such/dir/model.pt", root);
    CU_ASSERT_EQUAL(ics_export_torchscript(m, path, 0, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot create"));
    /* a directory in the way with force: the rename fails, no temporary left */
    snprintf(path, sizeof path, "%s/in_the_way", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0777), 0);
    free(ics_test_write_file(path, "keep", "x"));
    CU_ASSERT_NOT_EQUAL(ics_export_torchscript(m, path, 1, &err), ICS_OK);
    CU_ASSERT_EQUAL(count_entries(dir), 2);
    ics_model_destroy(m);
}

static void test_allocation_failures(void)
{
    ics_model *m = small_model("resnet18", 3, 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char path[4600];
    snprintf(path, sizeof path, "%s/alloc.pt", root);
    ics_error err;
    int failures = 0;
    for (long n = 1;; n++) {
        ics_alloc_fail_after(n);
        ics_status st = ics_export_torchscript(m, path, 1, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_OK) break;
        CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
        CU_ASSERT(access(path, F_OK) != 0);
        failures++;
    }
    CU_ASSERT(failures > 10);
    CU_ASSERT(access(path, F_OK) == 0);
    ics_model_destroy(m);

    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    ics_npz_array a = {"input", "<f4", 2, shape, x};
    snprintf(path, sizeof path, "%s/alloc.npz", root);
    failures = 0;
    for (long n = 1;; n++) {
        ics_alloc_fail_after(n);
        ics_status st = ics_npz_write(path, &a, 1, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_OK) break;
        CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
        CU_ASSERT(access(path, F_OK) != 0);
        failures++;
    }
    CU_ASSERT(failures >= 3);
}

/* numpy's .npy 1.0: magic, version, header length, dict, padding to 64. */
static void test_npz(void)
{
    ics_error err;
    char path[4600];
    snprintf(path, sizeof path, "%s/t.npz", root);
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = 0.5f * (float)i - 3.0f;
    int64_t label = -7;
    int64_t xs[4] = {1, 2, 3, 4}, ls[1] = {1};
    ics_npz_array arrays[2] = {{"input", "<f4", 4, xs, x}, {"label", "<i8", 1, ls, &label}};
    CU_ASSERT_EQUAL_FATAL(ics_npz_write(path, arrays, 2, &err), ICS_OK);
    size_t len = 0;
    char *npy = zip_text(path, "input.npy", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(npy);
    CU_ASSERT(memcmp(npy, "\x93NUMPY\x01\x00", 8) == 0);
    size_t hlen = (size_t)(uint8_t)npy[8] | (size_t)(uint8_t)npy[9] << 8;
    CU_ASSERT_EQUAL((10 + hlen) % 64, 0);
    CU_ASSERT_EQUAL(npy[10 + hlen - 1], '\n');
    const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3, 4), }";
    CU_ASSERT(strncmp(npy + 10, want, strlen(want)) == 0);
    CU_ASSERT_EQUAL(len, 10 + hlen + sizeof x);
    CU_ASSERT(memcmp(npy + 10 + hlen, x, sizeof x) == 0);
    free(npy);
    npy = zip_text(path, "label.npy", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(npy);
    want = "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }";
    CU_ASSERT(strncmp(npy + 10, want, strlen(want)) == 0);
    CU_ASSERT(len >= 8 && memcmp(npy + len - 8, &label, 8) == 0);
    free(npy);

    /* refusals name the file and the array; nothing is written */
    snprintf(path, sizeof path, "%s/bad.npz", root);
    ics_npz_array bad = {"input", "<f8", 4, xs, x};
    CU_ASSERT_EQUAL(ics_npz_write(path, &bad, 1, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "unsupported npy dtype '<f8' for 'input'"));
    bad.descr = "<f4";
    bad.key = "in/put";
    CU_ASSERT_EQUAL(ics_npz_write(path, &bad, 1, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "bad npz key 'in/put'"));
    bad.key = "input";
    bad.ndim = 9;
    CU_ASSERT_EQUAL(ics_npz_write(path, &bad, 1, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "'input' has 9 dimensions (0..8)"));
    int64_t neg[1] = {-1};
    bad.ndim = 1;
    bad.shape = neg;
    CU_ASSERT_EQUAL(ics_npz_write(path, &bad, 1, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "'input' has a bad dimension -1"));
    CU_ASSERT(access(path, F_OK) != 0);
}

/* A dataset of size x size x 1 images, 10 classes, whose val split has
 * 2 rows. */
static int write_dataset(const char *path, int size, int channels)
{
    ics_dataset_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.height = meta.width = size;
    meta.channels = channels;
    for (int c = 0; c < channels; c++)
        meta.mean[c] = meta.std[c] = 0.5;
    meta.source = strdup("test_export_ts");
    ics_error err;
    ics_status st = ics_dataset_meta_number_classes(&meta, 10, &err);
    size_t n = 2 * (size_t)size * size * channels;
    uint8_t *images = calloc(n, 1);
    const int32_t labels[2] = {3, 9};
    const uint8_t *const im[3] = {NULL, images, NULL};
    const int32_t *const lb[3] = {NULL, labels, NULL};
    const int64_t counts[3] = {0, 2, 0};
    ics_dataset_write_options wo = {0, 0};
    if (st == ICS_OK)
        st =
            images ? ics_dataset_write_file(path, &meta, &wo, im, lb, counts, &err) : ICS_ERR_NOMEM;
    free(images);
    ics_dataset_meta_clear(&meta);
    return st == ICS_OK ? 0 : -1;
}

static int export_cli(const char *args, char **out)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/src/apps/icsparse-export %s 2>&1", ics_test_builddir(), args);
    return ics_test_run(cmd, out);
}

static void expect_cli(const char *args, int code, const char *want)
{
    char *out = NULL;
    int rc = export_cli(args, &out);
    if (rc != code || !strstr(out ? out : "", want))
        fprintf(stderr, "\nicsparse-export %s\n-> exit %d (want %d): %s(want \"%s\")\n", args, rc,
                code, out ? out : "", want);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", want));
    free(out);
}

static void test_cli(void)
{
    char ckpt[4600], qat[4600], args[8192], file[4700];
    ics_model *m = small_model("simple_cnn", 1, 28);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    snprintf(ckpt, sizeof ckpt, "%s/cli.h5", root);
    CU_ASSERT_EQUAL_FATAL(export_test_write_checkpoint(m, ckpt, NULL, 0, NULL), 0);
    snprintf(qat, sizeof qat, "%s/cli_qat.h5", root);
    CU_ASSERT_EQUAL_FATAL(export_test_write_checkpoint(m, qat, NULL, 1, NULL), 0);

    snprintf(args, sizeof args, "--checkpoint %s --output %s/c1 --format torchscript --quiet", ckpt,
             root);
    expect_cli(args, 0, "");
    snprintf(file, sizeof file, "%s/c1/model.pt", root);
    check_archive(m, file);
    expect_cli(args, 1, "c1/model.pt exists (use --force to replace it)");
    snprintf(args, sizeof args, "--checkpoint %s --output %s/c2 --format torchscript", qat, root);
    expect_cli(args, 2, "fake quantization (QAT); TorchScript export is fp32 only");
    snprintf(file, sizeof file, "%s/c2", root);
    CU_ASSERT_EQUAL(count_entries(file), 0);

    /* --samples: a count; --samples-from: the configured dataset must exist */
    snprintf(args, sizeof args, "--checkpoint %s --output %s/c3 --sparsezoo-dir %s/z --samples x",
             ckpt, root, root);
    expect_cli(args, 2, "--samples: 'x' is not a count in 0..10000");
    snprintf(args, sizeof args,
             "--checkpoint %s --output %s/c3 --sparsezoo-dir %s/z --samples-from val --set "
             "data.path=%s/missing.h5",
             ckpt, root, root, root);
    expect_cli(args, 1, "missing.h5");
    snprintf(file, sizeof file, "%s/z/model.md", root);
    CU_ASSERT(access(file, F_OK) != 0); /* the card marks a complete directory */
    /* a dataset of another image size, or without the split, is refused */
    char data[4600];
    snprintf(data, sizeof data, "%s/8x8.h5", root);
    CU_ASSERT_EQUAL_FATAL(write_dataset(data, 8, 1), 0);
    snprintf(args, sizeof args,
             "--checkpoint %s --output %s/c3 --sparsezoo-dir %s/z --force --samples-from val "
             "--set data.path=%s",
             ckpt, root, root, data);
    expect_cli(args, 2, "8x8.h5 (8x8x1, 10 classes) does not fit the model (28x28x1, 10 classes)");
    snprintf(data, sizeof data, "%s/28x28.h5", root);
    CU_ASSERT_EQUAL_FATAL(write_dataset(data, 28, 1), 0);
    snprintf(args, sizeof args,
             "--checkpoint %s --output %s/c3 --sparsezoo-dir %s/z --force --samples-from test "
             "--set data.path=%s",
             ckpt, root, root, data);
    expect_cli(args, 2, "28x28.h5 has no test split");
    /* fewer rows than --samples: the rows there are */
    snprintf(args, sizeof args,
             "--checkpoint %s --output %s/c3 --sparsezoo-dir %s/z --force --samples 9 "
             "--samples-from val --set data.path=%s --quiet",
             ckpt, root, root, data);
    expect_cli(args, 0, "");
    snprintf(file, sizeof file, "%s/z/sample_labels", root);
    CU_ASSERT_EQUAL(count_entries(file), 2);

    /* random samples: inputs and outputs, no labels; --samples 0: none */
    snprintf(args, sizeof args,
             "--checkpoint %s --output %s/c4 --sparsezoo-dir %s/z4 --samples 2 --quiet", ckpt, root,
             root);
    expect_cli(args, 0, "");
    const char *files[] = {"model.md",
                           "model.onnx",
                           "training/model.pth",
                           "training/model.pt",
                           "sample_inputs/inp-0000.npz",
                           "sample_inputs/inp-0001.npz",
                           "sample_outputs/out-0001.npz",
                           NULL};
    for (int i = 0; files[i]; i++) {
        snprintf(file, sizeof file, "%s/z4/%s", root, files[i]);
        CU_ASSERT(access(file, F_OK) == 0);
    }
    snprintf(file, sizeof file, "%s/z4/sample_inputs", root);
    CU_ASSERT_EQUAL(count_entries(file), 2);
    snprintf(file, sizeof file, "%s/z4/sample_labels", root);
    CU_ASSERT(access(file, F_OK) != 0);
    snprintf(file, sizeof file, "%s/z4/training/model.pt", root);
    check_archive(m, file);
    snprintf(args, sizeof args,
             "--checkpoint %s --output %s/c5 --sparsezoo-dir %s/z5 --samples 0 --quiet", ckpt, root,
             root);
    expect_cli(args, 0, "");
    snprintf(file, sizeof file, "%s/z5/sample_inputs", root);
    CU_ASSERT(access(file, F_OK) != 0);
    ics_model_destroy(m);
}

int main(void)
{
    root = ics_test_tmpdir("export_ts");
    static const ics_test_case tests[] = {
        {"TorchScript archive read back: module tree, tensors, source", test_archive},
        {"TorchScript refusals, force, nothing half-written", test_refusals},
        {"allocation failures (TorchScript, .npz)", test_allocation_failures},
        {".npz: numpy's .npy 1.0 bytes and refusals", test_npz},
        {"icsparse-export: --format torchscript, QAT, SparseZoo samples", test_cli},
        {NULL, NULL}};
    ics_test_add_suite("export torchscript (no Python)", tests);
    int rc = ics_test_main("test_export_ts");
    if (rc == 0) ics_test_rmtree(root);
    free(root);
    return rc;
}
