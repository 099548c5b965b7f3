/*
 * src/export/export_pth.c: the model's state_dict as a PyTorch .pth, as
 * torch.save(model.state_dict(), path) writes it: an OrderedDict of
 * tensors in the state_dict's order, float32 parameters and buffers and an
 * int64 0-dim num_batches_tracked, through the .pth writer of src/io (zip
 * archive, pickle protocol 2, written to a temporary name and renamed).
 * torch.load(path, weights_only=True) accepts it, and
 * load_state_dict(strict=True) into the torchvision module takes it whole.
 *
 * A QAT model (icsparse/qat.h) is written as a SparseML training
 * checkpoint instead, {"state_dict", "recipe", "arch_key", "epoch"}, whose
 * state_dict is what torch's eager-mode prepare_qat module of the same
 * model holds (torchvision names, the input's QuantStub "quant" at the
 * top, fuse_modules_qat's fused groups):
 *
 *   <conv>.weight, <conv>.bias          the float weights, as trained
 *   <conv>.bn.{weight, bias, running_mean, running_var, num_batches_tracked}
 *                                       the BN folded into a quantized conv
 *                                       (ConvBn2d / ConvBnReLU2d's "bn")
 *   <conv|linear>.weight_fake_quant.{fake_quant_enabled, observer_enabled,
 *       scale [C], zero_point [C], activation_post_process.{eps, min_val
 *       [C], max_val [C]}}              the per-channel symmetric weight
 *                                       quantizer; its observer's range is
 *                                       the one the scale comes from,
 *                                       +-scale * (qmax - qmin) / 2
 *   <q>.{fake_quant_enabled, observer_enabled, scale [1], zero_point [1],
 *       activation_post_process.{eps, min_val, max_val}}
 *                                       every activation quantizer: q =
 *                                       "quant.activation_post_process" for
 *                                       the input, "<module>.activation_
 *                                       post_process" after a group (an
 *                                       observer that never saw a batch:
 *                                       +inf / -inf, scale 1, zero point 0)
 *
 * exactly the keys src/io/pth_import_qat.c maps back, so icsparse-train
 * --init-from and icsparse-consolidate --from-pth rebuild the same QAT
 * model (the recipe at the epoch gives the structure, the keys the state).
 *
 * Both state_dicts carry torch's _metadata attribute, as
 * Module.state_dict() makes it: an OrderedDict of every module prefix of
 * torch's module of the model ("" the root, then the submodules depth
 * first in registration order, parameterless ones such as ReLU, pooling,
 * Dropout and the Identity left by fusion included) to {"version": N},
 * N the class's _version. load_state_dict hands each module its entry, and
 * BatchNorm (version 2: num_batches_tracked), the fused ConvBn modules
 * (2: BN state under "bn") and the observers (3: per-channel min_val /
 * max_val) read older key layouts without it. See module_metadata.
 */
#include "ics_build_config.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <icsparse/export.h>
#include <icsparse/qat.h>

#include "export/export_internal.h"
#include "core/alloc.h"
#include "io/pth_writer.h"

enum { KEY_LEN = ICS_NAME_MAX + 128 };

/* d[key] = value; a NULL value is a failed allocation (err set). */
static ics_status put(ics_pv_arena *a, ics_pv *d, const char *key, ics_pv *value, ics_error *err)
{
    return value ? ics_pv_dict_set_str(a, d, key, value, err) : ICS_ERR_NOMEM;
}

/* The torch QAT name of tensor ti: a BN folded into the quantized conv
 * before it lives in the fused module as "<conv>.bn.<field>". */
static void qat_tensor_name(const ics_model *m, const ics_tensor_info *ti, char *out, size_t size)
{
    const ics_node *n = ics_model_node(m, ti->node);
    if (n->kind == ICS_OP_BATCHNORM2D && n->num_inputs == 1) {
        const ics_node *conv = ics_model_node(m, n->inputs[0]);
        size_t len = strlen(n->name);
        if (conv->kind == ICS_OP_CONV2D && conv->quant_index >= 0 && conv->fold_bn &&
            strncmp(ti->name, n->name, len) == 0 && ti->name[len] == '.') {
            snprintf(out, size, "%s.bn.%s", conv->name, ti->name + len + 1);
            return;
        }
    }
    snprintf(out, size, "%s", ti->name);
}

