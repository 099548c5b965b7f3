/*
 * Export API and icsparse-export behaviour without Python: the ONNX bytes
 * decoded back with protobuf-c (IR version per opset, shapes, names,
 * attributes, BN folding to double-precision arithmetic, ReLU6 as Clip,
 * VGG's adaptive pooling), every refusal and error message of
 * src/export and the app, nothing half-written after a failure, and an
 * allocation-failure walk over the ONNX and .pth writers.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <icsparse/checkpoint.h>
#include <icsparse/export.h>

#include "core/alloc.h"
#include "export/onnx.pb-c.h"
#include "test_export_ckpt.h"
#include "test_util.h"

static char *root;
static char ckpt[4096]; /* simple_cnn 1x28x28, 10 classes */

static ics_model *simple_cnn(void)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_channels = 1;
    o.in_h = o.in_w = 28;
    o.dropout = 0.0f;
    return export_test_model("simple_cnn", &o, 5);
}

/* Runs icsparse-export with args; returns the exit code, output in *out. */
static int export_cli(const char *args, char **out)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/src/apps/icsparse-export %s 2>&1", ics_test_builddir(), args);
    return ics_test_run(cmd, out);
}

/* Number of directory entries (0 when dir is missing). */
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

/* Expects exit code `code` and `want` in the one-line error. */
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

static Onnx__ModelProto *export_decode(ics_model *m, const ics_export_options *o)
{
    ics_error err;
    uint8_t *bytes = NULL;
    size_t len = 0;
    ics_status st = ics_export_onnx_bytes(m, o, &bytes, &len, &err);
    if (st != ICS_OK) fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_EQUAL_FATAL(st, ICS_OK);
    Onnx__ModelProto *p = onnx__model_proto__unpack(NULL, len, bytes);
    free(bytes);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    return p;
}

static const Onnx__TensorProto *find_init(const Onnx__ModelProto *p, const char *name)
{
    for (size_t i = 0; i < p->graph->n_initializer; i++)
        if (strcmp(p->graph->initializer[i]->name, name) == 0) return p->graph->initializer[i];
    return NULL;
}

static int count_op(const Onnx__ModelProto *p, const char *op)
{
    int n = 0;
    for (size_t i = 0; i < p->graph->n_node; i++)
        n += strcmp(p->graph->node[i]->op_type, op) == 0;
    return n;
}

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    return NULL;
}

/* simple_cnn decoded: IR per opset, graph input/output, names, attributes,
 * BN kept as BatchNormalization or folded to W*s, (b-mean)*s+beta. */
