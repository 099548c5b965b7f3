/*
 * torch's eager-mode QAT state in a state_dict, mapped onto a QAT model's
 * quantizers (icsparse/qat.h). What torch.ao.quantization.prepare_qat
 * (torch 1.13) leaves, for a fused ConvBnReLU2d "features.0" inside a
 * QuantWrapper:
 *
 *   quant.activation_post_process.{fake_quant_enabled, observer_enabled,
 *       scale, zero_point}                               the input's quantizer
 *   quant.activation_post_process.activation_post_process.{eps, min_val,
 *       max_val}                                         its observer
 *   module.features.0.weight, module.features.0.bn.*     the fused conv and BN
 *   module.features.0.weight_fake_quant.{..., scale[C], zero_point[C]}
 *   module.features.0.weight_fake_quant.activation_post_process.{eps,
 *       min_val[C], max_val[C]}
 *   module.features.0.activation_post_process.*          the group's output
 *
 * An observer directly under its module (prepare() without fake quant:
 * "<m>.activation_post_process.min_val") reads the same. icsparse names
 * its quantizers "quant" (the model input), "<module>.quant" (an input
 * after an unquantized module), "<first module of the group>.activation_post_process"
 * and the weights' by their conv or linear; a residual block's
 * FloatFunctional ("<block>.skip_add_relu.activation_post_process",
 * torchvision's quantizable ResNet) is "<block>.add.activation_post_process".
 *
 * Activation quantizers take the observer's min_val / max_val (scale and
 * zero point follow, as torch computes them); weight quantizers take the
 * per-channel scales (icsparse's weights are symmetric: zero points must
 * be 0), which the observers recompute from the weights while they are on.
 * The observer flag is the file's observer_enabled.
 */
#include "io/pth_import_internal.h"

#include <icsparse/qat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

int ics_pth_is_qat_key(const char *name)
{
    return strstr(name, "fake_quant") != NULL || strstr(name, "activation_post_process") != NULL;
}

int ics_pth_fused_bn_name(const ics_model *model, const char *name, char *out, size_t size)
{
    const char *bn = strstr(name, ".bn.");
    if (!bn || bn == name) return 0;
    char conv[ICS_NAME_MAX];
    size_t len = (size_t)(bn - name);
    if (len >= sizeof conv) return 0;
    memcpy(conv, name, len);
    conv[len] = '\0';
    int c = ics_model_find_node(model, conv);
    if (c < 0 || c + 1 >= ics_model_num_nodes(model)) return 0;
    const ics_node *next = ics_model_node(model, c + 1);
    if (ics_model_node(model, c)->kind != ICS_OP_CONV2D || next->kind != ICS_OP_BATCHNORM2D ||
        next->num_inputs != 1 || next->inputs[0] != c)
        return 0;
    int n = snprintf(out, size, "%s.%s", next->name, bn + 4);
    return n > 0 && (size_t)n < size;
}

enum { F_SCALE, F_ZERO_POINT, F_MIN, F_MAX, F_OBSERVER, F_FAKE_QUANT, F_EPS, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "scale", "zero_point", "min_val", "max_val", "observer_enabled", "fake_quant_enabled", "eps"};

#define APP "activation_post_process"

/* Splits a QAT key into its quantizer's module path (owner; for activations
 * ending in ".activation_post_process") and its field; -1 when the key is
 * not of that form. */
static int parse_key(const char *name, char *owner, size_t size, int *weight)
{
    const char *rest;
    size_t len;
    const char *w = strstr(name, ".weight_fake_quant.");
    if (w) {
        len = (size_t)(w - name);
        rest = w + strlen(".weight_fake_quant.");
        *weight = 1;
    } else {
        const char *a =
            strncmp(name, APP ".", strlen(APP ".")) == 0 ? name : strstr(name, "." APP ".");
        if (!a) return -1;
        if (a != name) a++;
        len = (size_t)(a - name) + strlen(APP);
        rest = a + strlen(APP ".");
        *weight = 0;
    }
    if (len >= size) return -1;
    memcpy(owner, name, len);
    owner[len] = '\0';
    /* FakeQuantize holds its observer as another activation_post_process */
    while (strncmp(rest, APP ".", strlen(APP ".")) == 0)
        rest += strlen(APP ".");
    for (int f = 0; f < F_COUNT; f++)
        if (strcmp(rest, field_names[f]) == 0) return f;
    return -1;
}

