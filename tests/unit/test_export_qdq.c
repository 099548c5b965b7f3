/*
 * int8 QDQ ONNX export of QAT models (src/export/export_onnx_qdq.c).
 *
 * Without Python: the QDQ bytes decoded back with protobuf-c (no
 * BatchNormalization left, the Q/DQ pairs, int8 weights equal to the QAT
 * forward's integers with their scales, explicit zero zero points and
 * axis 0, pruned weights int8 zero, int32 biases at input scale x weight
 * scale, an all-zero filter's large bias), and every refusal: BN kept,
 * opset 12, quantizers wider than 8 bits, a bias beyond int32,
 * TorchScript of a QAT checkpoint; its .pth and SparseZoo directory
 * written (no training/model.pt, the card and config.json say int8 QDQ).
 *
 * With onnx/onnxruntime in $PYTHON_TORCH, per architecture: a QAT model
 * made through the API (random weights and BN statistics, a third of each
 * weight pruned to zero, ics_model_qat_prepare, training-mode forwards to
 * set the observers, for some cases observers off and BN frozen) is
 * written as a checkpoint with its recipe and /quant state, exported by
 * icsparse-export at static and dynamic batch and shape, and
 * tests/torchref/export_qdq_check.py checks every file against onnx,
 * onnxruntime and icsparse-eval on the same checkpoint.
 *
 * The QAT .pth and SparseZoo directory (test_pth_zoo): icsparse-export
 * --format pth and --sparsezoo-dir of such checkpoints, the .pth converted
 * back by icsparse-consolidate --from-pth, and
 * tests/torchref/export_qat_pth_check.py: the round trip's eval logits and
 * /quant equal the original's, torch's eager QAT simple_cnn loads the .pth
 * strictly and its logits are within one output step of icsparse's, the
 * SparseZoo samples through onnxruntime on model.onnx.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <icsparse/checkpoint.h>
#include <icsparse/export.h>
#include <icsparse/qat.h>

#include "export/onnx.pb-c.h"
#include "test_export_ckpt.h"
#include "test_util.h"

static char *root;

/* ---- QAT models and checkpoints ------------------------------------------- */

typedef struct qdq_setting {
    int batch, dynamic_shape, opset; /* batch 0: dynamic */
} qdq_setting;

typedef struct qdq_case {
    const char *id, *arch;
    int classes, in_c, h, w, cifar;
    float width;
    int alt_h, alt_w;        /* second image size for --dynamic-shape exports (0: none) */
    int freeze;              /* observers off and BN frozen after the observer forwards */
    int partial;             /* reduce_range, and the Linear layers left unquantized */
    qdq_setting settings[5]; /* ends at opset 0 */
} qdq_case;

static const char *const no_linear[] = {"Linear"};

static void qat_options(const qdq_case *c, ics_qat_options *q)
{
    ics_qat_options_default(q);
    if (c->partial) {
        q->reduce_range = 1;
        q->exclude_types = no_linear;
        q->num_exclude_types = 1;
    }
}

/* The recipe that gives a model the structure qat_options gives it (a
 * QAT checkpoint is loaded through its recipe). */
static const char *qat_recipe(const qdq_case *c)
{
    return c->partial ? "version: 1.1.0\nmodifiers:\n  - !QuantizationModifier\n"
                        "    start_epoch: 0.0\n    reduce_range: true\n"
                        "    exclude_module_types: [Linear]\n"
                      : "version: 1.1.0\nmodifiers:\n  - !QuantizationModifier\n"
                        "    start_epoch: 0.0\n";
}

/* Moves every nonzero weight at least 5% of its row's largest magnitude
 * away from zero, so that exactly the pruned weights quantize to int8 0
 * (a tiny weight would round to 0 too and the sparsity read back from the
 * int8 initializers would exceed the checkpoint's). */
static void keep_nonzero_weights(ics_model *m)
{
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        if (ti->kind != ICS_TENSOR_WEIGHT) continue;
        float *w = ics_model_tensor_data(m, i);
        int64_t rows = ti->shape[0], cols = ti->numel / rows;
        for (int64_t r = 0; r < rows; r++) {
            float amax = 0.0f;
            for (int64_t k = 0; k < cols; k++)
                amax = fmaxf(amax, fabsf(w[r * cols + k]));
            for (int64_t k = 0; k < cols; k++) {
                float *v = &w[r * cols + k];
                if (*v != 0.0f && fabsf(*v) < 0.05f * amax) *v = copysignf(0.05f * amax, *v);
            }
        }
    }
}

/* A few training-mode forwards on random inputs: the activation observers
 * (and the weight scales) take their ranges; BN's running statistics move
 * a little from their random values. */
