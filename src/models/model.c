/*
 * src/models/model.c: model creation by arch key, the tensor slabs, access
 * to the graph and tensors, and torchvision-style initialization.
 */
#include "models/model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static const char *const arch_names[] = {"resnet18",  "resnet34",     "resnet50",
                                         "resnet101", "mobilenet_v2", "vgg11_bn",
                                         "vgg16_bn",  "simple_cnn",   "lenet",
                                         NULL};

const char *const *ics_model_arch_names(void) { return arch_names; }

const char *ics_op_kind_name(ics_op_kind kind)
{
    static const char *const names[ICS_OP_COUNT] = {
        [ICS_OP_INPUT] = "input",
        [ICS_OP_CONV2D] = "conv2d",
        [ICS_OP_BATCHNORM2D] = "batchnorm2d",
        [ICS_OP_RELU] = "relu",
        [ICS_OP_RELU6] = "relu6",
        [ICS_OP_MAXPOOL2D] = "maxpool2d",
        [ICS_OP_AVGPOOL2D] = "avgpool2d",
        [ICS_OP_ADAPTIVE_AVGPOOL2D] = "adaptive_avgpool2d",
        [ICS_OP_ADD] = "add",
        [ICS_OP_FLATTEN] = "flatten",
        [ICS_OP_DROPOUT] = "dropout",
        [ICS_OP_LINEAR] = "linear",
        [ICS_OP_FAKE_QUANT] = "fake_quant",
    };
    if ((int)kind < 0 || kind >= ICS_OP_COUNT) return "unknown";
    return names[kind];
}

void ics_model_options_default(ics_model_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->num_classes = 1000;
    opts->in_channels = 3;
    opts->in_h = 224;
    opts->in_w = 224;
    opts->width_mult = 1.0f;
    opts->cifar_stem = 0;
    opts->dropout = -1.0f;
}

/* Fills zero fields with defaults and range-checks the rest. */
static ics_status resolve_options(const ics_model_options *in, ics_model_options *out,
                                  ics_error *err)
{
    ics_model_options_default(out);
    if (!in) return ICS_OK;
    *out = *in;
    if (out->num_classes == 0) out->num_classes = 1000;
    if (out->in_channels == 0) out->in_channels = 3;
    if (out->in_h == 0) out->in_h = 224;
    if (out->in_w == 0) out->in_w = 224;
    if (out->width_mult == 0.0f) out->width_mult = 1.0f;
    if (out->num_classes < 1)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model: num_classes must be >= 1, got %d",
                        out->num_classes);
    if (out->in_channels < 1)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model: in_channels must be >= 1, got %d",
                        out->in_channels);
    if (out->in_h < 1 || out->in_w < 1)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model: input size must be positive, got %dx%d",
                        out->in_h, out->in_w);
    if (!(out->width_mult > 0.0f) || out->width_mult > 16.0f)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model: width_mult must be in (0, 16], got %g",
                        (double)out->width_mult);
    if (out->dropout >= 1.0f || isnan(out->dropout))
        return ICS_FAIL(err, ICS_ERR_INVALID, "model: dropout must be < 1, got %g",
                        (double)out->dropout);
    return ICS_OK;
}