static void test_onnx_structure(void)
{
    ics_model *m = simple_cnn();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    ics_export_options o;
    ics_export_options_default(&o);
    o.fold_bn = 0;
    o.batch_size = 4;
    Onnx__ModelProto *p = export_decode(m, &o);
    CU_ASSERT_EQUAL(p->ir_version, 7);
    CU_ASSERT_EQUAL(p->n_opset_import, 1);
    CU_ASSERT_EQUAL(p->opset_import[0]->version, 13);
    CU_ASSERT_STRING_EQUAL(p->graph->input[0]->name, "input");
    CU_ASSERT_STRING_EQUAL(p->graph->output[0]->name, "output");
    const Onnx__TensorShapeProto *in = p->graph->input[0]->type->tensor_type->shape;
    CU_ASSERT_EQUAL(in->n_dim, 4);
    int64_t want_in[4] = {4, 1, 28, 28};
    for (int d = 0; d < 4 && in->n_dim == 4; d++)
        CU_ASSERT_EQUAL(in->dim[d]->dim_value, want_in[d]);
    CU_ASSERT_EQUAL(count_op(p, "BatchNormalization"), 2);
    CU_ASSERT_EQUAL(count_op(p, "Conv"), 2);
    CU_ASSERT_EQUAL(count_op(p, "Gemm"), 1);
    CU_ASSERT_EQUAL(count_op(p, "Flatten"), 1);
    CU_ASSERT_EQUAL(count_op(p, "MaxPool"), 2);
    CU_ASSERT_STRING_EQUAL(p->graph->node[p->graph->n_node - 1]->output[0], "output");
    /* Every state_dict float tensor is an initializer, bit for bit. */
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        const Onnx__TensorProto *t = find_init(p, ti->name);
        if (ti->kind == ICS_TENSOR_COUNTER) {
            CU_ASSERT_PTR_NULL(t);
            continue;
        }
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL(t->raw_data.len, (size_t)ti->numel * 4);
        CU_ASSERT(memcmp(t->raw_data.data, ics_model_tensor_data(m, i), t->raw_data.len) == 0);
    }
    for (size_t i = 0; i < p->graph->n_node; i++) {
        const Onnx__NodeProto *n = p->graph->node[i];
        if (strcmp(n->op_type, "Conv") == 0) {
            const Onnx__AttributeProto *pads = find_attr(n, "pads");
            CU_ASSERT_PTR_NOT_NULL_FATAL(pads);
            CU_ASSERT_EQUAL(pads->n_ints, 4);
            CU_ASSERT_EQUAL(pads->ints[0], 1);
            CU_ASSERT_EQUAL(pads->ints[3], 1);
            CU_ASSERT_EQUAL(n->n_input, 2); /* bias=False */
        }
        if (strcmp(n->op_type, "Gemm") == 0) {
            const Onnx__AttributeProto *tb = find_attr(n, "transB");
            CU_ASSERT(tb && tb->has_i && tb->i == 1);
            CU_ASSERT_STRING_EQUAL(n->input[1], "classifier.weight");
        }
        if (strcmp(n->op_type, "BatchNormalization") == 0) {
            const Onnx__AttributeProto *eps = find_attr(n, "epsilon");
            CU_ASSERT(eps && eps->has_f && fabsf(eps->f - 1e-5f) < 1e-12f);
        }
    }
    onnx__model_proto__free_unpacked(p, NULL);

    /* Folded, opset 15 (IR 8), dynamic batch. */
    o.fold_bn = 1;
    o.batch_size = 0;
    o.opset = 15;
    p = export_decode(m, &o);
    CU_ASSERT_EQUAL(p->ir_version, 8);
    CU_ASSERT_EQUAL(count_op(p, "BatchNormalization"), 0);
    in = p->graph->input[0]->type->tensor_type->shape;
    CU_ASSERT_EQUAL(in->dim[0]->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
    CU_ASSERT_STRING_EQUAL(in->dim[0]->dim_param, "batch");
    CU_ASSERT_PTR_NULL(find_init(p, "features.1.running_mean"));
    const Onnx__TensorProto *w = find_init(p, "features.4.weight");
    const Onnx__TensorProto *b = find_init(p, "features.4.bias"); /* new: the conv had none */
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    int wi = ics_model_find_tensor(m, "features.4.weight");
    const float *w0 = ics_model_tensor_data(m, wi);
    const float *g = ics_model_tensor_data(m, ics_model_find_tensor(m, "features.5.weight"));
    const float *beta = ics_model_tensor_data(m, ics_model_find_tensor(m, "features.5.bias"));
    const float *mean =
        ics_model_tensor_data(m, ics_model_find_tensor(m, "features.5.running_mean"));
    const float *var = ics_model_tensor_data(m, ics_model_find_tensor(m, "features.5.running_var"));
    const float *fw = (const float *)w->raw_data.data, *fb = (const float *)b->raw_data.data;
    int exact = 1, zeros_kept = 1;
    for (int oc = 0; oc < 64; oc++) {
        double s = (double)g[oc] / sqrt((double)var[oc] + 1e-5);
        for (int k = 0; k < 32 * 9; k++) {
            exact &= fw[oc * 288 + k] == (float)((double)w0[oc * 288 + k] * s);
            zeros_kept &= (w0[oc * 288 + k] == 0.0f) == (fw[oc * 288 + k] == 0.0f);
        }
        exact &= fb[oc] == (float)((0.0 - (double)mean[oc]) * s + (double)beta[oc]);
    }
    CU_ASSERT(exact);
    CU_ASSERT(zeros_kept);
    onnx__model_proto__free_unpacked(p, NULL);
    ics_model_destroy(m);
}

/* mobilenet_v2: ReLU6 as Clip(x, 0-dim min, 0-dim max); dynamic H/W with
 * GlobalAveragePool; resnet18: residual Adds. */