static int observe(ics_model *m, int batch, uint64_t seed)
{
    const ics_model_options *o = ics_model_get_options(m);
    size_t n = (size_t)batch * (size_t)(o->in_h * o->in_w * o->in_channels);
    float *x = malloc(n * sizeof *x);
    ics_error err;
    int rc = x && ics_model_plan(m, batch, 1, &err) == ICS_OK ? 0 : -1;
    uint64_t rng = seed;
    for (int s = 0; s < 3 && rc == 0; s++) {
        ics_test_fill_uniform(x, n, -2.0f, 2.0f, &rng);
        const float *logits;
        if (ics_model_forward(m, x, batch, &logits, &err) != ICS_OK) {
            fprintf(stderr, "observe: %s\n", err.message);
            rc = -1;
        }
    }
    ics_model_set_training(m, 0);
    free(x);
    return rc;
}

static ics_model_options case_options(const qdq_case *c, int h, int w)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = c->classes;
    o.in_channels = c->in_c;
    o.in_h = h;
    o.in_w = w;
    o.cifar_stem = c->cifar;
    if (c->width > 0) o.width_mult = c->width;
    o.dropout = strcmp(c->arch, "simple_cnn") == 0 || strcmp(c->arch, "lenet") == 0 ? 0.0f : 0.2f;
    return o;
}

/* The case's QAT model at its own input size. */
static ics_model *qat_model(const qdq_case *c, uint64_t seed)
{
    ics_model_options o = case_options(c, c->h, c->w);
    ics_model *m = export_test_model(c->arch, &o, seed);
    if (!m) return NULL;
    keep_nonzero_weights(m);
    ics_qat_options q;
    qat_options(c, &q);
    ics_error err;
    if (ics_model_qat_prepare(m, &q, &err) != ICS_OK || observe(m, 4, seed) != 0) {
        fprintf(stderr, "qat_model %s: %s\n", c->id, err.message);
        ics_model_destroy(m);
        return NULL;
    }
    if (c->freeze) {
        ics_model_qat_set_observers(m, 0);
        ics_model_qat_freeze_bn(m, 1);
    }
    return m;
}

/* Writes a QAT model as a checkpoint: tensors, /quant state and recipe. */
static int write_qat_checkpoint(ics_model *m, const char *path, const char *recipe)
{
    ics_error err;
    ics_checkpoint_info info;
    ics_checkpoint_info_init(&info);
    snprintf(info.arch, sizeof info.arch, "%s", ics_model_arch(m));
    info.model_options = *ics_model_get_options(m);
    snprintf(info.kind, sizeof info.kind, "final");
    info.world_size = 1;
    info.epoch = -1; /* finished: every modifier applied */
    info.sparsity = ics_model_sparsity(m);
    info.qat_active = 1;
    ics_checkpoint_writer *w = NULL;
    ics_status st = ics_checkpoint_begin(path, &w, &err);
    if (st == ICS_OK) st = ics_checkpoint_put_info(w, &info, &err);
    if (st == ICS_OK) st = ics_checkpoint_put_model(w, m, &err);
    if (st == ICS_OK) st = ics_checkpoint_put_quant(w, m, &err);
    if (st == ICS_OK) st = ics_checkpoint_put_text(w, "recipe", recipe, &err);
    if (st == ICS_OK)
        st = ics_checkpoint_commit(w, &err);
    else if (w)
        ics_checkpoint_abort(w);
    if (st != ICS_OK) fprintf(stderr, "write_qat_checkpoint: %s\n", err.message);
    return st == ICS_OK ? 0 : -1;
}

/* The same QAT model (tensors and quantizer state) at another input size:
 * the checkpoint icsparse-eval needs for a second image size. */
static int write_resized(const qdq_case *c, ics_model *m, const char *path)
{
    ics_model_options o = case_options(c, c->alt_h, c->alt_w);
    ics_qat_options q;
    qat_options(c, &q);
    ics_error err;
    ics_model *r = NULL;
    if (ics_model_create(c->arch, &o, &r, &err) != ICS_OK ||
        ics_model_qat_prepare(r, &q, &err) != ICS_OK) {
        fprintf(stderr, "write_resized: %s\n", err.message);
        ics_model_destroy(r);
        return -1;
    }
    size_t n1, n2;
    float *a = ics_model_params(m, &n1), *b = ics_model_params(r, &n2);
    int ok = n1 == n2;
    if (ok) memcpy(b, a, n1 * sizeof *a);
    a = ics_model_buffers(m, &n1);
    b = ics_model_buffers(r, &n2);
    ok = ok && n1 == n2;
    if (ok) memcpy(b, a, n1 * sizeof *a);
    int64_t *c1 = ics_model_counters(m, &n1), *c2 = ics_model_counters(r, &n2);
    ok = ok && n1 == n2;
    if (ok) memcpy(c2, c1, n1 * sizeof *c1);
    a = ics_model_qat_state(m, &n1);
    b = ics_model_qat_state(r, &n2);
    ok = ok && n1 == n2;
    if (ok) {
        memcpy(b, a, n1 * sizeof *a);
        ics_model_qat_set_observers(r, ics_model_qat_observers(m));
    }
    int rc = ok ? write_qat_checkpoint(r, path, qat_recipe(c)) : -1;
    ics_model_destroy(r);
    return rc;
}

