/*
 * src/models/qat.c: the QAT structure of a model (icsparse/qat.h): which
 * groups are quantized, the fake-quant nodes inserted into the graph, and
 * the quantizers' state.
 *
 * Groups, in graph order: conv [-> BN] [-> ReLU | ReLU6], linear [-> ReLU],
 * add [-> ReLU], average pools. A quantized conv or linear whose input is
 * not yet quantized gets a quantizer on that input first (the model
 * input's is "quant", torch's QuantStub); max pool, flatten and dropout
 * keep their input's quantization. Each quantized group's last node is
 * followed by "<group>.activation_post_process".
 */
#include "models/model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void ics_qat_options_default(ics_qat_options *o)
{
    memset(o, 0, sizeof *o);
    o->weight_bits = 8;
    o->activation_bits = 8;
    o->quantize_conv_activations = 1;
    o->quantize_linear_activations = 1;
    o->fold_bn = 1;
    o->averaging_constant = 0.01;
}

void ics_qat_free(ics_qat *q)
{
    free(q->weight_offset);
    free(q->weight_channels);
    free(q->state);
    ics_free_aligned(q->ctx.wbuf);
    ics_free_aligned(q->ctx.dwbuf);
    ics_free_aligned(q->ctx.mbuf);
    free(q->ctx.fold);
    free(q->ctx.dfold);
    memset(q, 0, sizeof *q);
}

int ics_model_qat_active(const ics_model *m) { return m->qat.active; }

/* ---- selection -------------------------------------------------------------- */