static int is_fake_quant(const ics_model *m, int node)
{
    return node >= 0 && ics_model_node(m, node)->kind == ICS_OP_FAKE_QUANT;
}

/* The fake-quant node an activation owner stands for, or -1. */
static int activation_node(const ics_model *m, const char *owner)
{
    int k = ics_model_find_node(m, owner);
    if (is_fake_quant(m, k)) return k;
    size_t len = strlen(owner), suffix = strlen("." APP);
    if (len <= suffix || strcmp(owner + len - suffix, "." APP) != 0) return -1;
    char module[ICS_NAME_MAX + 64];
    if (len - suffix >= sizeof module) return -1;
    memcpy(module, owner, len - suffix);
    module[len - suffix] = '\0';
    /* QuantStub "quant" (and "<m>.quant"): its observer is the quantizer */
    k = ics_model_find_node(m, module);
    if (is_fake_quant(m, k)) return k;
    /* a residual block's FloatFunctional: skip_add, skip_add_relu, add_relu */
    const char *dot = strrchr(module, '.');
    if (dot && strstr(dot + 1, "add")) {
        char name[ICS_NAME_MAX + 96];
        snprintf(name, sizeof name, "%.*s.add." APP, (int)(dot - module), module);
        k = ics_model_find_node(m, name);
        if (is_fake_quant(m, k)) return k;
    }
    return -1;
}

/* The conv or linear node with a quantized weight owner names, or -1. */
static int weight_node(const ics_model *m, const char *owner)
{
    int k = ics_model_find_node(m, owner);
    return k >= 0 && ics_model_weight_scales(m, k, NULL, NULL, NULL) ? k : -1;
}

typedef struct quantizer {
    const ics_pth_entry *f[F_COUNT];
    int set_range; /* activation: min, max, initialized below are from the file */
    float min_val, max_val;
    int initialized;
    float *scales; /* weight: the file's per-channel scales */
    int channels;
} quantizer;

struct ics_pth_qat_plan {
    int num_nodes;
    quantizer *q;  /* per node */
    int observers; /* the file's flag, -1 when it has none */
};

void ics_pth_qat_plan_destroy(ics_pth_qat_plan *plan)
{
    if (!plan) return;
    for (int i = 0; plan->q && i < plan->num_nodes; i++)
        free(plan->q[i].scales);
    free(plan->q);
    free(plan);
}

/* One float of a 1-element tensor. */
static ics_status scalar(const ics_pth_entry *e, const char *label, float *out, ics_error *err)
{
    if (e->tensor->u.tensor.numel != 1)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: '%s' has %zu elements, expected 1", label,
                        e->file_key, e->tensor->u.tensor.numel);
    return ics_pv_tensor_to_f32(e->tensor, out, 1, err);
}

/* Checks an activation quantizer's range (and that the file's scale and
 * zero point are what the range gives with the model's integer range). */
static ics_status check_activation(quantizer *q, const char *label, const ics_model *m, int node,
                                   int *mismatch, ics_error *err)
{
    if (!q->f[F_MIN] || !q->f[F_MAX]) return ICS_OK;
    float lo, hi;
    ics_status st = scalar(q->f[F_MIN], label, &lo, err);
    if (!st) st = scalar(q->f[F_MAX], label, &hi, err);
    if (st) return st;
    q->set_range = 1;
    /* an observer that never saw a batch holds +inf / -inf */
    if (!isfinite(lo) || !isfinite(hi)) return ICS_OK;
    if (lo > hi)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: '%s' = %g is above '%s' = %g", label,
                        q->f[F_MIN]->file_key, (double)lo, q->f[F_MAX]->file_key, (double)hi);
    q->min_val = lo;
    q->max_val = hi;
    q->initialized = 1;
    if (!q->f[F_SCALE] || !q->f[F_ZERO_POINT]) return ICS_OK;
    float scale, zp;
    st = scalar(q->f[F_SCALE], label, &scale, err);
    if (!st) st = scalar(q->f[F_ZERO_POINT], label, &zp, err);
    if (st) return st;
    ics_act_quant aq;
    if (ics_model_act_quant_get(m, node, &aq, err)) return err ? err->status : ICS_ERR_INVALID;
    float want_scale;
    int32_t want_zp;
    ics_quant_params(lo, hi, aq.quant_min, aq.quant_max, 0, &want_scale, &want_zp);
    if (fabsf(scale - want_scale) > 1e-5f * want_scale || zp != (float)want_zp) (*mismatch)++;
    return ICS_OK;
}