/* ---- the ONNX bytes, decoded ------------------------------------------------ */

static Onnx__ModelProto *decode(ics_model *m, const ics_export_options *o)
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

static const Onnx__TensorProto *init_named(const Onnx__ModelProto *p, const char *name)
{
    for (size_t i = 0; i < p->graph->n_initializer; i++)
        if (strcmp(p->graph->initializer[i]->name, name) == 0) return p->graph->initializer[i];
    return NULL;
}

static const Onnx__NodeProto *node_named(const Onnx__ModelProto *p, const char *name)
{
    for (size_t i = 0; i < p->graph->n_node; i++)
        if (strcmp(p->graph->node[i]->name, name) == 0) return p->graph->node[i];
    return NULL;
}

static int count_ops(const Onnx__ModelProto *p, const char *op)
{
    int n = 0;
    for (size_t i = 0; i < p->graph->n_node; i++)
        n += strcmp(p->graph->node[i]->op_type, op) == 0;
    return n;
}

static float f32_at(const Onnx__TensorProto *t, size_t i)
{
    float v;
    memcpy(&v, t->raw_data.data + 4 * i, 4); /* little-endian hosts */
    return v;
}

static int32_t i32_at(const Onnx__TensorProto *t, size_t i)
{
    int32_t v;
    memcpy(&v, t->raw_data.data + 4 * i, 4);
    return v;
}

static const qdq_case simple = {"simple_cnn", "simple_cnn", 10, 1, 28, 28, 0, 0, 0, 0, 0, 0, {{0}}};