static void test_onnx_ops(void)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_h = o.in_w = 32;
    o.width_mult = 0.5f;
    ics_model *m = export_test_model("mobilenet_v2", &o, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    ics_export_options e;
    ics_export_options_default(&e);
    e.dynamic_shape = 1;
    Onnx__ModelProto *p = export_decode(m, &e);
    CU_ASSERT_EQUAL(count_op(p, "Clip"), 35);
    CU_ASSERT_EQUAL(count_op(p, "GlobalAveragePool"), 1);
    CU_ASSERT_EQUAL(count_op(p, "Dropout"), 0);
    const Onnx__TensorProto *hi = find_init(p, "relu6.max");
    CU_ASSERT(hi && hi->n_dims == 0 && hi->raw_data.len == 4 &&
              *(const float *)hi->raw_data.data == 6.0f);
    const Onnx__TensorShapeProto *in = p->graph->input[0]->type->tensor_type->shape;
    CU_ASSERT_STRING_EQUAL(in->dim[2]->dim_param, "height");
    CU_ASSERT_STRING_EQUAL(in->dim[3]->dim_param, "width");
    onnx__model_proto__free_unpacked(p, NULL);
    ics_model_destroy(m);

    o.width_mult = 0;
    o.cifar_stem = 1;
    m = export_test_model("resnet18", &o, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    p = export_decode(m, &e);
    CU_ASSERT_EQUAL(count_op(p, "Add"), 8);
    CU_ASSERT_EQUAL(count_op(p, "Conv"), 20);
    CU_ASSERT_EQUAL(count_op(p, "MaxPool"), 0); /* the cifar stem has none */
    onnx__model_proto__free_unpacked(p, NULL);
    ics_model_destroy(m);
}

/* VGG at 32x32: features end 1x1 and adaptive pooling to 7x7 replicates
 * them (two MatMuls with averaging matrices); at 224x224 it is 7x7 already
 * (AveragePool 1x1... equal windows); --dynamic-shape is refused naming the
 * node. */
static void test_onnx_vgg_adaptive(void)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = 10;
    o.in_h = o.in_w = 32;
    ics_model *m = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_model_create("vgg11_bn", &o, &m, &err), ICS_OK);
    ics_export_options e;
    ics_export_options_default(&e);
    e.dynamic_shape = 1;
    uint8_t *bytes = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL(ics_export_onnx_bytes(m, &e, &bytes, &len, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        err.message, "node 'avgpool' (adaptive average pool to 7x7) needs a fixed input size"));
    CU_ASSERT_PTR_NULL(bytes);
    e.dynamic_shape = 0;
    Onnx__ModelProto *p = export_decode(m, &e);
    CU_ASSERT_EQUAL(count_op(p, "MatMul"), 2);
    const Onnx__TensorProto *rows = NULL;
    for (size_t i = 0; i < p->graph->n_initializer; i++)
        if (strstr(p->graph->initializer[i]->name, "pool_rows")) rows = p->graph->initializer[i];
    CU_ASSERT_FATAL(rows && rows->n_dims == 2 && rows->dims[0] == 7 && rows->dims[1] == 1);
    for (int k = 0; k < 7; k++)
        CU_ASSERT_EQUAL(((const float *)rows->raw_data.data)[k], 1.0f);
    onnx__model_proto__free_unpacked(p, NULL);
    ics_model_destroy(m);

    /* 112x112: features 3x3 -> 7x7, overlapping windows: MatMul again; 224:
     * 7x7 -> 7x7, one AveragePool with 1x1 windows. */
    o.in_h = o.in_w = 224;
    CU_ASSERT_EQUAL_FATAL(ics_model_create("vgg11_bn", &o, &m, &err), ICS_OK);
    p = export_decode(m, &e);
    CU_ASSERT_EQUAL(count_op(p, "MatMul"), 0);
    CU_ASSERT_EQUAL(count_op(p, "AveragePool"), 1);
    onnx__model_proto__free_unpacked(p, NULL);
    ics_model_destroy(m);
}