/* One FakeQuantize's state under prefix: flags, scale and zero point
 * (count elements; ndim 1) and its observer (eps, min_val, max_val with
 * range_ndim 0 for a per-tensor observer, 1 per channel). */
static ics_status put_fake_quant(ics_pv_arena *a, ics_pv *sd, const char *prefix, int observers,
                                 int64_t count, const float *scale, const int32_t *zero_point,
                                 int range_ndim, const float *min_val, const float *max_val,
                                 ics_error *err)
{
    char key[KEY_LEN + 64];
    int64_t one = 1;
    uint8_t on = 1, obs = observers ? 1 : 0;
    float eps = FLT_EPSILON; /* torch.finfo(torch.float32).eps, the observers' default */
    ics_status st;
    snprintf(key, sizeof key, "%s.fake_quant_enabled", prefix);
    st = put(a, sd, key, ics_pv_new_tensor(a, ICS_DT_UINT8, 1, &one, &on, err), err);
    snprintf(key, sizeof key, "%s.observer_enabled", prefix);
    if (!st) st = put(a, sd, key, ics_pv_new_tensor(a, ICS_DT_UINT8, 1, &one, &obs, err), err);
    snprintf(key, sizeof key, "%s.scale", prefix);
    if (!st) st = put(a, sd, key, ics_pv_new_tensor(a, ICS_DT_FLOAT32, 1, &count, scale, err), err);
    snprintf(key, sizeof key, "%s.zero_point", prefix);
    if (!st)
        st = put(a, sd, key, ics_pv_new_tensor(a, ICS_DT_INT32, 1, &count, zero_point, err), err);
    snprintf(key, sizeof key, "%s.activation_post_process.eps", prefix);
    if (!st) st = put(a, sd, key, ics_pv_new_tensor(a, ICS_DT_FLOAT32, 1, &one, &eps, err), err);
    snprintf(key, sizeof key, "%s.activation_post_process.min_val", prefix);
    if (!st)
        st = put(a, sd, key, ics_pv_new_tensor(a, ICS_DT_FLOAT32, range_ndim, &count, min_val, err),
                 err);
    snprintf(key, sizeof key, "%s.activation_post_process.max_val", prefix);
    if (!st)
        st = put(a, sd, key, ics_pv_new_tensor(a, ICS_DT_FLOAT32, range_ndim, &count, max_val, err),
                 err);
    return st;
}

/* The weight quantizer of conv / linear node k as "<node>.weight_fake_quant". */
static ics_status put_weight_quant(ics_pv_arena *a, ics_pv *sd, ics_model *m, int k, ics_error *err)
{
    int channels = 0, qmin = 0, qmax = 0;
    const float *scales = ics_model_weight_scales(m, k, &channels, &qmin, &qmax);
    if (!scales) return ICS_OK;
    ics_pv *lo = ics_pv_new_tensor(a, ICS_DT_FLOAT32, 1, &(int64_t){channels}, NULL, err);
    ics_pv *hi = ics_pv_new_tensor(a, ICS_DT_FLOAT32, 1, &(int64_t){channels}, NULL, err);
    ics_pv *zp = ics_pv_new_tensor(a, ICS_DT_INT32, 1, &(int64_t){channels}, NULL, err);
    if (!lo || !hi || !zp) return ICS_ERR_NOMEM;
    float *lo_v = lo->u.tensor.data, *hi_v = hi->u.tensor.data;
    /* symmetric: scale = max(-min, max) / ((qmax - qmin) / 2) */
    float half = (float)(qmax - qmin) / 2.0f;
    for (int c = 0; c < channels; c++) {
        hi_v[c] = scales[c] * half;
        lo_v[c] = -hi_v[c];
    }
    char prefix[KEY_LEN];
    snprintf(prefix, sizeof prefix, "%s.weight_fake_quant", ics_model_node(m, k)->name);
    return put_fake_quant(a, sd, prefix, ics_model_qat_observers(m), channels, scales,
                          zp->u.tensor.data, 1, lo_v, hi_v, err);
}