ics_status ics_model_create(const char *arch, const ics_model_options *opts, ics_model **out,
                            ics_error *err)
{
    ics_error local;
    if (!err) err = &local; /* the builders read err->status back */
    ics_error_clear(err);
    *out = NULL;
    ics_model *m = ics_calloc(1, sizeof *m, "model", err);
    if (!m) return ICS_ERR_NOMEM;
    ics_status st = resolve_options(opts, &m->opts, err);
    if (st != ICS_OK) goto fail;
    snprintf(m->arch, sizeof m->arch, "%s", arch ? arch : "");
    m->dropout_seed = 0;

    if (ics_build_input(m, err) < 0) {
        st = err->status;
        goto fail;
    }
    if (!arch) arch = "";
    if (strcmp(arch, "resnet18") == 0) st = ics_build_resnet(m, 18, err);
    else if (strcmp(arch, "resnet34") == 0) st = ics_build_resnet(m, 34, err);
    else if (strcmp(arch, "resnet50") == 0) st = ics_build_resnet(m, 50, err);
    else if (strcmp(arch, "resnet101") == 0) st = ics_build_resnet(m, 101, err);
    else if (strcmp(arch, "mobilenet_v2") == 0) st = ics_build_mobilenet_v2(m, err);
    else if (strcmp(arch, "vgg11_bn") == 0) st = ics_build_vgg_bn(m, 11, err);
    else if (strcmp(arch, "vgg16_bn") == 0) st = ics_build_vgg_bn(m, 16, err);
    else if (strcmp(arch, "simple_cnn") == 0) st = ics_build_simple_cnn(m, err);
    else if (strcmp(arch, "lenet") == 0) st = ics_build_lenet(m, err);
    else
        st = ICS_FAIL(err, ICS_ERR_CONFIG,
                      "unknown model arch '%s' (known: resnet18, resnet34, resnet50, resnet101, "
                      "mobilenet_v2, vgg11_bn, vgg16_bn, simple_cnn, lenet)",
                      arch);
    if (st != ICS_OK) goto fail;

    /* The slabs. Zeroed memory (calloc) stays untouched until used, so a
     * model that is only inspected (names and shapes) costs little. */
    st = ICS_ERR_NOMEM;
    m->params = ics_calloc(m->num_params ? m->num_params : 1, sizeof(float), "parameter slab", err);
    if (!m->params) goto fail;
    m->grads = ics_calloc(m->num_params ? m->num_params : 1, sizeof(float), "gradient slab", err);
    if (!m->grads) goto fail;
    m->buffers = ics_calloc(m->num_buffers ? m->num_buffers : 1, sizeof(float), "buffer slab", err);
    if (!m->buffers) goto fail;
    m->counters =
        ics_calloc(m->num_counters ? m->num_counters : 1, sizeof(int64_t), "counter slab", err);
    if (!m->counters) goto fail;
    /* torch's BatchNorm2d starts with running_var = 1. */
    for (int i = 0; i < m->num_tensors; i++) {
        const ics_tensor_info *t = &m->tensors[i];
        if (t->kind == ICS_TENSOR_BUFFER && strstr(t->name, ".running_var"))
            for (int64_t k = 0; k < t->numel; k++) m->buffers[t->offset + (size_t)k] = 1.0f;
    }
    m->training = 1;
    ics_rng_init(&m->dropout_rng, 0, 0, 2);
    *out = m;
    return ICS_OK;
fail:
    ics_model_destroy(m);
    return st;
}

void ics_model_destroy(ics_model *m)
{
    if (!m) return;
    ics_plan_free(&m->plan);
    ics_qat_free(&m->qat);
    free(m->nodes);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->buffers);
    free(m->counters);
    free(m);
}

const char *ics_model_arch(const ics_model *m) { return m->arch; }
const ics_model_options *ics_model_get_options(const ics_model *m) { return &m->opts; }
int ics_model_num_nodes(const ics_model *m) { return m->num_nodes; }

const ics_node *ics_model_node(const ics_model *m, int index)
{
    return index >= 0 && index < m->num_nodes ? &m->nodes[index] : NULL;
}

int ics_model_find_node(const ics_model *m, const char *name)
{
    for (int i = 0; i < m->num_nodes; i++)
        if (m->nodes[i].name[0] && strcmp(m->nodes[i].name, name) == 0) return i;
    return -1;
}

int ics_model_num_tensors(const ics_model *m) { return m->num_tensors; }

const ics_tensor_info *ics_model_tensor(const ics_model *m, int index)
{
    return index >= 0 && index < m->num_tensors ? &m->tensors[index] : NULL;
}