/* The layout of the QDQ graph of a QAT simple_cnn. */
static void test_structure(void)
{
    ics_model *m = qat_model(&simple, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    ics_export_options o;
    ics_export_options_default(&o);
    Onnx__ModelProto *p = decode(m, &o);
    /* quant, features.0 / features.4 / classifier activation_post_process;
     * the two max pools and the flatten re-quantized on their source grid */
    CU_ASSERT_EQUAL(count_ops(p, "QuantizeLinear"), 7);
    CU_ASSERT_EQUAL(count_ops(p, "DequantizeLinear"), 7 + 2 * 3);
    CU_ASSERT_EQUAL(count_ops(p, "BatchNormalization"), 0);
    CU_ASSERT_EQUAL(count_ops(p, "Conv"), 2);
    CU_ASSERT_EQUAL(count_ops(p, "Gemm"), 1);
    CU_ASSERT(init_named(p, "features.3.scale") == NULL); /* it reuses its source's */
    const Onnx__NodeProto *pool_q = node_named(p, "features.3/QuantizeLinear");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool_q);
    CU_ASSERT_STRING_EQUAL(pool_q->input[1], "features.0.activation_post_process.scale");

    const char *layers[3] = {"features.0", "features.4", "classifier"};
    const char *inputs[3] = {"quant", "features.0.activation_post_process",
                             "features.4.activation_post_process"};
    for (int l = 0; l < 3; l++) {
        int node = ics_model_find_node(m, layers[l]);
        CU_ASSERT_FATAL(node >= 0);
        int channels = 0;
        const float *scales = ics_model_weight_scales(m, node, &channels, NULL, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(scales);
        char name[256];
        snprintf(name, sizeof name, "%s.weight", layers[l]);
        int wt = ics_model_find_tensor(m, name);
        const ics_tensor_info *wi = ics_model_tensor(m, wt);
        const float *w = ics_model_tensor_data(m, wt);
        float *folded = malloc((size_t)wi->numel * sizeof *folded);
        float *bias = malloc((size_t)channels * sizeof *bias);
        ics_error err;
        CU_ASSERT_EQUAL_FATAL(ics_model_qat_inference_weight(m, node, folded, bias, &err), ICS_OK);
        CU_ASSERT(init_named(p, name) == NULL); /* no float copy of the weight */

        snprintf(name, sizeof name, "%s.weight_quantized", layers[l]);
        const Onnx__TensorProto *q = init_named(p, name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(q);
        CU_ASSERT_EQUAL(q->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__INT8);
        CU_ASSERT_EQUAL_FATAL(q->n_dims, (size_t)wi->ndim);
        for (int d = 0; d < wi->ndim; d++)
            CU_ASSERT_EQUAL(q->dims[d], wi->shape[d]);
        CU_ASSERT_EQUAL_FATAL(q->raw_data.len, (size_t)wi->numel);
        int64_t cols = wi->numel / channels;
        int bad = 0, pruned = 0;
        for (int64_t k = 0; k < wi->numel; k++) {
            int8_t v = (int8_t)q->raw_data.data[k];
            /* the QAT forward's integer: the fake-quantized weight / scale */
            float s = scales[k / cols];
            float want = ics_fake_quant_value(folded[k], s, 0, -128, 127) / s;
            bad += (float)v != nearbyintf(want);
            if (w[k] == 0.0f) {
                pruned++;
                bad += v != 0;
            }
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT(pruned > 0);
        snprintf(name, sizeof name, "%s.weight_scale", layers[l]);
        const Onnx__TensorProto *sc = init_named(p, name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sc);
        for (int c = 0; c < channels; c++)
            CU_ASSERT_EQUAL(f32_at(sc, (size_t)c), scales[c]);
        snprintf(name, sizeof name, "%s.weight_zero_point", layers[l]);
        const Onnx__TensorProto *zp = init_named(p, name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(zp);
        CU_ASSERT_EQUAL(zp->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__INT8);
        CU_ASSERT_EQUAL_FATAL(zp->raw_data.len, (size_t)channels);
        for (int c = 0; c < channels; c++)
            CU_ASSERT_EQUAL(zp->raw_data.data[c], 0);
        snprintf(name, sizeof name, "%s.weight/DequantizeLinear", layers[l]);
        const Onnx__NodeProto *dq = node_named(p, name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(dq);
        CU_ASSERT_EQUAL_FATAL(dq->n_attribute, 1);
        CU_ASSERT_STRING_EQUAL(dq->attribute[0]->name, "axis");
        CU_ASSERT_EQUAL(dq->attribute[0]->i, 0);

        /* the bias: int32 at input scale x weight scale */
        int in_node = ics_model_find_node(m, inputs[l]);
        ics_act_quant aq;
        CU_ASSERT_EQUAL_FATAL(ics_model_act_quant_get(m, in_node, &aq, &err), ICS_OK);
        snprintf(name, sizeof name, "%s.bias_quantized", layers[l]);
        const Onnx__TensorProto *bq = init_named(p, name);
        snprintf(name, sizeof name, "%s.bias_scale", layers[l]);
        const Onnx__TensorProto *bs = init_named(p, name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bq);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bs);
        CU_ASSERT_EQUAL(bq->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__INT32);
        for (int c = 0; c < channels; c++) {
            CU_ASSERT_EQUAL(f32_at(bs, (size_t)c), aq.scale * scales[c]);
            double got = (double)i32_at(bq, (size_t)c) * (double)f32_at(bs, (size_t)c);
            CU_ASSERT(fabs(got - (double)bias[c]) <= 0.5 * (double)f32_at(bs, (size_t)c) + 1e-12);
        }
        free(folded);
        free(bias);
    }
    /* the activation quantizers: per-tensor float scale, uint8 zero point */
    ics_act_quant aq;
    ics_error err;
    int fq = ics_model_find_node(m, "features.4.activation_post_process");
    CU_ASSERT_EQUAL_FATAL(ics_model_act_quant_get(m, fq, &aq, &err), ICS_OK);
    const Onnx__TensorProto *s = init_named(p, "features.4.activation_post_process.scale");
    const Onnx__TensorProto *z = init_named(p, "features.4.activation_post_process.zero_point");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    CU_ASSERT_EQUAL(s->n_dims, 0);
    CU_ASSERT_EQUAL(f32_at(s, 0), aq.scale);
    CU_ASSERT_EQUAL(z->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8);
    CU_ASSERT_EQUAL(z->raw_data.data[0], (uint8_t)aq.zero_point);
    /* the last quantizer's DequantizeLinear gives the graph output */
    const Onnx__NodeProto *last =
        node_named(p, "classifier.activation_post_process/DequantizeLinear");
    CU_ASSERT_PTR_NOT_NULL_FATAL(last);
    CU_ASSERT_STRING_EQUAL(last->output[0], "output");
    onnx__model_proto__free_unpacked(p, NULL);
    ics_model_destroy(m);
}

/* A filter pruned whole with a bias that does not fit int32 at the
 * epsilon scale of an all-zero weight: the filter takes a larger scale
 * (its integers stay 0) and the bias survives. A bias that does not fit
 * beside nonzero weights is refused. */
static void test_bias_range(void)
{
    ics_model *m = qat_model(&simple, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int wt = ics_model_find_tensor(m, "features.0.weight");
    const ics_tensor_info *wi = ics_model_tensor(m, wt);
    int64_t cols = wi->numel / wi->shape[0];
    memset(ics_model_tensor_data(m, wt), 0, (size_t)cols * sizeof(float)); /* filter 0 */
    float *beta = ics_model_tensor_data(m, ics_model_find_tensor(m, "features.1.bias"));
    beta[0] = 1000.0f; /* the folded bias of filter 0 */
    int conv = ics_model_find_node(m, "features.0");
    float *folded = malloc((size_t)wi->numel * sizeof *folded);
    float *bias = malloc((size_t)wi->shape[0] * sizeof *bias);
    ics_error err;
    CU_ASSERT_FATAL(folded && bias);
    CU_ASSERT_EQUAL_FATAL(ics_model_qat_inference_weight(m, conv, folded, bias, &err), ICS_OK);
    ics_export_options o;
    ics_export_options_default(&o);
    Onnx__ModelProto *p = decode(m, &o);
    const Onnx__TensorProto *ws = init_named(p, "features.0.weight_scale");
    const Onnx__TensorProto *bq = init_named(p, "features.0.bias_quantized");
    const Onnx__TensorProto *bs = init_named(p, "features.0.bias_scale");
    const Onnx__TensorProto *q = init_named(p, "features.0.weight_quantized");
    CU_ASSERT_FATAL(ws && bq && bs && q);
    const float *scales = ics_model_weight_scales(m, conv, NULL, NULL, NULL);
    CU_ASSERT(f32_at(ws, 0) > scales[0]); /* raised from the epsilon scale */
    CU_ASSERT(fabsf(bias[0]) > 900.0f);
    for (int64_t k = 0; k < cols; k++)
        CU_ASSERT_EQUAL(q->raw_data.data[k], 0);
    double got = (double)i32_at(bq, 0) * (double)f32_at(bs, 0);
    CU_ASSERT(fabs(got - (double)bias[0]) <= 0.5 * (double)f32_at(bs, 0));
    onnx__model_proto__free_unpacked(p, NULL);
    free(folded);
    free(bias);

    float *fc_bias = ics_model_tensor_data(m, ics_model_find_tensor(m, "classifier.bias"));
    fc_bias[3] = 1e30f;
    uint8_t *bytes = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL(ics_export_onnx_bytes(m, &o, &bytes, &len, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "classifier: bias[3] = 1e+30 does not fit int32"));
    CU_ASSERT_PTR_NULL(bytes);
    ics_model_destroy(m);
}

/* What the QDQ graph cannot express is refused with one line. */
static void test_refusals(void)
{
    ics_model *m = qat_model(&simple, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    ics_export_options o;
    ics_export_options_default(&o);
    o.fold_bn = 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    ics_error err;
    CU_ASSERT_EQUAL(ics_export_onnx_bytes(m, &o, &bytes, &len, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err.message, "--fold-bn false: simple_cnn has fake quantization"));
    /* per-channel DequantizeLinear needs opset 13, the writer's minimum */
    ics_export_options_default(&o);
    o.opset = 12;
    CU_ASSERT_EQUAL(ics_export_onnx_bytes(m, &o, &bytes, &len, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "opset 12 is out of range (13..17)"));
    ics_model_destroy(m);

    ics_export_options_default(&o);
    for (int k = 0; k < 2; k++) {
        ics_model_options mo = case_options(&simple, 28, 28);
        m = export_test_model("simple_cnn", &mo, 6);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        ics_qat_options q;
        ics_qat_options_default(&q);
        if (k == 0)
            q.weight_bits = 16;
        else
            q.activation_bits = 16;
        CU_ASSERT_EQUAL_FATAL(ics_model_qat_prepare(m, &q, &err), ICS_OK);
        CU_ASSERT_EQUAL(ics_export_onnx_bytes(m, &o, &bytes, &len, &err), ICS_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, k == 0 ? "features.0.weight quantizes to "
                                                            "[-32768, 32767], wider than int8"
                                                          : "quant quantizes to [0, 65535], "
                                                            "wider than uint8"));
        ics_model_destroy(m);
    }
}

/* Runs icsparse-export; expects exit code `code` and `want` in its output. */
static void expect_cli(const char *args, int code, const char *want)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/src/apps/icsparse-export %s 2>&1", ics_test_builddir(), args);
    char *out = NULL;
    int rc = ics_test_run(cmd, &out);
    if (rc != code || !strstr(out ? out : "", want))
        fprintf(stderr, "\n%s\n-> exit %d (want %d): %s(want \"%s\")\n", cmd, rc, code,
                out ? out : "", want);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", want));
    free(out);
}

/* icsparse-export on a QAT checkpoint: ONNX (QDQ) and the deployment
 * directory are written and equal the in-memory export; the fp32-only
 * outputs are refused before anything is written. */
static void test_cli(void)
{
    ics_model *m = qat_model(&simple, 7);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char ckpt[4600], args[8192], path[4700];
    snprintf(ckpt, sizeof ckpt, "%s/cli_qat.h5", root);
    CU_ASSERT_EQUAL_FATAL(write_qat_checkpoint(m, ckpt, qat_recipe(&simple)), 0);

    /* the .pth and the SparseZoo directory of a QAT checkpoint are
     * written (their contents: test_pth_zoo below) */
    snprintf(args, sizeof args, "--checkpoint %s --output %s/c0 --format pth --quiet", ckpt, root);
    expect_cli(args, 0, "");
    snprintf(args, sizeof args,
             "--checkpoint %s --output %s/c0 --sparsezoo-dir %s/zoo --samples 1 --quiet", ckpt,
             root, root);
    expect_cli(args, 0, "");
    snprintf(path, sizeof path, "%s/zoo/training/model.pt", root);
    struct stat sb;
    CU_ASSERT_NOT_EQUAL(stat(path, &sb), 0); /* no TorchScript of a QAT model */
    snprintf(path, sizeof path, "%s/zoo/deployment/config.json", root);
    char *json = ics_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(json ? strstr(json, "\"quantization\": {\"format\": \"int8 QDQ\"")
                                : NULL);
    free(json);
    snprintf(path, sizeof path, "%s/zoo/model.md", root);
    char *card = ics_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(card ? strstr(card, "**int8 QDQ**") : NULL);
    CU_ASSERT_PTR_NOT_NULL(card ? strstr(card, "int8 TorchScript is not implemented") : NULL);
    CU_ASSERT_PTR_NOT_NULL(card ? strstr(card, "| `features.4.weight` |") : NULL);
    free(card);
    snprintf(args, sizeof args, "--checkpoint %s --output %s/c1 --format torchscript", ckpt, root);
    expect_cli(args, 2, "int8 TorchScript is not implemented");
    snprintf(args, sizeof args, "--checkpoint %s --output %s/c1 --fold-bn false", ckpt, root);
    expect_cli(args, 1, "--fold-bn false: simple_cnn has fake quantization (QAT)");
    snprintf(path, sizeof path, "%s/c1/model.onnx", root);
    CU_ASSERT_NOT_EQUAL(stat(path, &sb), 0);

    snprintf(args, sizeof args, "--checkpoint %s --output %s/c1 --deployment-dir %s/dep --quiet",
             ckpt, root, root);
    expect_cli(args, 0, "");
    ics_export_options o;
    ics_export_options_default(&o);
    uint8_t *bytes = NULL;
    size_t len = 0, file_len = 0, dep_len = 0;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_export_onnx_bytes(m, &o, &bytes, &len, &err), ICS_OK);
    char *file = ics_test_read_file(path, &file_len);
    snprintf(path, sizeof path, "%s/dep/deployment/model.onnx", root);
    char *dep = ics_test_read_file(path, &dep_len);
    CU_ASSERT_FATAL(file && dep);
    CU_ASSERT(file_len == len && memcmp(file, bytes, len) == 0);
    CU_ASSERT(dep_len == len && memcmp(dep, bytes, len) == 0);
    free(file);
    free(dep);
    free(bytes);
    ics_model_destroy(m);
}

/* ---- against onnx, onnxruntime and icsparse-eval ----------------------------- */

static const qdq_case cases[] = {
    {"simple_cnn", "simple_cnn", 10, 1, 28, 28, 0, 0, 0, 0, 0, 0, {{0, 0, 13}, {2, 0, 17}, {0}}},
    {"simple_cnn_partial", "simple_cnn", 10, 1, 28, 28, 0, 0, 0, 0, 1, 1, {{0, 0, 13}, {0}}},
    {"lenet", "lenet", 10, 1, 28, 28, 0, 0, 0, 0, 0, 0, {{0, 0, 15}, {0}}},
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
     0,
     0,
     {{0, 0, 13}, {2, 0, 14}, {0, 1, 15}, {2, 1, 17}, {0}}},
    {"resnet50_cifar", "resnet50", 10, 3, 32, 32, 1, 0, 48, 48, 1, 0, {{0, 1, 13}, {0}}},
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
     0,
     0,
     {{0, 1, 13}, {2, 0, 17}, {0}}},
    {"vgg11_bn_32", "vgg11_bn", 10, 3, 32, 32, 0, 0, 0, 0, 1, 0, {{0, 0, 13}, {0}}},
    {NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {{0}}}};

static void run_case(const qdq_case *c)
{
    char dir[4096], path[4600], alt[4600], args[8192], manifest[4600];
    snprintf(dir, sizeof dir, "%s/%s", root, c->id);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0777), 0);
    ics_model *m = qat_model(c, 11);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    CU_ASSERT_EQUAL_FATAL(write_qat_checkpoint(m, path, qat_recipe(c)), 0);
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", dir);
    FILE *f = fopen(manifest, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "arch %s %d %d %d %d\n", c->arch, c->classes, c->in_c, c->h, c->w);
    fprintf(f, "eval %s/src/apps/icsparse-eval\n", ics_test_builddir());
    fprintf(f, "ckpt %d %d %s\n", c->h, c->w, path);
    if (c->alt_h) {
        snprintf(alt, sizeof alt, "%s/ckpt_%dx%d.h5", dir, c->alt_h, c->alt_w);
        CU_ASSERT_EQUAL(write_resized(c, m, alt), 0);
        fprintf(f, "ckpt %d %d %s\n", c->alt_h, c->alt_w, alt);
    }
    /* the quantized layers, for the optimized-graph check */
    int convs = 0, linears = 0;
    for (int i = 0; i < ics_model_num_nodes(m); i++) {
        const ics_node *n = ics_model_node(m, i);
        if (n->quant_index >= 0 && n->kind == ICS_OP_CONV2D) convs++;
        if (n->quant_index >= 0 && n->kind == ICS_OP_LINEAR) linears++;
    }
    fprintf(f, "quantized %d %d\n", convs, linears);
    ics_model_destroy(m);
    for (int k = 0; c->settings[k].opset; k++) {
        const qdq_setting *s = &c->settings[k];
        snprintf(args, sizeof args,
                 "%s/src/apps/icsparse-export --quiet --checkpoint %s --output %s/e%d --opset %d "
                 "--batch-size %d %s 2>&1",
                 ics_test_builddir(), path, dir, k, s->opset, s->batch,
                 s->dynamic_shape ? "--dynamic-shape" : "");
        char *out = NULL;
        int rc = ics_test_run(args, &out);
        if (rc != 0) fprintf(stderr, "%s\n-> exit %d: %s\n", args, rc, out ? out : "");
        CU_ASSERT_EQUAL(rc, 0);
        free(out);
        fprintf(f, "onnx %s/e%d/model.onnx %d %d %d\n", dir, k, s->batch, s->dynamic_shape,
                s->opset);
    }
    fclose(f);
    CU_ASSERT_EQUAL(ics_test_run_torch("tests/torchref/export_qdq_check.py", dir), 0);
}