/* The activation quantizer of fake-quant node k. */
static ics_status put_act_quant(ics_pv_arena *a, ics_pv *sd, ics_model *m, int k, ics_error *err)
{
    ics_act_quant q;
    ics_status st = ics_model_act_quant_get(m, k, &q, err);
    if (st) return st;
    const char *name = ics_model_node(m, k)->name;
    const char *suffix = ".activation_post_process";
    size_t len = strlen(name), sl = strlen(suffix);
    char prefix[KEY_LEN];
    /* "quant" is a QuantStub whose quantizer is its activation_post_process */
    if (len >= sl && strcmp(name + len - sl, suffix) == 0)
        snprintf(prefix, sizeof prefix, "%s", name);
    else
        snprintf(prefix, sizeof prefix, "%s%s", name, suffix);
    float scale = q.initialized ? q.scale : 1.0f;
    int32_t zp = q.initialized ? q.zero_point : 0;
    float lo = q.initialized ? q.min_val : INFINITY, hi = q.initialized ? q.max_val : -INFINITY;
    return put_fake_quant(a, sd, prefix, ics_model_qat_observers(m), 1, &scale, &zp, 0, &lo, &hi,
                          err);
}

/* The QAT state_dict: the input quantizer, the tensors (fused BNs renamed)
 * with each weight quantizer after its group, then the other activation
 * quantizers in graph order. */
static ics_status qat_state_dict(ics_pv_arena *a, ics_pv *sd, ics_model *m, ics_error *err)
{
    ics_status st = ICS_OK;
    int nn = ics_model_num_nodes(m), nt = ics_model_num_tensors(m);
    for (int k = 0; k < nn && !st; k++)
        if (ics_model_node(m, k)->kind == ICS_OP_FAKE_QUANT &&
            strcmp(ics_model_node(m, k)->name, "quant") == 0)
            st = put_act_quant(a, sd, m, k, err);
    for (int i = 0; i < nt && !st; i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        char key[KEY_LEN];
        qat_tensor_name(m, ti, key, sizeof key);
        ics_pv *t;
        if (ti->kind == ICS_TENSOR_COUNTER)
            t = ics_pv_new_tensor(a, ICS_DT_INT64, ti->ndim, ti->shape,
                                  ics_model_tensor_counter(m, i), err);
        else
            t = ics_pv_new_tensor(a, ICS_DT_FLOAT32, ti->ndim, ti->shape,
                                  ics_model_tensor_data(m, i), err);
        st = put(a, sd, key, t, err);
        /* the group's last tensor: its weight quantizer follows (after the
         * folded BN's tensors for a fused conv) */
        int last = i + 1 == nt || ics_model_tensor(m, i + 1)->node != ti->node;
        if (st || !last) continue;
        const ics_node *n = ics_model_node(m, ti->node);
        if ((n->kind == ICS_OP_CONV2D || n->kind == ICS_OP_LINEAR) && n->quant_index >= 0 &&
            !(n->kind == ICS_OP_CONV2D && n->fold_bn))
            st = put_weight_quant(a, sd, m, ti->node, err);
        else if (n->kind == ICS_OP_BATCHNORM2D && n->num_inputs == 1) {
            const ics_node *conv = ics_model_node(m, n->inputs[0]);
            if (conv->kind == ICS_OP_CONV2D && conv->quant_index >= 0 && conv->fold_bn)
                st = put_weight_quant(a, sd, m, n->inputs[0], err);
        }
    }
    for (int k = 0; k < nn && !st; k++)
        if (ics_model_node(m, k)->kind == ICS_OP_FAKE_QUANT &&
            strcmp(ics_model_node(m, k)->name, "quant") != 0)
            st = put_act_quant(a, sd, m, k, err);
    return st;
}

/* The fp32 state_dict: every tensor under its torchvision key. */
static ics_status plain_state_dict(ics_pv_arena *a, ics_pv *sd, ics_model *m, ics_error *err)
{
    ics_status st = ICS_OK;
    for (int i = 0; i < ics_model_num_tensors(m) && st == ICS_OK; i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        ics_pv *t;
        if (ti->kind == ICS_TENSOR_COUNTER)
            t = ics_pv_new_tensor(a, ICS_DT_INT64, ti->ndim, ti->shape,
                                  ics_model_tensor_counter(m, i), err);
        else
            t = ics_pv_new_tensor(a, ICS_DT_FLOAT32, ti->ndim, ti->shape,
                                  ics_model_tensor_data(m, i), err);
        st = put(a, sd, ti->name, t, err);
    }
    return st;
}