/* 1 when `name` is `prefix` or lies under it (a dotted boundary). */
static int under(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

/* SparseML's own ResNet names for a torchvision-named ResNet: "input" is
 * the stem, "sections[.N[...]]" the layers, "classifier" the head. Writes
 * up to 4 prefixes into out; returns how many (0: not a SparseML name). */
static int sparseml_resnet_names(const char *arch, const char *sel, char out[4][ICS_NAME_MAX])
{
    if (strncmp(arch, "resnet", 6) != 0) return 0;
    if (strcmp(sel, "input") == 0) {
        snprintf(out[0], ICS_NAME_MAX, "conv1");
        snprintf(out[1], ICS_NAME_MAX, "bn1");
        snprintf(out[2], ICS_NAME_MAX, "relu");
        snprintf(out[3], ICS_NAME_MAX, "maxpool");
        return 4;
    }
    if (strcmp(sel, "classifier") == 0) {
        snprintf(out[0], ICS_NAME_MAX, "avgpool");
        snprintf(out[1], ICS_NAME_MAX, "fc");
        return 2;
    }
    if (strcmp(sel, "sections") == 0) {
        for (int i = 0; i < 4; i++) snprintf(out[i], ICS_NAME_MAX, "layer%d", i + 1);
        return 4;
    }
    if (strncmp(sel, "sections.", 9) == 0) {
        char *end = NULL;
        long s = strtol(sel + 9, &end, 10);
        if (end == sel + 9 || s < 0 || s > 3 || (*end != '\0' && *end != '.')) return 0;
        snprintf(out[0], ICS_NAME_MAX, "layer%ld%s", s + 1, end);
        return 1;
    }
    return 0;
}

static const char *const known_types[] = {"Conv2d",    "Linear",  "AdaptiveAvgPool2d", "AvgPool2d",
                                          "Add",       "ReLU",    "ReLU6",             "BatchNorm2d",
                                          "MaxPool2d", "Dropout", "Flatten",           "Identity",
                                          NULL};

static int excluded(const ics_qat_options *o, const char *type)
{
    for (int i = 0; i < o->num_exclude_types; i++)
        if (strcmp(o->exclude_types[i], type) == 0) return 1;
    return 0;
}

/* The module name a group is selected by: its first node's name, or for an
 * unnamed node (a ReLU of a block) the nearest named node before it. */
static int selected(const ics_model *m, const ics_qat_options *o, int node)
{
    if (o->num_submodules == 0) return 1;
    const char *name = m->nodes[node].name;
    for (int j = node; name[0] == '\0' && j > 0; j--) name = m->nodes[j].name;
    char mapped[4][ICS_NAME_MAX];
    for (int i = 0; i < o->num_submodules; i++) {
        int k = sparseml_resnet_names(m->arch, o->submodules[i], mapped);
        if (k == 0 && under(name, o->submodules[i])) return 1;
        for (int j = 0; j < k; j++)
            if (under(name, mapped[j])) return 1;
    }
    return 0;
}

ics_status ics_model_qat_check(const ics_model *m, const ics_qat_options *o, ics_error *err)
{
    if (o->weight_bits < 2 || o->weight_bits > 16 || o->activation_bits < 2 || o->activation_bits > 16)
        return ICS_FAIL(err, ICS_ERR_INVALID, "QAT: bit widths must be in [2, 16] (weights %d, activations %d)",
                        o->weight_bits, o->activation_bits);
    if (!(o->averaging_constant > 0 && o->averaging_constant <= 1))
        return ICS_FAIL(err, ICS_ERR_INVALID, "QAT: averaging constant %g outside (0, 1]", o->averaging_constant);
    for (int i = 0; i < o->num_exclude_types; i++) {
        int ok = 0;
        for (int k = 0; known_types[k]; k++) ok |= strcmp(known_types[k], o->exclude_types[i]) == 0;
        if (!ok)
            return ICS_FAIL(err, ICS_ERR_INVALID,
                            "QAT: unknown module type '%s' to exclude (known: Conv2d, Linear, AdaptiveAvgPool2d, "
                            "AvgPool2d, Add, ReLU, ReLU6, BatchNorm2d, MaxPool2d, Dropout, Flatten, Identity)",
                            o->exclude_types[i]);
    }
    char mapped[4][ICS_NAME_MAX];
    for (int i = 0; i < o->num_submodules; i++) {
        int k = sparseml_resnet_names(m->arch, o->submodules[i], mapped);
        int hit = 0;
        for (int n = 1; n < m->num_nodes && !hit; n++) {
            if (k == 0) hit = under(m->nodes[n].name, o->submodules[i]);
            for (int j = 0; j < k && !hit; j++) hit = under(m->nodes[n].name, mapped[j]);
        }
        if (!hit)
            return ICS_FAIL(err, ICS_ERR_INVALID, "QAT: submodule '%s' names no module of %s", o->submodules[i],
                            m->arch);
    }
    return ICS_OK;
}

/* ---- the rewrite ---------------------------------------------------------- */

/* Number of nodes reading node i. */
static int consumers(const ics_model *m, int i)
{
    int c = 0;
    for (int j = i + 1; j < m->num_nodes; j++)
        for (int k = 0; k < m->nodes[j].num_inputs; k++) c += m->nodes[j].inputs[k] == i;
    return c;
}

/* The node after i when it is i's only reader and of kind a or b. */
static int follows(const ics_model *m, int i, ics_op_kind a, ics_op_kind b)
{
    int j = i + 1;
    if (j >= m->num_nodes || consumers(m, i) != 1) return -1;
    const ics_node *n = &m->nodes[j];
    if (n->num_inputs != 1 || n->inputs[0] != i || (n->kind != a && n->kind != b)) return -1;
    return j;
}

typedef struct plan_entry {
    char fq_name[ICS_NAME_MAX + 32]; /* quantizer after this node ("" none) */
    int weight;                      /* conv / linear with a quantized weight */
    int fold_bn;
} plan_entry;

/* Decides, per original node, what QAT adds (see the file comment). */
static int plan_groups(const ics_model *m, const ics_qat_options *o, plan_entry *pe)
{
    int n = m->num_nodes, count = 0;
    unsigned char *quantized = calloc((size_t)n, 1); /* the node's output is fake-quantized */
    if (!quantized) return -1;
#define QUANT_AFTER(node, fmt, ...)                                                                      \
    do {                                                                                                \
        if (!pe[node].fq_name[0]) {                                                                     \
            snprintf(pe[node].fq_name, sizeof pe[node].fq_name, fmt, __VA_ARGS__);                      \
            count++;                                                                                    \
        }                                                                                               \
        quantized[node] = 1;                                                                            \
    } while (0)
    for (int i = 1; i < n; i++) {
        const ics_node *node = &m->nodes[i];
        int sel = selected(m, o, i);
        switch (node->kind) {
        case ICS_OP_CONV2D:
        case ICS_OP_LINEAR: {
            int conv = node->kind == ICS_OP_CONV2D;
            int last = i, bn = -1;
            if (conv) {
                bn = follows(m, i, ICS_OP_BATCHNORM2D, ICS_OP_BATCHNORM2D);
                if (bn >= 0) last = bn;
                int act = follows(m, last, ICS_OP_RELU, ICS_OP_RELU6);
                if (act >= 0) last = act;
            } else {
                int act = follows(m, i, ICS_OP_RELU, ICS_OP_RELU);
                if (act >= 0) last = act;
            }
            if (!sel || excluded(o, conv ? "Conv2d" : "Linear")) {
                i = last;
                break;
            }
            int src = node->inputs[0];
            if (!quantized[src]) {
                if (src == 0) QUANT_AFTER(src, "%s", "quant");
                else QUANT_AFTER(src, "%s.quant", node->name);
            }
            pe[i].weight = 1;
            pe[i].fold_bn = bn >= 0 && o->fold_bn;
            if (conv ? o->quantize_conv_activations : o->quantize_linear_activations)
                QUANT_AFTER(last, "%s.activation_post_process", node->name);
            i = last;
            break;
        }
        case ICS_OP_ADD: {
            int last = i, act = follows(m, i, ICS_OP_RELU, ICS_OP_RELU);
            if (act >= 0) last = act;
            if (sel && !excluded(o, "Add"))
                QUANT_AFTER(last, "%s.activation_post_process", node->name[0] ? node->name : "add");
            i = last;
            break;
        }
        case ICS_OP_AVGPOOL2D:
        case ICS_OP_ADAPTIVE_AVGPOOL2D:
            if (sel && !excluded(o, node->kind == ICS_OP_AVGPOOL2D ? "AvgPool2d" : "AdaptiveAvgPool2d"))
                QUANT_AFTER(i, "%s.activation_post_process", node->name[0] ? node->name : "avgpool");
            break;
        case ICS_OP_MAXPOOL2D:
        case ICS_OP_FLATTEN:
        case ICS_OP_DROPOUT:
            quantized[i] = quantized[node->inputs[0]];
            break;
        default:
            break;
        }
    }
#undef QUANT_AFTER
    free(quantized);
    return count;
}

/* Allocates the state and scratch for the prepared graph. */
static ics_status alloc_state(ics_model *m, int num_act, ics_error *err)
{
    ics_qat *q = &m->qat;
    int nw = 0;
    size_t max_numel = 1;
    int max_c = 1;
    for (int i = 0; i < m->num_nodes; i++) {
        const ics_node *node = &m->nodes[i];
        if ((node->kind == ICS_OP_CONV2D || node->kind == ICS_OP_LINEAR) && node->quant_index >= 0) {
            nw++;
            size_t numel = (size_t)m->tensors[node->first_tensor].numel;
            if (numel > max_numel) max_numel = numel;
            if (node->out_c > max_c) max_c = node->out_c;
        }
    }
    q->num_act = num_act;
    q->num_weight = nw;
    q->weight_offset = ics_calloc((size_t)nw + 1, sizeof *q->weight_offset, "QAT weight quantizers", err);
    q->weight_channels = ics_calloc((size_t)nw + 1, sizeof *q->weight_channels, "QAT weight quantizers", err);
    if (!q->weight_offset || !q->weight_channels) return ICS_ERR_NOMEM;
    size_t count = ICS_QAT_HEADER + (size_t)num_act * ICS_AQ_FLOATS;
    for (int i = 0; i < m->num_nodes; i++) {
        const ics_node *node = &m->nodes[i];
        if ((node->kind == ICS_OP_CONV2D || node->kind == ICS_OP_LINEAR) && node->quant_index >= 0) {
            q->weight_offset[node->quant_index] = count;
            q->weight_channels[node->quant_index] = node->out_c;
            /* a folded conv's scales are followed by the running variance
             * its last training forward folded with (conv2d_qat.c) */
            count += (size_t)node->out_c * (node->fold_bn ? 2 : 1);
        }
    }
    q->state = ics_calloc(count, sizeof *q->state, "QAT state", err);
    q->ctx.wbuf = ics_malloc_aligned(max_numel * sizeof(float), "QAT weight scratch", err);
    q->ctx.dwbuf = ics_malloc_aligned(max_numel * sizeof(float), "QAT weight scratch", err);
    q->ctx.mbuf = ics_malloc_aligned(max_numel * sizeof(float), "QAT weight scratch", err);
    q->ctx.fold = ics_calloc((size_t)max_c, sizeof(float), "QAT fold factors", err);
    q->ctx.dfold = ics_calloc((size_t)max_c, sizeof(float), "QAT fold factors", err);
    if (!q->state || !q->ctx.wbuf || !q->ctx.dwbuf || !q->ctx.mbuf || !q->ctx.fold || !q->ctx.dfold)
        return ICS_ERR_NOMEM;
    q->state_count = count;
    q->state[ICS_QAT_OBSERVERS] = 1.0f;
    for (int k = 0; k < num_act; k++) q->state[ICS_QAT_HEADER + (size_t)k * ICS_AQ_FLOATS + ICS_AQ_SCALE] = 1.0f;
    for (size_t i = ICS_QAT_HEADER + (size_t)num_act * ICS_AQ_FLOATS; i < count; i++) q->state[i] = 1.0f;
    return ICS_OK;
}

/* Plans again with the same batch and mode (the graph changed). */
static ics_status replan(ics_model *m, ics_error *err)
{
    if (!m->plan.planned) return ICS_OK;
    int training = m->training;
    ics_status st = ics_model_plan(m, m->plan.max_batch, m->plan.training, err);
    m->training = training;
    return st;
}

ics_status ics_model_qat_prepare(ics_model *m, const ics_qat_options *opts, ics_error *err)
{
    ics_qat_options defaults;
    if (!opts) {
        ics_qat_options_default(&defaults);
        opts = &defaults;
    }
    if (m->qat.active)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: the QAT structure is already applied", m->arch);
    ics_status st = ics_model_qat_check(m, opts, err);
    if (st) return st;
    int n = m->num_nodes;
    plan_entry *pe = ics_calloc((size_t)n, sizeof *pe, "QAT plan", err);
    if (!pe) return ICS_ERR_NOMEM;
    int num_fq = plan_groups(m, opts, pe);
    int total = n + (num_fq > 0 ? num_fq : 0);
    ics_node *nodes = num_fq >= 0 ? ics_calloc((size_t)total, sizeof *nodes, "QAT graph", err) : NULL;
    int *index_of = ics_calloc((size_t)n, sizeof *index_of, "QAT graph", err);   /* old -> new */
    int *output_of = ics_calloc((size_t)n, sizeof *output_of, "QAT graph", err); /* what readers read */
    if (num_fq < 0 || !nodes || !index_of || !output_of) {
        free(pe);
        free(nodes);
        free(index_of);
        free(output_of);
        return ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory applying QAT to %s", m->arch);
    }
    int k = 0, act = 0, weights = 0;
    for (int i = 0; i < n; i++) {
        ics_node node = m->nodes[i];
        for (int j = 0; j < node.num_inputs; j++) node.inputs[j] = output_of[node.inputs[j]];
        node.quant_index = -1;
        node.fold_bn = 0;
        if (pe[i].weight) {
            node.quant_index = weights++;
            node.fold_bn = pe[i].fold_bn;
        }
        index_of[i] = k;
        output_of[i] = k;
        nodes[k++] = node;
        if (pe[i].fq_name[0]) {
            ics_node *fq = &nodes[k];
            memset(fq, 0, sizeof *fq);
            fq->kind = ICS_OP_FAKE_QUANT;
            snprintf(fq->name, sizeof fq->name, "%s", pe[i].fq_name);
            fq->num_inputs = 1;
            fq->inputs[0] = index_of[i];
            fq->out_h = node.out_h;
            fq->out_w = node.out_w;
            fq->out_c = node.out_c;
            fq->first_tensor = node.first_tensor + node.num_tensors;
            fq->quant_index = act++;
            output_of[i] = k++;
        }
    }
    free(pe);
    free(output_of);
    ics_node *old = m->nodes;
    m->nodes = nodes;
    m->num_nodes = total;
    m->cap_nodes = total;
    for (int t = 0; t < m->num_tensors; t++) m->tensors[t].node = index_of[m->tensors[t].node];
    free(index_of);
    free(old);
    ics_qat *q = &m->qat;
    st = alloc_state(m, act, err);
    if (st) {
        ics_qat_free(q);
        return st;
    }
    q->ctx.w_qmin = -(1 << (opts->weight_bits - 1));
    q->ctx.w_qmax = (1 << (opts->weight_bits - 1)) - 1;
    q->ctx.act_qmin = 0;
    q->ctx.act_qmax = (1 << (opts->activation_bits - (opts->reduce_range ? 1 : 0))) - 1;
    q->ctx.averaging = (float)opts->averaging_constant;
    q->ctx.observers = 1;
    q->active = 1;
    return replan(m, err);
}

ics_status ics_model_qat_prepare_like(ics_model *dst, const ics_model *src, ics_error *err)
{
    if (!src->qat.active) return ICS_OK;
    if (strcmp(dst->arch, src->arch) != 0 || dst->num_tensors != src->num_tensors)
        return ICS_FAIL(err, ICS_ERR_INVALID, "QAT: cannot copy the structure of %s onto %s", src->arch, dst->arch);
    if (!dst->qat.active) {
        ics_node *nodes = ics_malloc((size_t)src->num_nodes * sizeof *nodes, "QAT graph", err);
        if (!nodes) return ICS_ERR_NOMEM;
        memcpy(nodes, src->nodes, (size_t)src->num_nodes * sizeof *nodes);
        free(dst->nodes);
        dst->nodes = nodes;
        dst->num_nodes = dst->cap_nodes = src->num_nodes;
        for (int t = 0; t < dst->num_tensors; t++) dst->tensors[t].node = src->tensors[t].node;
        ics_status st = alloc_state(dst, src->qat.num_act, err);
        if (st) {
            ics_qat_free(&dst->qat);
            return st;
        }
        ics_qat_ctx ctx = dst->qat.ctx;
        ctx.w_qmin = src->qat.ctx.w_qmin;
        ctx.w_qmax = src->qat.ctx.w_qmax;
        ctx.act_qmin = src->qat.ctx.act_qmin;
        ctx.act_qmax = src->qat.ctx.act_qmax;
        ctx.averaging = src->qat.ctx.averaging;
        dst->qat.ctx = ctx;
        dst->qat.active = 1;
        st = replan(dst, err);
        if (st) return st;
    }
    memcpy(dst->qat.state, src->qat.state, src->qat.state_count * sizeof(float));
    dst->qat.ctx.observers = src->qat.ctx.observers;
    return ICS_OK;
}

ics_status ics_model_qat_calibrate(ics_model *m, const float *x, int batch, ics_error *err)
{
    if (!m->qat.active) return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: calibration needs the QAT structure", m->arch);
    if (m->qat.state[ICS_QAT_OBSERVERS] == 0.0f)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: calibration needs the observers on", m->arch);
    int training = m->training;
    m->training = 0;
    m->qat.ctx.calibrate = 1;
    const float *logits;
    ics_status st = ics_model_forward(m, x, batch, &logits, err);
    m->qat.ctx.calibrate = 0;
    m->training = training;
    return st;
}

/* ---- flags and state ---------------------------------------------------------- */

void ics_model_qat_set_observers(ics_model *m, int enabled)
{
    if (!m->qat.active) return;
    m->qat.state[ICS_QAT_OBSERVERS] = enabled ? 1.0f : 0.0f;
    m->qat.ctx.observers = enabled != 0;
}

int ics_model_qat_observers(const ics_model *m) { return m->qat.active && m->qat.state[ICS_QAT_OBSERVERS] != 0.0f; }

void ics_model_qat_freeze_bn(ics_model *m, int frozen)
{
    if (m->qat.active) m->qat.state[ICS_QAT_BN_FROZEN] = frozen ? 1.0f : 0.0f;
}

int ics_model_qat_bn_frozen(const ics_model *m) { return m->qat.active && m->qat.state[ICS_QAT_BN_FROZEN] != 0.0f; }

float *ics_model_qat_state(ics_model *m, size_t *count)
{
    if (count) *count = m->qat.active ? m->qat.state_count : 0;
    return m->qat.active ? m->qat.state : NULL;
}

static float *act_state(const ics_model *m, int node)
{
    if (!m->qat.active || node < 0 || node >= m->num_nodes || m->nodes[node].kind != ICS_OP_FAKE_QUANT) return NULL;
    return m->qat.state + ICS_QAT_HEADER + (size_t)m->nodes[node].quant_index * ICS_AQ_FLOATS;
}

ics_status ics_model_act_quant_get(const ics_model *m, int node, ics_act_quant *q, ics_error *err)
{
    const float *s = act_state(m, node);
    if (!s) return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: node %d is not a fake-quant node", m->arch, node);
    q->scale = s[ICS_AQ_SCALE];
    q->zero_point = (int32_t)s[ICS_AQ_ZERO_POINT];
    q->quant_min = m->qat.ctx.act_qmin;
    q->quant_max = m->qat.ctx.act_qmax;
    q->min_val = s[ICS_AQ_MIN];
    q->max_val = s[ICS_AQ_MAX];
    q->initialized = s[ICS_AQ_INITIALIZED] != 0.0f;
    return ICS_OK;
}

ics_status ics_model_act_quant_set(ics_model *m, int node, float min_val, float max_val, int initialized,
                                   ics_error *err)
{
    float *s = act_state(m, node);
    if (!s) return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: node %d is not a fake-quant node", m->arch, node);
    if (!isfinite(min_val) || !isfinite(max_val) || min_val > max_val)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: observer range [%g, %g] is not a range", m->nodes[node].name,
                        (double)min_val, (double)max_val);
    s[ICS_AQ_MIN] = min_val;
    s[ICS_AQ_MAX] = max_val;
    s[ICS_AQ_INITIALIZED] = initialized ? 1.0f : 0.0f;
    float scale = 1.0f;
    int32_t zp = 0;
    if (initialized) ics_quant_params(min_val, max_val, m->qat.ctx.act_qmin, m->qat.ctx.act_qmax, 0, &scale, &zp);
    s[ICS_AQ_SCALE] = scale;
    s[ICS_AQ_ZERO_POINT] = (float)zp;
    return ICS_OK;
}