static void test_simple_cnn(void)
{
    run_case(&cases[0]);
}
static void test_simple_cnn_partial(void)
{
    run_case(&cases[1]);
}
static void test_lenet(void)
{
    run_case(&cases[2]);
}
static void test_resnet18(void)
{
    run_case(&cases[3]);
}
static void test_resnet50(void)
{
    run_case(&cases[4]);
}
static void test_mobilenet_v2(void)
{
    run_case(&cases[5]);
}
static void test_vgg11_bn(void)
{
    run_case(&cases[6]);
}

/* The .pth and SparseZoo directory of a QAT checkpoint, converted back
 * and checked by export_qat_pth_check.py (see the top of this file). */
static void pth_zoo_case(const qdq_case *c)
{
    char dir[4096], ckpt[4600], args[16384], manifest[4600];
    snprintf(dir, sizeof dir, "%s/pth_%s", root, c->id);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0777), 0);
    ics_model *m = qat_model(c, 23);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.h5", dir);
    CU_ASSERT_EQUAL_FATAL(write_qat_checkpoint(m, ckpt, qat_recipe(c)), 0);
    ics_model_destroy(m);
    const char *bin = ics_test_builddir();
    const char *stem = c->cifar ? "--set model.cifar_stem=true" : "";
    snprintf(args, sizeof args,
             "%s/src/apps/icsparse-export --quiet --checkpoint %s --output %s/p --format pth "
             "--sparsezoo-dir %s/zoo --samples 8 2>&1 && "
             "ASAN_OPTIONS=\"$ASAN_OPTIONS:detect_leaks=0\" %s/src/apps/icsparse-consolidate "
             "--quiet --from-pth %s/p/model.pth --input-size %dx%d %s -o %s/rt.h5 2>&1 && "
             "ASAN_OPTIONS=\"$ASAN_OPTIONS:detect_leaks=0\" %s/src/apps/icsparse-consolidate "
             "--quiet --from-pth %s/zoo/training/model.pth --input-size %dx%d %s -o %s/rt_zoo.h5 2>&1",
             bin, ckpt, dir, dir, bin, dir, c->h, c->w, stem, dir, bin, dir, c->h, c->w, stem, dir);
    char *out = NULL;
    int rc = ics_test_run(args, &out);
    if (rc != 0) fprintf(stderr, "%s\n-> exit %d: %s\n", args, rc, out ? out : "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    free(out);
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", dir);
    FILE *f = fopen(manifest, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "arch %s %d %d %d %d\n", c->arch, c->classes, c->in_c, c->h, c->w);
    fprintf(f, "eval %s/src/apps/icsparse-eval\n", bin);
    fprintf(f, "ckpt %s\n", ckpt);
    fclose(f);
    CU_ASSERT_EQUAL(ics_test_run_torch("tests/torchref/export_qat_pth_check.py", dir), 0);
}