/* ---- torch's _metadata ---------------------------------------------------
 *
 * The module tree of the torch module whose state_dict icsparse writes:
 * the modules holding tensors come from the tensor names (in state_dict
 * order, which is torch's registration order), the parameterless modules
 * from what each architecture's torch module registers (arch_modules),
 * and the quantization modules of a QAT state_dict from its keys. The
 * versions are the _version class attributes of torch 1.13
 * (torch/nn/modules/batchnorm.py _NormBase: 2;
 * torch/nn/intrinsic/qat/modules/conv_fused.py _ConvBnNd, i.e. ConvBn2d
 * and ConvBnReLU2d: 2; torch/ao/quantization/observer.py _ObserverBase,
 * i.e. MinMaxObserver, MovingAverage(PerChannel)MinMaxObserver,
 * PerChannelMinMaxObserver: 3; nn.Module's default, 1, for every other
 * class here: Conv2d, Linear, ReLU, ReLU6, MaxPool2d, AdaptiveAvgPool2d,
 * Dropout, Identity, Sequential, the blocks, QuantStub, FakeQuantize, the
 * qat Conv2d / Linear, ConvReLU2d, FloatFunctional), told apart by the
 * keys: a module with "running_mean" is a BatchNorm, one with
 * "bn.running_mean" a fused ConvBn, an "activation_post_process" inside a
 * FakeQuantize ("activation_post_process" or "weight_fake_quant") its
 * observer. */

#define MOD_FIRST (-2) /* mod_new: the parent's first child */
#define MOD_LAST (-1)  /* mod_new: the parent's last child */

typedef struct mod {
    char name[KEY_LEN];            /* the prefix: "" the root, "layer1.0.conv1" */
    int parent, first, last, next; /* tree links, -1 for none */
    int version;
} mod;

typedef struct mod_tree {
    mod *m;
    int count, cap;
    int stub_first; /* mod_ensure: a new "quant" (the QuantStub) leads the root's children */
    ics_error *err;
} mod_tree;

/* The module named name; -1 if absent. Searched from the newest, which is
 * where the next key's module usually is. */
static int mod_find(const mod_tree *t, const char *name)
{
    for (int k = t->count - 1; k >= 0; k--)
        if (strcmp(t->m[k].name, name) == 0) return k;
    return -1;
}

/* A new module under parent (-1: the root itself), placed after sibling
 * `after`, or MOD_FIRST / MOD_LAST; its index, or -1 (err set). */
static int mod_new(mod_tree *t, const char *name, int parent, int after)
{
    if (t->count == t->cap) {
        int cap = t->cap ? t->cap * 2 : 256;
        mod *m = ics_realloc(t->m, (size_t)cap * sizeof *m, "module tree", t->err);
        if (!m) return -1;
        t->m = m;
        t->cap = cap;
    }
    int k = t->count++;
    mod *n = &t->m[k];
    snprintf(n->name, sizeof n->name, "%s", name);
    n->parent = parent;
    n->first = n->last = n->next = -1;
    n->version = 1;
    if (parent < 0) return k;
    mod *p = &t->m[parent];
    int prev = after == MOD_LAST ? p->last : after;
    if (prev == MOD_FIRST || prev < 0) {
        n->next = p->first;
        p->first = k;
        if (p->last < 0) p->last = k;
    } else {
        n->next = t->m[prev].next;
        t->m[prev].next = k;
        if (p->last == prev) p->last = k;
    }
    return k;
}

/* The module named name, made (with its parents) as the last child of its
 * parent when absent; -1 (err set) when out of memory. */
static int mod_ensure(mod_tree *t, const char *name)
{
    int k = mod_find(t, name);
    if (k >= 0) return k;
    char parent_name[KEY_LEN];
    snprintf(parent_name, sizeof parent_name, "%s", name);
    char *dot = strrchr(parent_name, '.');
    if (dot)
        *dot = '\0';
    else
        parent_name[0] = '\0';
    int parent = mod_ensure(t, parent_name);
    if (parent < 0) return -1;
    int first = parent == 0 && t->stub_first && strcmp(name, "quant") == 0;
    return mod_new(t, name, parent, first ? MOD_FIRST : MOD_LAST);
}

/* The module of a state_dict key: the key without its last field. */
static int mod_of_key(mod_tree *t, const char *key)
{
    char name[KEY_LEN];
    snprintf(name, sizeof name, "%s", key);
    char *dot = strrchr(name, '.');
    if (dot)
        *dot = '\0';
    else
        name[0] = '\0';
    return mod_ensure(t, name);
}