const float *ics_model_weight_scales(const ics_model *m, int node, int *channels, int *quant_min, int *quant_max)
{
    if (!m->qat.active || node < 0 || node >= m->num_nodes) return NULL;
    const ics_node *n = &m->nodes[node];
    if ((n->kind != ICS_OP_CONV2D && n->kind != ICS_OP_LINEAR) || n->quant_index < 0) return NULL;
    if (channels) *channels = m->qat.weight_channels[n->quant_index];
    if (quant_min) *quant_min = m->qat.ctx.w_qmin;
    if (quant_max) *quant_max = m->qat.ctx.w_qmax;
    return m->qat.state + m->qat.weight_offset[n->quant_index];
}

float *ics_model_weight_scales_mut(ics_model *m, int node)
{
    return (float *)ics_model_weight_scales(m, node, NULL, NULL, NULL);
}

ics_status ics_model_qat_inference_weight(ics_model *m, int node, float *w, float *b, ics_error *err)
{
    float *scales = ics_model_weight_scales_mut(m, node);
    if (!scales)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: node %d has no quantized weight", m->arch, node);
    const ics_node *n = &m->nodes[node];
    const ics_tensor_info *wt = &m->tensors[n->first_tensor];
    const float *weight = m->params + wt->offset;
    const float *bias = n->has_bias ? m->params + m->tensors[n->first_tensor + 1].offset : NULL;
    int C = n->out_c;
    int64_t cols = wt->numel / C;
    const float *gamma = NULL, *beta = NULL, *mean = NULL, *var = NULL;
    float eps = 0;
    if (n->fold_bn) {
        const ics_node *bn = &m->nodes[node + 1];
        const ics_tensor_info *t = &m->tensors[bn->first_tensor];
        gamma = m->params + t[0].offset;
        beta = m->params + t[1].offset;
        mean = m->buffers + t[2].offset;
        var = m->buffers + t[3].offset;
        eps = bn->eps;
    }
    for (int c = 0; c < C; c++) {
        float f = gamma ? gamma[c] / sqrtf(var[c] + eps) : 1.0f;
        for (int64_t k = 0; k < cols; k++) w[(int64_t)c * cols + k] = gamma ? weight[(int64_t)c * cols + k] * f
                                                                          : weight[(int64_t)c * cols + k];
        float bc = bias ? bias[c] : 0.0f;
        b[c] = gamma ? beta[c] + (bc - mean[c]) * f : bc;
    }
    if (m->qat.ctx.observers)
        for (int c = 0; c < C; c++) {
            float lo = INFINITY, hi = -INFINITY;
            for (int64_t k = 0; k < cols; k++) {
                float v = w[(int64_t)c * cols + k];
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            int32_t zp;
            ics_quant_params(lo, hi, m->qat.ctx.w_qmin, m->qat.ctx.w_qmax, 1, &scales[c], &zp);
        }
    return ICS_OK;
}