static void test_pth_zoo_simple_cnn(void)
{
    pth_zoo_case(&cases[0]);
}
static void test_pth_zoo_partial(void)
{
    pth_zoo_case(&cases[1]);
}
static void test_pth_zoo_resnet18(void)
{
    pth_zoo_case(&cases[3]);
}
static void test_pth_zoo_mobilenet_v2(void)
{
    pth_zoo_case(&cases[5]);
}

/* argv[1], when given, runs only the onnxruntime case of that id (or
 * pth_<id>: its .pth / SparseZoo case). */
int main(int argc, char **argv)
{
    root = ics_test_tmpdir("export_qdq");
    static const ics_test_case api[] = {
        {"QDQ layout: Q/DQ pairs, int8 weights = the QAT integers, int32 biases, no BN",
         test_structure},
        {"an all-zero filter's large bias; a bias beyond int32 refused", test_bias_range},
        {"refusals: BN kept, opset 12, quantizers wider than 8 bits", test_refusals},
        {"icsparse-export on a QAT checkpoint: QDQ, .pth, SparseZoo dir; TorchScript refused",
         test_cli},
        {NULL, NULL}};
    ics_test_add_suite("export qdq", api);
    const char *py = getenv("PYTHON_TORCH");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import onnx, onnxruntime, h5py, numpy' 2>&1",
             py && *py ? py : "/usr/bin/python3");
    static const ics_test_case tools[] = {
        {"simple_cnn 28x28: static/dynamic batch, opsets 13 and 17", test_simple_cnn},
        {"simple_cnn, reduce_range, Linear unquantized (observers off, BN frozen)",
         test_simple_cnn_partial},
        {"lenet 28x28: conv and linear biases, Linear+ReLU groups", test_lenet},
        {"resnet18 cifar stem: all four static/dynamic combinations, 40x24", test_resnet18},
        {"resnet50 cifar stem, dynamic shape 48x48 (observers off, BN frozen)", test_resnet50},
        {"mobilenet_v2 32x32 (ReLU6, depthwise), dynamic shape 64x64", test_mobilenet_v2},
        {"vgg11_bn 32x32: MatMul pooling (observers off, BN frozen)", test_vgg11_bn},
        {"QAT .pth and SparseZoo dir of simple_cnn: round trip, torch strict load, samples",
         test_pth_zoo_simple_cnn},
        {"QAT .pth and SparseZoo dir, reduce_range, Linear unquantized", test_pth_zoo_partial},
        {"QAT .pth and SparseZoo dir of resnet18 cifar", test_pth_zoo_resnet18},
        {"QAT .pth and SparseZoo dir of mobilenet_v2", test_pth_zoo_mobilenet_v2},
        {NULL, NULL}};
    static ics_test_case one[2];
    for (int k = 0; argc > 1 && cases[k].id; k++)
        if (strcmp(cases[k].id, argv[1]) == 0) one[0] = tools[k];
    /* "pth_<id>": the .pth / SparseZoo case of that id (after the seven) */
    static const char *const pth_ids[] = {"pth_simple_cnn", "pth_simple_cnn_partial",
                                          "pth_resnet18_cifar", "pth_mobilenet_v2"};
    for (int k = 0; argc > 1 && k < 4; k++)
        if (strcmp(pth_ids[k], argv[1]) == 0) one[0] = tools[7 + k];
    if (ics_test_run(cmd, NULL) == 0)
        ics_test_add_suite("export qdq vs onnxruntime", argc > 1 ? one : tools);
    else
        fprintf(stderr, "test_export_qdq: $PYTHON_TORCH cannot import onnx, onnxruntime, h5py "
                        "and numpy: the onnxruntime cases are skipped\n");
    int rc = ics_test_main("test_export_qdq");
    if (rc == 0) ics_test_rmtree(root);
    free(root);
    return rc;
}