/* "<parent>.<child>" ("<child>" under the root). */
static void mod_join(char *out, size_t size, const char *parent, const char *child)
{
    snprintf(out, size, "%s%s%s", parent, *parent ? "." : "", child);
}

/* Module <parent p>.child after sibling `after` (an index, MOD_FIRST or
 * MOD_LAST), unless it exists. */
static ics_status mod_add_at(mod_tree *t, int p, const char *child, int after)
{
    char name[KEY_LEN];
    mod_join(name, sizeof name, t->m[p].name, child);
    if (mod_find(t, name) >= 0) return ICS_OK;
    return mod_new(t, name, p, after) >= 0 ? ICS_OK : ICS_ERR_NOMEM;
}

/* Module parent.child after its sibling parent.after (NULL, or a sibling
 * that is absent: last), unless it exists. */
static ics_status mod_add(mod_tree *t, const char *parent, const char *child, const char *after)
{
    int p = mod_ensure(t, parent), s = -1;
    if (p < 0) return ICS_ERR_NOMEM;
    if (after) {
        char sib[KEY_LEN];
        mod_join(sib, sizeof sib, parent, after);
        s = mod_find(t, sib);
        if (s >= 0 && t->m[s].parent != p) s = -1;
    }
    return mod_add_at(t, p, child, s >= 0 ? s : MOD_LAST);
}

/* The last field of a module name as a Sequential index; -1 if it is not
 * one. */
static int mod_index(const char *name)
{
    const char *f = strrchr(name, '.');
    f = f ? f + 1 : name;
    if (!*f || strlen(f) > 6) return -1;
    for (const char *c = f; *c; c++)
        if (*c < '0' || *c > '9') return -1;
    return atoi(f);
}

/* The highest child index of a module whose children are all Sequential
 * indices; -1 if it has none or another child. */
static int mod_max_index(const mod_tree *t, int k)
{
    int max = -1;
    for (int c = t->m[k].first; c >= 0; c = t->m[c].next) {
        int i = mod_index(t->m[c].name);
        if (i < 0) return -1;
        if (i > max) max = i;
    }
    return max;
}

/* A Sequential's parameterless members: its indices 0 .. max + extra
 * (extra: members after the last one holding tensors), each absent one
 * after the index before it. */
static ics_status mod_fill_seq(mod_tree *t, int k, int extra)
{
    int max = mod_max_index(t, k);
    if (max < 0) return ICS_OK;
    ics_status st = ICS_OK;
    for (int i = 0, prev = MOD_FIRST; i <= max + extra && !st; i++) {
        char child[16], name[KEY_LEN];
        snprintf(child, sizeof child, "%d", i);
        st = mod_add_at(t, k, child, prev);
        mod_join(name, sizeof name, t->m[k].name, child);
        prev = mod_find(t, name);
    }
    return st;
}

/* The parameterless modules of each architecture's torch module (names as
 * in the torchvision classes, src/models/<arch>.c and
 * tests/torchref/models_ref.py):
 *   resnet*      relu and maxpool (an Identity with the CIFAR stem) after
 *                bn1, avgpool after layer4; each block's relu after bn1
 *                (BasicBlock) or bn3 (Bottleneck)
 *   mobilenet_v2 each Conv2dNormActivation's ReLU6 ("2" after conv "0" and
 *                BN "1"); classifier.0, the Dropout (filled below)
 *   vgg*_bn      avgpool after features; each ReLU and MaxPool of
 *                features (the last ReLU and MaxPool after the last BN)
 *                and classifier's ReLUs and Dropouts
 *   simple_cnn, lenet  the ReLUs and MaxPools of features (the last two
 *                after the last layer holding tensors), lenet's
 *                classifier ReLUs
 * Every Sequential (a module whose children are indices) is filled up to
 * its highest index. */