static void test_api_errors(void)
{
    ics_model *m = simple_cnn();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    ics_export_options o;
    ics_export_options_default(&o);
    ics_error err;
    uint8_t *bytes = NULL;
    size_t len = 0;
    o.opset = 18;
    CU_ASSERT_EQUAL(ics_export_onnx_bytes(m, &o, &bytes, &len, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "opset 18 is out of range (13..17)"));
    o.opset = 13;
    o.batch_size = -1;
    CU_ASSERT_EQUAL(ics_export_onnx_bytes(m, &o, &bytes, &len, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "batch size -1 is negative"));
    o.batch_size = 0;
    o.dynamic_shape = 1;
    CU_ASSERT_EQUAL(ics_export_onnx_bytes(m, &o, &bytes, &len, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "classifier needs a fixed 28x28 input"));
    o.dynamic_shape = 0;

    char path[4600];
    /* A missing directory: the temporary file cannot be created. */
    snprintf(path, sizeof path, "%s/no/such/dir/model.onnx", root);
    CU_ASSERT_EQUAL(ics_export_onnx(m, &o, path, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot write"));
    /* A non-empty directory in the way, with force: rename fails, the
     * temporary file is removed. */
    snprintf(path, sizeof path, "%s/api_dir", root);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0777), 0);
    char inner[4700];
    snprintf(inner, sizeof inner, "%s/keep", path);
    free(ics_test_write_file(path, "keep", "x"));
    o.force = 1;
    CU_ASSERT_EQUAL(ics_export_onnx(m, &o, path, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot rename"));
    o.force = 0;
    char apidir_parent[4600];
    snprintf(apidir_parent, sizeof apidir_parent, "%s", root);
    int before = count_entries(apidir_parent);
    CU_ASSERT_EQUAL(ics_export_onnx(m, &o, path, &err), ICS_ERR_IO); /* exists, no force */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "exists (use --force to replace it)"));
    CU_ASSERT_EQUAL(count_entries(apidir_parent), before);

    /* .pth over an existing file without force; a deployment dir whose
     * model.onnx exists. */
    snprintf(path, sizeof path, "%s/api_dir/keep", root);
    CU_ASSERT_EQUAL(ics_export_pth(m, path, 0, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "exists (use --force"));
    char dep[4600];
    snprintf(dep, sizeof dep, "%s/api_dep", root);
    CU_ASSERT_EQUAL(ics_export_deployment_dir(m, &o, dep, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_export_deployment_dir(m, &o, dep, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "deployment/model.onnx exists"));
    char cfgpath[4700];
    snprintf(cfgpath, sizeof cfgpath, "%s/deployment/config.json", dep);
    char *json = ics_test_read_file(cfgpath, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"shape\": [\"batch\", 1, 28, 28]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"arch\": \"simple_cnn\""));
    free(json);

    /* Format names; path limits; opset through the checkpoint driver. */
    ics_export_format f;
    CU_ASSERT_EQUAL(ics_export_format_parse("pth", &f, &err), ICS_OK);
    CU_ASSERT_EQUAL(f, ICS_EXPORT_PTH);
    char *longdir = calloc(5000, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longdir);
    memset(longdir, 'a', 4999);
    CU_ASSERT_EQUAL(
        ics_export_checkpoint(ckpt, ICS_EXPORT_ONNX, &o, longdir, NULL, NULL, NULL, 0, &err),
        ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "path too long"));
    CU_ASSERT_EQUAL(ics_export_deployment_dir(m, &o, longdir, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "path too long"));
    ics_checkpoint_info info;
    ics_checkpoint_info_init(&info);
    CU_ASSERT_EQUAL(ics_export_sparsezoo_dir(m, &info, NULL, &o, longdir, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "path too long"));
    char zoo[4600];
    snprintf(zoo, sizeof zoo, "%s/api_zoo", root);
    CU_ASSERT_EQUAL_FATAL(mkdir(zoo, 0777), 0);
    free(ics_test_write_file(zoo, "model.md", "---\n---\n"));
    CU_ASSERT_EQUAL(ics_export_sparsezoo_dir(m, &info, NULL, &o, zoo, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "model.md exists"));
    CU_ASSERT_EQUAL(count_entries(zoo), 1);
    free(longdir);
    o.opset = 12;
    CU_ASSERT_EQUAL(
        ics_export_checkpoint(ckpt, ICS_EXPORT_ONNX, &o, root, NULL, NULL, NULL, 0, &err),
        ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "ONNX opset 12 is out of range"));
    ics_model_destroy(m);
}

/* Every allocation of the ONNX and .pth writers may fail: each failure is
 * ICS_ERR_NOMEM with nothing written and nothing leaked (ASan). */