/* Checks and converts a weight quantizer's per-channel scales. */
static ics_status check_weight(quantizer *q, const char *label, const ics_model *m, int node,
                               ics_error *err)
{
    if (!q->f[F_SCALE]) return ICS_OK;
    int channels = 0;
    ics_model_weight_scales(m, node, &channels, NULL, NULL);
    const ics_pth_entry *s = q->f[F_SCALE], *z = q->f[F_ZERO_POINT];
    if (s->tensor->u.tensor.numel != (size_t)channels)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: '%s' has %zu scales, '%s' has %d output channels (per-channel "
                        "weight quantization expected)",
                        label, s->file_key, s->tensor->u.tensor.numel,
                        ics_model_node(m, node)->name, channels);
    q->scales = ics_malloc((size_t)channels * sizeof *q->scales, "weight scales", err);
    if (!q->scales) return ICS_ERR_NOMEM;
    q->channels = channels;
    ics_status st = ics_pv_tensor_to_f32(s->tensor, q->scales, (size_t)channels, err);
    for (int c = 0; !st && c < channels; c++)
        if (!(q->scales[c] > 0.0f) || !isfinite(q->scales[c]))
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: '%s'[%d] = %g is not a positive scale", label,
                          s->file_key, c, (double)q->scales[c]);
    if (st || !z) return st;
    if (z->tensor->u.tensor.numel != (size_t)channels)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: '%s' has %zu elements, expected %d", label,
                        z->file_key, z->tensor->u.tensor.numel, channels);
    float *zp = ics_malloc((size_t)channels * sizeof *zp, "weight zero points", err);
    if (!zp) return ICS_ERR_NOMEM;
    st = ics_pv_tensor_to_f32(z->tensor, zp, (size_t)channels, err);
    for (int c = 0; !st && c < channels; c++)
        if (zp[c] != 0.0f)
            st = ICS_FAIL(err, ICS_ERR_NOT_IMPLEMENTED,
                          "%s: '%s'[%d] = %g: affine weight quantization; icsparse quantizes "
                          "weights symmetrically (zero point 0)",
                          label, z->file_key, c, (double)zp[c]);
    free(zp);
    return st;
}

/* Claims the entries matching a quantizer; the rest are counted. The
 * state of skip's quantizers (a re-initialized classifier) is dropped. */
static void match_entries(ics_pth_entry *e, size_t n, const ics_model *m, const char *skip,
                          quantizer *q, ics_pth_import_report *rep)
{
    for (size_t i = 0; i < n; i++) {
        if (e[i].used || !ics_pth_is_qat_key(e[i].name)) continue;
        char owner[ICS_NAME_MAX + 64];
        int weight = 0;
        int f = parse_key(e[i].name, owner, sizeof owner, &weight);
        int node = f < 0 ? -1 : weight ? weight_node(m, owner) : activation_node(m, owner);
        if (node < 0 || q[node].f[f]) {
            rep->qat_extras++;
            continue;
        }
        e[i].used = 1;
        const char *name = ics_model_node(m, node)->name;
        size_t k = skip ? strlen(skip) : 0;
        if (skip && strncmp(name, skip, k) == 0 &&
            (name[k] == '\0' || strcmp(name + k, "." APP) == 0))
            continue;
        q[node].f[f] = &e[i];
    }
}