static ics_status arch_modules(mod_tree *t, const char *arch)
{
    ics_status st = ICS_OK;
    int features = mod_find(t, "features");
    if (strncmp(arch, "resnet", 6) == 0) {
        st = mod_add(t, "", "relu", "bn1");
        if (!st) st = mod_add(t, "", "maxpool", "relu");
        if (!st) st = mod_add(t, "", "avgpool", "layer4");
        int n = t->count;
        for (int k = 0; k < n && !st; k++) {
            int layer, block, end = 0;
            char conv3[KEY_LEN], name[KEY_LEN];
            snprintf(name, sizeof name, "%s", t->m[k].name);
            if (sscanf(name, "layer%d.%d%n", &layer, &block, &end) != 2 || name[end]) continue;
            mod_join(conv3, sizeof conv3, name, "conv3");
            st = mod_add(t, name, "relu", mod_find(t, conv3) >= 0 ? "bn3" : "bn1");
        }
    } else if (strcmp(arch, "mobilenet_v2") == 0) {
        int n = t->count;
        for (int k = 0; k < n && !st; k++) {
            int c0 = t->m[k].first, c1 = c0 >= 0 ? t->m[c0].next : -1;
            if (c0 < 0 || c1 < 0 || t->m[c1].next >= 0 || t->m[c0].first >= 0 ||
                t->m[c1].first >= 0 || mod_index(t->m[c0].name) != 0 ||
                mod_index(t->m[c1].name) != 1)
                continue;
            char name[KEY_LEN];
            snprintf(name, sizeof name, "%s", t->m[k].name);
            st = mod_add(t, name, "2", "1");
        }
    } else if (strncmp(arch, "vgg", 3) == 0) {
        st = mod_add(t, "", "avgpool", "features");
        if (!st && features >= 0) st = mod_fill_seq(t, features, 2);
    } else if (strcmp(arch, "simple_cnn") == 0 || strcmp(arch, "lenet") == 0) {
        if (features >= 0) st = mod_fill_seq(t, features, 2);
    }
    for (int k = 0; k < t->count && !st; k++)
        st = mod_fill_seq(t, k, 0);
    return st;
}

/* 1 if the module name's last field is `field`. */
static int mod_is(const char *name, const char *field)
{
    const char *f = strrchr(name, '.');
    return strcmp(f ? f + 1 : name, field) == 0;
}

/* Builds the module tree of model whose state_dict is sd and its _metadata
 * OrderedDict into *out. */
static ics_status module_metadata(ics_pv_arena *a, ics_model *model, const ics_pv *sd, ics_pv **out,
                                  ics_error *err)
{
    mod_tree t = {.err = err};
    ics_status st = mod_new(&t, "", -1, MOD_LAST) == 0 ? ICS_OK : ICS_ERR_NOMEM;
    /* the float model's modules, from its tensors' (torchvision) names */
    for (int i = 0; i < ics_model_num_tensors(model) && !st; i++)
        if (mod_of_key(&t, ics_model_tensor(model, i)->name) < 0) st = ICS_ERR_NOMEM;
    if (!st) st = arch_modules(&t, ics_model_arch(model));
    /* what the state_dict adds (QAT: fused BNs under "<conv>.bn", the
     * quantizers, the QuantStub "quant", which torch's module registers
     * first), and the versions its keys tell */
    t.stub_first = 1;
    for (size_t i = 0; i < sd->u.dict.len && !st; i++) {
        const char *key = sd->u.dict.keys[i]->u.str.data;
        int k = mod_of_key(&t, key);
        if (k < 0) {
            st = ICS_ERR_NOMEM;
            break;
        }
        if (!mod_is(key, "running_mean")) continue;
        t.m[k].version = 2; /* BatchNorm */
        if (mod_is(t.m[k].name, "bn") && t.m[k].parent > 0)
            t.m[t.m[k].parent].version = 2; /* ConvBn2d, ConvBnReLU2d */
    }
    for (int k = 1; k < t.count && !st; k++) {
        const char *parent = t.m[t.m[k].parent].name;
        if (mod_is(t.m[k].name, "activation_post_process") &&
            (mod_is(parent, "activation_post_process") || mod_is(parent, "weight_fake_quant")))
            t.m[k].version = 3; /* an observer inside a FakeQuantize */
    }
    /* depth first, children in order: torch's state_dict() order */
    ics_pv *meta = st ? NULL : ics_pv_new_dict(a, 1, err);
    if (!st && !meta) st = ICS_ERR_NOMEM;
    for (int k = 0; k >= 0 && !st;) {
        ics_pv *entry = ics_pv_new_dict(a, 0, err);
        st = entry ? put(a, entry, "version", ics_pv_new_int(a, t.m[k].version, err), err)
                   : ICS_ERR_NOMEM;
        if (!st) st = put(a, meta, t.m[k].name, entry, err);
        if (t.m[k].first >= 0) {
            k = t.m[k].first;
            continue;
        }
        while (k >= 0 && t.m[k].next < 0)
            k = t.m[k].parent;
        if (k >= 0) k = t.m[k].next;
    }
    free(t.m);
    *out = meta;
    return st;
}