static void test_allocation_failures(void)
{
    ics_model *m = simple_cnn();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    ics_export_options o;
    ics_export_options_default(&o);
    o.fold_bn = 1;
    ics_error err;
    int failures = 0;
    for (long n = 1;; n++) {
        uint8_t *bytes = NULL;
        size_t len = 0;
        ics_alloc_fail_after(n);
        ics_status st = ics_export_onnx_bytes(m, &o, &bytes, &len, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_OK) {
            free(bytes);
            break;
        }
        CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
        CU_ASSERT_PTR_NULL(bytes);
        failures++;
    }
    CU_ASSERT(failures > 50);
    char path[4600];
    snprintf(path, sizeof path, "%s/alloc.pth", root);
    failures = 0;
    for (long n = 1;; n++) {
        ics_alloc_fail_after(n);
        ics_status st = ics_export_pth(m, path, 1, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_OK) break;
        CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
        CU_ASSERT(access(path, F_OK) != 0);
        failures++;
    }
    CU_ASSERT(failures > 5);
    CU_ASSERT(access(path, F_OK) == 0);
    ics_model_destroy(m);
}

/* The executable: refusals, one error line each, nothing half-written. */
static void test_cli(void)
{
    char args[8192], out[4600], file[4700];
    snprintf(out, sizeof out, "%s/cli", root);
    snprintf(args, sizeof args, "--checkpoint %s --output %s --quiet", ckpt, out);
    expect_cli(args, 0, "");
    snprintf(file, sizeof file, "%s/model.onnx", out);
    size_t len1 = 0;
    char *first = ics_test_read_file(file, &len1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    expect_cli(args, 1, "model.onnx exists (use --force to replace it)");
    snprintf(args, sizeof args, "--checkpoint %s --output %s --quiet --force --fold-bn false", ckpt,
             out);
    expect_cli(args, 0, "");
    size_t len2 = 0;
    char *second = ics_test_read_file(file, &len2);
    CU_ASSERT(second && len2 > len1); /* BN kept: more initializers */
    free(first);
    free(second);
    CU_ASSERT_EQUAL(count_entries(out), 1);

    snprintf(args, sizeof args, "--checkpoint %s --output %s/o2 --opset 12", ckpt, root);
    expect_cli(args, 2, "export.opset");
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o2 --one-shot r.yaml", ckpt, root);
    expect_cli(args, 2, "r.yaml: cannot open recipe");
    snprintf(args, sizeof args, "--checkpoint %s --output %s/ts --format torchscript --quiet",
             ckpt, root);
    expect_cli(args, 0, ""); /* the archive itself: test_export_ts, test_export_torchscript */
    snprintf(file, sizeof file, "%s/ts/model.pt", root);
    CU_ASSERT(access(file, F_OK) == 0);
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o2 --format tflite", ckpt, root);
    expect_cli(args, 2, "unknown export format 'tflite'");
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o2 --dynamic-shape", ckpt, root);
    expect_cli(args, 1, "simple_cnn flattens a 64x7x7 map");
    char o2[4600];
    snprintf(o2, sizeof o2, "%s/o2", root);
    CU_ASSERT_EQUAL(count_entries(o2), 0); /* nothing half-written */

    /* Not a checkpoint; an unknown arch; a QAT checkpoint. */
    char *bad = ics_test_write_file(root, "bad.h5", "not hdf5\n");
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o2", bad, root);
    expect_cli(args, 1, "bad.h5");
    free(bad);
    ics_model *m = simple_cnn();
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char path[4600];
    snprintf(path, sizeof path, "%s/unknown_arch.h5", root);
    CU_ASSERT_EQUAL(export_test_write_checkpoint(m, path, "resnet9000", 0, NULL), 0);
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o2", path, root);
    expect_cli(args, 2, "unknown model arch 'resnet9000'");
    snprintf(path, sizeof path, "%s/qat.h5", root);
    CU_ASSERT_EQUAL(export_test_write_checkpoint(m, path, NULL, 1, NULL), 0);
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o2", path, root);
    expect_cli(args, 1, "a QAT checkpoint without its recipe"); /* QDQ: test_export_qdq */
    ics_model_destroy(m);
    CU_ASSERT_EQUAL(count_entries(o2), 0);

    /* Output under a regular file; output that is a regular file. */
    snprintf(args, sizeof args, "--checkpoint %s --output %s/model.onnx/sub", ckpt, out);
    expect_cli(args, 1, "cannot create directory");
    snprintf(args, sizeof args, "--checkpoint %s --output %s/model.onnx", ckpt, out);
    expect_cli(args, 1, "is not a directory");

    /* .pth and the deployment directory through the executable; a
     * deployment dir in the way stops the export before any file. */
    snprintf(args, sizeof args,
             "--checkpoint %s --output %s/p --format pth --deployment-dir %s/d --quiet", ckpt, root,
             root);
    expect_cli(args, 0, "");
    snprintf(file, sizeof file, "%s/p/model.pth", root);
    CU_ASSERT(access(file, F_OK) == 0);
    snprintf(file, sizeof file, "%s/d/deployment/config.json", root);
    CU_ASSERT(access(file, F_OK) == 0);
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o3 --deployment-dir %s/d", ckpt, root,
             root);
    expect_cli(args, 1, "deployment/model.onnx exists");
    char o3[4600];
    snprintf(o3, sizeof o3, "%s/o3", root);
    CU_ASSERT_EQUAL(count_entries(o3), 0);

    /* A SparseZoo directory from a checkpoint with a recipe. */
    ics_model *zm = simple_cnn();
    CU_ASSERT_PTR_NOT_NULL_FATAL(zm);
    const char *recipe =
        "version: 1.1.0\nmodifiers:\n  - !EpochRangeModifier\n    end_epoch: 2.0\n";
    snprintf(path, sizeof path, "%s/with_recipe.h5", root);
    CU_ASSERT_EQUAL(export_test_write_checkpoint(zm, path, NULL, 0, recipe), 0);
    ics_model_destroy(zm);
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o4 --sparsezoo-dir %s/zoo --quiet",
             path, root, root);
    expect_cli(args, 0, "");
    const char *zoo_files[] = {"model.md",
                               "model.onnx",
                               "deployment/model.onnx",
                               "deployment/config.json",
                               "training/model.pth",
                               "recipe/recipe_original.md",
                               NULL};
    for (int i = 0; zoo_files[i]; i++) {
        snprintf(file, sizeof file, "%s/zoo/%s", root, zoo_files[i]);
        CU_ASSERT(access(file, F_OK) == 0);
    }
    snprintf(file, sizeof file, "%s/zoo/recipe/recipe_original.md", root);
    char *text = ics_test_read_file(file, NULL);
    CU_ASSERT(text && strcmp(text, recipe) == 0);
    free(text);
    snprintf(file, sizeof file, "%s/zoo/model.md", root);
    text = ics_test_read_file(file, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT(strncmp(text, "---\n", 4) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "architecture: simple_cnn\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "input_shape: [1, 28, 28]\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "val_top1: null"));
    free(text);
    /* Again into another --output: the zoo's model.onnx stops it first. */
    snprintf(args, sizeof args, "--checkpoint %s --output %s/o5 --sparsezoo-dir %s/zoo", path, root,
             root);
    expect_cli(args, 1, "zoo/model.onnx exists");
    char o5[4600];
    snprintf(o5, sizeof o5, "%s/o5", root);
    CU_ASSERT_EQUAL(count_entries(o5), 0);
}

int main(void)
{
    root = ics_test_tmpdir("export");
    ics_model *m = simple_cnn();
    snprintf(ckpt, sizeof ckpt, "%s/simple_cnn.h5", root);
    if (!m || export_test_write_checkpoint(m, ckpt, NULL, 0, NULL) != 0) return 1;
    ics_model_destroy(m);
    static const ics_test_case tests[] = {
        {"ONNX structure, IR per opset, BN kept and folded exactly", test_onnx_structure},
        {"ReLU6 as Clip, dynamic height/width, residual adds", test_onnx_ops},
        {"VGG adaptive pooling: replication, equal windows, dynamic shape refused",
         test_onnx_vgg_adaptive},
        {"API errors and refusals", test_api_errors},
        {"allocation failures", test_allocation_failures},
        {"icsparse-export: refusals, nothing half-written", test_cli},
        {NULL, NULL}};
    ics_test_add_suite("export", tests);
    int rc = ics_test_main("test_export");
    if (rc == 0) ics_test_rmtree(root);
    free(root);
    return rc;
}