ics_status ics_pth_qat_plan_make(ics_pth_entry *e, size_t n, const char *label, const ics_model *m,
                                 const char *skip, ics_pth_import_report *rep,
                                 ics_pth_qat_plan **out, ics_error *err)
{
    *out = NULL;
    int nn = ics_model_num_nodes(m);
    ics_pth_qat_plan *plan = ics_calloc(1, sizeof *plan, "QAT import", err);
    if (!plan) return ICS_ERR_NOMEM;
    plan->num_nodes = nn;
    plan->observers = -1;
    plan->q = ics_calloc((size_t)nn, sizeof *plan->q, "QAT import", err);
    if (!plan->q) {
        free(plan);
        return ICS_ERR_NOMEM;
    }
    match_entries(e, n, m, skip, plan->q, rep);
    ics_status st = ICS_OK;
    int on = 0, off = 0, fq_off = 0, mismatch = 0, missing = 0;
    const char *first_missing = NULL;
    for (int i = 0; i < nn && !st; i++) {
        quantizer *q = &plan->q[i];
        int act = is_fake_quant(m, i);
        int wq = !act && ics_model_weight_scales(m, i, NULL, NULL, NULL) != NULL;
        if (!act && !wq) continue;
        float flag;
        if (q->f[F_OBSERVER] && !(st = scalar(q->f[F_OBSERVER], label, &flag, err))) {
            on += flag != 0.0f;
            off += flag == 0.0f;
        }
        if (!st && q->f[F_FAKE_QUANT] && !(st = scalar(q->f[F_FAKE_QUANT], label, &flag, err)))
            fq_off += flag == 0.0f;
        if (!st)
            st = act ? check_activation(q, label, m, i, &mismatch, err)
                     : check_weight(q, label, m, i, err);
        if (st) break;
        /* an observer that never saw a batch counts as missing */
        if (act ? !q->initialized : !q->scales) {
            missing++;
            if (!first_missing) first_missing = ics_model_node(m, i)->name;
        } else {
            rep->qat_quantizers++;
        }
    }
    if (!st) {
        if (on + off > 0) plan->observers = on > 0;
        int observers = plan->observers >= 0 ? plan->observers : ics_model_qat_observers(m);
        rep->qat_observers = observers;
        rep->qat_missing = missing;
        if (on && off)
            ICS_WARN("%s: observers are on in %d quantizers and off in %d: icsparse has one "
                     "switch, on",
                     label, on, off);
        if (fq_off)
            ICS_WARN("%s: fake quantization is disabled in %d quantizers there; icsparse "
                     "fake-quantizes every quantizer of its QAT structure",
                     label, fq_off);
        if (mismatch)
            ICS_WARN("%s: the scale or zero point of %d activation quantizers is not what their "
                     "observer range gives with the recipe's integer range (another "
                     "quant_min / quant_max or reduce_range?): the range is kept",
                     label, mismatch);
        if (missing && !observers)
            st = ICS_FAIL(err, ICS_ERR_FORMAT,
                          "%s: %d quantizers (first: '%s') have no state there and the observers "
                          "are off: they cannot be calibrated",
                          label, missing, first_missing);
        else if (missing)
            ICS_WARN("%s: %d quantizers (first: '%s') have no state there: their observers start "
                     "at the first training batch",
                     label, missing, first_missing);
    }
    if (st) {
        ics_pth_qat_plan_destroy(plan);
        return st;
    }
    *out = plan;
    return ICS_OK;
}

void ics_pth_qat_plan_apply(const ics_pth_qat_plan *plan, ics_model *m)
{
    for (int i = 0; i < plan->num_nodes; i++) {
        const quantizer *q = &plan->q[i];
        /* checked in ..._make: a range, or an uninitialized observer */
        if (q->set_range)
            ics_model_act_quant_set(m, i, q->initialized ? q->min_val : 0.0f,
                                    q->initialized ? q->max_val : 0.0f, q->initialized, NULL);
        if (q->scales)
            memcpy(ics_model_weight_scales_mut(m, i), q->scales,
                   (size_t)q->channels * sizeof *q->scales);
    }
    if (plan->observers >= 0) ics_model_qat_set_observers(m, plan->observers);
}