/* Saves root whose state_dict is sd (root itself for an fp32 model) with
 * sd's _metadata. */
static ics_status save_with_metadata(ics_pv_arena *a, ics_model *model, const ics_pv *root,
                                     const ics_pv *sd, const char *path, ics_error *err)
{
    ics_pv *meta = NULL, *attrs = ics_pv_new_dict(a, 0, err);
    ics_status st = attrs ? module_metadata(a, model, sd, &meta, err) : ICS_ERR_NOMEM;
    if (!st) st = put(a, attrs, "_metadata", meta, err);
    if (st != ICS_OK) {
        ics_error_prefix(err, "writing %s: ", path);
        return st;
    }
    return ics_pth_save_attrs(path, root, NULL, sd, attrs, err); /* its errors name the path */
}

/* Promise (export.h): path holds the QAT checkpoint dict, or path is
 * untouched and err says why. */
ics_status ics_export_pth_qat(ics_model *model, const char *recipe, double epoch, const char *path,
                              int force, ics_error *err)
{
    if (!ics_model_qat_active(model))
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "writing %s: %s has no fake quantization (QAT): write its state_dict with "
                        "ics_export_pth",
                        path, ics_model_arch(model));
    ics_status st = ics_export_check_target(path, force, err);
    if (st != ICS_OK) return st;
    ics_pv_arena *a = ics_pv_arena_create(err);
    if (!a) return err ? err->status : ICS_ERR_NOMEM;
    ics_pv *root = ics_pv_new_dict(a, 0, err);
    ics_pv *sd = ics_pv_new_dict(a, 1, err);
    st = root && sd ? ICS_OK : ICS_ERR_NOMEM;
    if (!st) st = qat_state_dict(a, sd, model, err);
    if (!st) st = put(a, root, "state_dict", sd, err);
    if (!st && recipe)
        st = put(a, root, "recipe", ics_pv_new_string(a, recipe, strlen(recipe), err), err);
    const char *arch = ics_model_arch(model);
    if (!st) st = put(a, root, "arch_key", ics_pv_new_string(a, arch, strlen(arch), err), err);
    /* SparseML's epoch is an int (-1: finished); torch 1.13's
     * weights_only loader refuses pickled floats, so a whole epoch is
     * written as an int and only a fractional one as a float */
    ics_pv *e = epoch == floor(epoch) && fabs(epoch) < 1e15
                    ? ics_pv_new_int(a, (int64_t)epoch, err)
                    : ics_pv_new_float(a, epoch, err);
    if (!st) st = put(a, root, "epoch", e, err);
    if (st != ICS_OK)
        ics_error_prefix(err, "writing %s: ", path);
    else
        st = save_with_metadata(a, model, root, sd, path, err);
    ics_pv_arena_destroy(a);
    return st;
}

/* Promise (export.h): path holds the state_dict (a QAT model: the
 * checkpoint dict without a recipe), or path is untouched and err says
 * why (an existing path without force among the reasons). */
ics_status ics_export_pth(ics_model *model, const char *path, int force, ics_error *err)
{
    if (ics_model_qat_active(model)) return ics_export_pth_qat(model, NULL, -1.0, path, force, err);
    ics_status st = ics_export_check_target(path, force, err);
    if (st != ICS_OK) return st;
    ics_pv_arena *arena = ics_pv_arena_create(err);
    if (!arena) return err ? err->status : ICS_ERR_NOMEM;
    ics_pv *sd = ics_pv_new_dict(arena, 1, err);
    st = sd ? plain_state_dict(arena, sd, model, err) : ICS_ERR_NOMEM;
    /* The archive's folder is the file's stem in torch < 2.0 and "archive"
     * after; both load. NULL picks "archive". */
    if (st != ICS_OK)
        ics_error_prefix(err, "writing %s: ", path);
    else
        st = save_with_metadata(arena, model, sd, sd, path, err);
    ics_pv_arena_destroy(arena);
    return st;
}