int ics_model_find_tensor(const ics_model *m, const char *name)
{
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

float *ics_model_tensor_data(ics_model *m, int index)
{
    const ics_tensor_info *t = ics_model_tensor(m, index);
    if (!t || t->kind == ICS_TENSOR_COUNTER) return NULL;
    return t->kind == ICS_TENSOR_BUFFER ? m->buffers + t->offset : m->params + t->offset;
}

float *ics_model_tensor_grad(ics_model *m, int index)
{
    const ics_tensor_info *t = ics_model_tensor(m, index);
    if (!t || t->kind == ICS_TENSOR_COUNTER || t->kind == ICS_TENSOR_BUFFER) return NULL;
    return m->grads + t->offset;
}

int64_t *ics_model_tensor_counter(ics_model *m, int index)
{
    const ics_tensor_info *t = ics_model_tensor(m, index);
    return t && t->kind == ICS_TENSOR_COUNTER ? m->counters + t->offset : NULL;
}

float *ics_model_params(ics_model *m, size_t *count)
{
    if (count) *count = m->num_params;
    return m->params;
}

float *ics_model_grads(ics_model *m, size_t *count)
{
    if (count) *count = m->num_params;
    return m->grads;
}

float *ics_model_buffers(ics_model *m, size_t *count)
{
    if (count) *count = m->num_buffers;
    return m->buffers;
}

int64_t *ics_model_counters(ics_model *m, size_t *count)
{
    if (count) *count = m->num_counters;
    return m->counters;
}

/* torch.nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"):
 * std = sqrt(2 / fan_out), fan_out = out_channels * kh * kw (torch counts
 * the receptive field of one output channel, not divided by groups). */
static void init_conv_weight(float *w, const ics_tensor_info *t, ics_rng *rng)
{
    double fan_out = (double)t->shape[0] * (double)t->shape[2] * (double)t->shape[3];
    double std = sqrt(2.0 / fan_out);
    for (int64_t i = 0; i < t->numel; i++) w[i] = (float)(std * ics_rng_normal(rng));
}

/* torch's nn.Linear.reset_parameters: kaiming_uniform(a = sqrt(5)) gives
 * bound = gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)), i.e.
 * 1/sqrt(fan_in); the bias uses the same bound. */
static void init_uniform(float *w, int64_t n, double bound, ics_rng *rng)
{
    for (int64_t i = 0; i < n; i++) w[i] = (float)(bound * (2.0 * ics_rng_uniform(rng) - 1.0));
}

void ics_model_init_params(ics_model *m, uint64_t seed)
{
    /* Stream 1 is initialization (dropout uses stream 2). One generator
     * walks the table in order, so the values depend only on the seed. */
    ics_rng rng;
    ics_rng_init(&rng, seed, 0, 1);
    for (int i = 0; i < m->num_tensors; i++) {
        const ics_tensor_info *t = &m->tensors[i];
        const ics_node *n = &m->nodes[t->node];
        float *data = ics_model_tensor_data(m, i);
        switch (t->kind) {
        case ICS_TENSOR_WEIGHT:
            if (n->kind == ICS_OP_CONV2D) {
                init_conv_weight(data, t, &rng);
            } else if (m->linear_init == ICS_LINEAR_INIT_NORMAL_001) {
                for (int64_t k = 0; k < t->numel; k++) data[k] = (float)(0.01 * ics_rng_normal(&rng));
            } else {
                init_uniform(data, t->numel, 1.0 / sqrt((double)t->shape[1]), &rng);
            }
            break;
        case ICS_TENSOR_BIAS:
            if (n->kind == ICS_OP_LINEAR && m->linear_init == ICS_LINEAR_INIT_TORCH_DEFAULT) {
                const ics_tensor_info *w = &m->tensors[n->first_tensor];
                init_uniform(data, t->numel, 1.0 / sqrt((double)w->shape[1]), &rng);
            } else {
                memset(data, 0, (size_t)t->numel * sizeof(float));
            }
            break;
        case ICS_TENSOR_BN_WEIGHT:
            for (int64_t k = 0; k < t->numel; k++) data[k] = 1.0f;
            break;
        case ICS_TENSOR_BN_BIAS:
            memset(data, 0, (size_t)t->numel * sizeof(float));
            break;
        case ICS_TENSOR_BUFFER: {
            float v = strstr(t->name, ".running_var") ? 1.0f : 0.0f;
            for (int64_t k = 0; k < t->numel; k++) data[k] = v;
            break;
        }
        case ICS_TENSOR_COUNTER:
            m->counters[t->offset] = 0;
            break;
        }
    }
}

double ics_model_sparsity(ics_model *m)
{
    double zeros = 0, total = 0;
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *t = ics_model_tensor(m, i);
        if (!t->prunable) continue;
        const float *w = ics_model_tensor_data(m, i);
        for (int64_t k = 0; k < t->numel; k++) zeros += w[k] == 0.0f;
        total += (double)t->numel;
    }
    return total > 0 ? zeros / total : 0.0;
}
