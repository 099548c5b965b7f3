/*
 * src/export/export_pth_metadata.c: torch's _metadata of the state_dicts
 * export_pth.c writes (export_pth_metadata.h).
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
 * observer.
 */
#include "ics_build_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <icsparse/model.h>

#include "export/export_pth_metadata.h"
#include "core/alloc.h"

enum { KEY_LEN = ICS_PTH_KEY_LEN };

/* d[key] = value; a NULL value is a failed allocation (err set). */
static ics_status put(ics_pv_arena *a, ics_pv *d, const char *key, ics_pv *value, ics_error *err)
{
    return value ? ics_pv_dict_set_str(a, d, key, value, err) : ICS_ERR_NOMEM;
}

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

/* name without its last dotted field ("" for a top-level name). */
static void mod_parent_name(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s", name);
    char *dot = strrchr(out, '.');
    if (dot)
        *dot = '\0';
    else
        out[0] = '\0';
}

/* The module named name, made (with its parents) as the last child of its
 * parent when absent; -1 (err set) when out of memory. */
static int mod_ensure(mod_tree *t, const char *name)
{
    int k = mod_find(t, name);
    if (k >= 0) return k;
    char parent_name[KEY_LEN];
    mod_parent_name(parent_name, sizeof parent_name, name);
    int parent = mod_ensure(t, parent_name);
    if (parent < 0) return -1;
    int first = parent == 0 && t->stub_first && strcmp(name, "quant") == 0;
    return mod_new(t, name, parent, first ? MOD_FIRST : MOD_LAST);
}

/* The module of a state_dict key: the key without its last field. */
static int mod_of_key(mod_tree *t, const char *key)
{
    char name[KEY_LEN];
    mod_parent_name(name, sizeof name, key);
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

/* Promise (export_pth_metadata.h): ICS_OK with *out the _metadata of
 * sd's module tree, or ICS_ERR_NOMEM with err set. */
ics_status ics_pth_module_metadata(ics_pv_arena *a, ics_model *model, const ics_pv *sd,
                                   ics_pv **out, ics_error *err)
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
