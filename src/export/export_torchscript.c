/*
 * src/export/export_torchscript.c: the model as a TorchScript archive,
 * the file torch.jit.save writes and torch.jit.load (Python or libtorch's
 * C++ torch::jit::load) runs without icsparse or Python model code.
 *
 * The archive (zip, STORED entries, through the writer of src/io):
 *   archive/data.pkl       the module tree: objects of the generated classes
 *                          (GLOBAL '__torch__.icsparse <Class>', NEWOBJ,
 *                          attribute dict, BUILD), tensors as
 *                          _rebuild_tensor_v2 of persistent-id storages
 *   archive/code/__torch__/icsparse.py
 *                          the TorchScript source of every class
 *   archive/constants.pkl  the empty tuple (the code has no tensor constants)
 *   archive/data/<k>       raw little-endian storages, k = 0, 1, ... in
 *                          data.pkl order
 *   archive/version        "3" (the oldest format version torch writes; no
 *                          operator used here has an upgrader)
 *
 * The module tree mirrors the state_dict keys: "layer1.0.conv1.weight" is
 * attribute "weight" of submodule "conv1" of submodule "0" of submodule
 * "layer1" of the root, so the loaded module's state_dict() has exactly
 * the checkpoint's keys in the checkpoint's order and load_state_dict of a
 * torchvision state_dict fits it. Only modules that hold tensors (and
 * their parents) exist; classes are shared between modules with the same
 * attributes (Conv2d, BatchNorm2d, Linear, Sequential, Block, with _1, _2
 * ... for variants). The root class, named after the architecture, has
 * the only method: forward, straight-line code walking the model graph
 * node by node with torch.conv2d, torch.batch_norm, torch.relu,
 * torch.clamp (ReLU6), torch.max_pool2d, torch.avg_pool2d,
 * torch.adaptive_avg_pool2d, torch.add, torch.flatten, torch.dropout and
 * torch.linear on NCHW float input. Like the torch modules it follows
 * self.training: BatchNorm uses batch statistics, updates the running ones
 * and counts num_batches_tracked, and dropout is active in train().
 */
#include "ics_build_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <icsparse/export.h>

#include "core/alloc.h"
#include "export/export_internal.h"
#include "io/pickle_writer.h"
#include "io/zip_writer.h"

/* The generated classes' module: __torch__.icsparse, whose source file is
 * code/__torch__/icsparse.py. */
#define TS_MODULE "__torch__.icsparse"
#define TS_SOURCE "code/__torch__/icsparse.py"
#define TS_FOLDER "archive"

/* ---- a growable text buffer with a sticky status ------------------------ */

typedef struct text_buf {
    char *data;
    size_t len, cap;
    ics_status status;
    ics_error *err;
} text_buf;

static void text_printf(text_buf *t, const char *fmt, ...)
{
    if (t->status != ICS_OK) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->data ? t->data + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->status = ICS_FAIL(t->err, ICS_ERR_RUNTIME, "TorchScript export: format error");
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 256;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = ics_realloc(t->data, cap, "TorchScript source", t->err);
        if (!p) {
            t->status = ICS_ERR_NOMEM;
            return;
        }
        t->data = p;
        t->cap = cap;
    }
}

/* ---- the module tree ---------------------------------------------------- */

/* One attribute of a module: a submodule or a tensor of the model. */
typedef struct ts_attr {
    int owner;        /* module holding it */
    int module;       /* the submodule, or -1 */
    int tensor;       /* the model tensor, or -1 */
    const char *name; /* not terminated: name[0 .. len) (points into a tensor name) */
    size_t len;
} ts_attr;

typedef struct ts_module {
    int cls; /* index into classes */
} ts_module;

typedef struct ts_class {
    char name[48];
    char base[40];
    char *signature; /* attribute names and types: equal signatures share the class */
    int module;      /* a module of this class (for its declarations) */
} ts_class;

typedef struct ts_tree {
    ics_model *model;
    ts_attr *attrs;
    int num_attrs, cap_attrs;
    ts_module *modules; /* modules[0] is the root */
    int num_modules, cap_modules;
    ts_class *classes;
    int num_classes;
    ics_error *err;
} ts_tree;

static void tree_free(ts_tree *t)
{
    for (int i = 0; i < t->num_classes; i++)
        free(t->classes[i].signature);
    free(t->classes);
    free(t->attrs);
    free(t->modules);
}

static int is_param_kind(ics_tensor_kind k)
{
    return k == ICS_TENSOR_WEIGHT || k == ICS_TENSOR_BIAS || k == ICS_TENSOR_BN_WEIGHT ||
           k == ICS_TENSOR_BN_BIAS;
}

/* The attribute called name[0 .. len) of module owner, or -1. */
static int find_attr(const ts_tree *t, int owner, const char *name, size_t len)
{
    for (int i = 0; i < t->num_attrs; i++)
        if (t->attrs[i].owner == owner && t->attrs[i].len == len &&
            memcmp(t->attrs[i].name, name, len) == 0)
            return i;
    return -1;
}

static ics_status add_attr(ts_tree *t, int owner, int module, int tensor, const char *name,
                           size_t len)
{
    if (t->num_attrs == t->cap_attrs) {
        int cap = t->cap_attrs ? 2 * t->cap_attrs : 256;
        ts_attr *p =
            ics_realloc(t->attrs, (size_t)cap * sizeof *p, "TorchScript attributes", t->err);
        if (!p) return ICS_ERR_NOMEM;
        t->attrs = p;
        t->cap_attrs = cap;
    }
    t->attrs[t->num_attrs++] = (ts_attr){owner, module, tensor, name, len};
    return ICS_OK;
}

static int add_module(ts_tree *t)
{
    if (t->num_modules == t->cap_modules) {
        int cap = t->cap_modules ? 2 * t->cap_modules : 128;
        ts_module *p =
            ics_realloc(t->modules, (size_t)cap * sizeof *p, "TorchScript modules", t->err);
        if (!p) return -1;
        t->modules = p;
        t->cap_modules = cap;
    }
    t->modules[t->num_modules].cls = -1;
    return t->num_modules++;
}

/* Names become attributes and appear in the source inside "...": letters,
 * digits and '_' only, and none of the names a module has already
 * (training) or that the loader reserves (__parameters__ and the like). */
static int valid_component(const char *s, size_t len)
{
    if (len == 0 || len > 64) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    if (len >= 2 && s[0] == '_' && s[1] == '_') return 0;
    return !(len == 8 && memcmp(s, "training", 8) == 0) &&
           !(len == 7 && memcmp(s, "forward", 7) == 0);
}

/* Builds the tree from the tensor table: every key "a.b.c" makes module
 * "a", its submodule "b" and tensor attribute "c", in key order. */
static ics_status build_tree(ts_tree *t)
{
    if (add_module(t) < 0) return ICS_ERR_NOMEM;
    for (int i = 0; i < ics_model_num_tensors(t->model); i++) {
        const char *key = ics_model_tensor(t->model, i)->name;
        int owner = 0;
        const char *p = key;
        for (;;) {
            const char *dot = strchr(p, '.');
            size_t len = dot ? (size_t)(dot - p) : strlen(p);
            if (!valid_component(p, len))
                return ICS_FAIL(t->err, ICS_ERR_INVALID,
                                "TorchScript export: tensor name '%s' cannot be an attribute path "
                                "(parts of letters, digits and '_'; not 'training' or 'forward')",
                                key);
            int a = find_attr(t, owner, p, len);
            if (!dot) {
                if (a >= 0)
                    return ICS_FAIL(t->err, ICS_ERR_INVALID,
                                    "TorchScript export: tensor '%s' clashes with another tensor "
                                    "or module of that name",
                                    key);
                ics_status st = add_attr(t, owner, -1, i, p, len);
                if (st != ICS_OK) return st;
                break;
            }
            if (a >= 0 && t->attrs[a].module < 0)
                return ICS_FAIL(t->err, ICS_ERR_INVALID,
                                "TorchScript export: tensor '%s' clashes with another tensor of "
                                "that name",
                                key);
            if (a < 0) {
                int m = add_module(t);
                if (m < 0) return ICS_ERR_NOMEM;
                ics_status st = add_attr(t, owner, m, -1, p, len);
                if (st != ICS_OK) return st;
                a = t->num_attrs - 1;
            }
            owner = t->attrs[a].module;
            p = dot + 1;
        }
    }
    return ICS_OK;
}

/* A descriptive class name: the root after the architecture, a module
 * holding tensors after the layer that owns them, a module of numbered
 * children "Sequential", any other "Block". */
static void class_base(const ts_tree *t, int m, char *base, size_t size)
{
    if (m == 0) {
        /* arch keys are identifiers already (model.h); keep it so */
        const char *arch = ics_model_arch(t->model);
        size_t k = 0;
        if (arch[0] >= '0' && arch[0] <= '9' && k + 1 < size) base[k++] = '_';
        for (const char *c = arch; *c && k + 1 < size; c++)
            base[k++] =
                ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))
                    ? *c
                    : '_';
        base[k] = '\0';
        return;
    }
    int numbered = 1, any = 0;
    for (int i = 0; i < t->num_attrs; i++) {
        const ts_attr *a = &t->attrs[i];
        if (a->owner != m) continue;
        if (a->tensor >= 0) {
            switch (ics_model_node(t->model, ics_model_tensor(t->model, a->tensor)->node)->kind) {
            case ICS_OP_CONV2D:
                snprintf(base, size, "Conv2d");
                return;
            case ICS_OP_BATCHNORM2D:
                snprintf(base, size, "BatchNorm2d");
                return;
            case ICS_OP_LINEAR:
                snprintf(base, size, "Linear");
                return;
            default:
                snprintf(base, size, "Layer");
                return;
            }
        }
        any = 1;
        if (a->name[0] < '0' || a->name[0] > '9') numbered = 0;
    }
    snprintf(base, size, "%s", any && numbered ? "Sequential" : "Block");
}

/* Gives every module a class, children before parents (a child's index
 * is always larger than its parent's), so a parent's signature can name
 * its children's classes. */
static ics_status assign_classes(ts_tree *t)
{
    t->classes =
        ics_calloc((size_t)t->num_modules, sizeof *t->classes, "TorchScript classes", t->err);
    if (!t->classes) return ICS_ERR_NOMEM;
    for (int m = t->num_modules - 1; m >= 0; m--) {
        text_buf sig = {.err = t->err};
        for (int i = 0; i < t->num_attrs; i++) {
            const ts_attr *a = &t->attrs[i];
            if (a->owner != m) continue;
            if (a->tensor >= 0)
                text_printf(&sig, "%.*s:%s;", (int)a->len, a->name,
                            is_param_kind(ics_model_tensor(t->model, a->tensor)->kind) ? "P" : "B");
            else
                text_printf(&sig, "%.*s:#%d;", (int)a->len, a->name, t->modules[a->module].cls);
        }
        text_printf(&sig, "%s", ""); /* an empty module still gets a string */
        if (sig.status != ICS_OK) {
            free(sig.data);
            return sig.status;
        }
        char base[40];
        class_base(t, m, base, sizeof base);
        int found = -1;
        for (int c = 0; c < t->num_classes && found < 0; c++)
            if (m != 0 && strcmp(t->classes[c].base, base) == 0 &&
                strcmp(t->classes[c].signature, sig.data) == 0)
                found = c;
        if (found >= 0) {
            free(sig.data);
            t->modules[m].cls = found;
            continue;
        }
        ts_class *c = &t->classes[t->num_classes];
        snprintf(c->base, sizeof c->base, "%s", base);
        c->signature = sig.data;
        c->module = m;
        t->modules[m].cls = t->num_classes++;
    }
    /* Names in module order, so the first Sequential met is "Sequential"
     * and its variants "Sequential_1", "Sequential_2", ... */
    for (int m = 0; m < t->num_modules; m++) {
        ts_class *c = &t->classes[t->modules[m].cls];
        if (c->name[0]) continue;
        int variants = 0;
        for (int k = 0; k < t->num_classes; k++)
            if (t->classes[k].name[0] && strcmp(t->classes[k].base, c->base) == 0) variants++;
        if (variants)
            snprintf(c->name, sizeof c->name, "%s_%d", c->base, variants);
        else
            snprintf(c->name, sizeof c->name, "%s", c->base);
    }
    return ICS_OK;
}

/* ---- the TorchScript source --------------------------------------------- */

static int is_identifier(const char *s, size_t len)
{
    static const char *const keywords[] = {
        "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
        "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
        "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
        "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield",    NULL};
    if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (int i = 0; keywords[i]; i++)
        if (strlen(keywords[i]) == len && memcmp(keywords[i], s, len) == 0) return 0;
    return 1; /* the characters were checked by valid_component */
}

/* The expression reaching a state_dict key from self: "self.layer1",
 * getattr(..., "0") for names that are not identifiers. */
static ics_status path_expr(const char *key, char *out, size_t size, ics_error *err)
{
    char tmp[4096];
    snprintf(out, size, "self");
    for (const char *p = key;;) {
        const char *dot = strchr(p, '.');
        int len = dot ? (int)(dot - p) : (int)strlen(p);
        int n = is_identifier(p, (size_t)len)
                    ? snprintf(tmp, sizeof tmp, "%s.%.*s", out, len, p)
                    : snprintf(tmp, sizeof tmp, "getattr(%s, \"%.*s\")", out, len, p);
        if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof tmp)
            return ICS_FAIL(err, ICS_ERR_INVALID, "TorchScript export: name too long: %s", key);
        memcpy(out, tmp, (size_t)n + 1);
        if (!dot) return ICS_OK;
        p = dot + 1;
    }
}

/* A float literal that reads back as the same float32 (shortest form):
 * 0.1, 1e-05, 6.0. */
static void float_literal(float v, char *out, size_t size)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(out, size, "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v) break;
    }
    if (!strpbrk(out, ".eEn")) { /* "6" -> "6.0" (an int literal would be an int) */
        size_t n = strlen(out);
        if (n + 2 < size) memcpy(out + n, ".0", 3);
    }
}

/* The class declarations: parameters and buffers by name, then every
 * attribute with its type, in the order of the state_dict. */
static void emit_class(text_buf *src, const ts_tree *t, int c)
{
    const ts_class *cls = &t->classes[c];
    text_printf(src, "class %s(Module):\n  __parameters__ = [", cls->name);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) text_printf(src, "]\n  __buffers__ = [");
        for (int i = 0; i < t->num_attrs; i++) {
            const ts_attr *a = &t->attrs[i];
            if (a->owner != cls->module || a->tensor < 0) continue;
            int param = is_param_kind(ics_model_tensor(t->model, a->tensor)->kind);
            if (param == (pass == 0)) text_printf(src, "\"%.*s\", ", (int)a->len, a->name);
        }
    }
    text_printf(src, "]\n  training : bool\n");
    for (int i = 0; i < t->num_attrs; i++) {
        const ts_attr *a = &t->attrs[i];
        if (a->owner != cls->module) continue;
        char type[96];
        if (a->tensor >= 0)
            snprintf(type, sizeof type, "Tensor");
        else
            snprintf(type, sizeof type, TS_MODULE ".%s",
                     t->classes[t->modules[a->module].cls].name);
        if (is_identifier(a->name, a->len))
            text_printf(src, "  %.*s : %s\n", (int)a->len, a->name, type);
        else
            text_printf(src, "  __annotations__[\"%.*s\"] = %s\n", (int)a->len, a->name, type);
    }
}

/* The tensors of a node by role (-1 when absent). */
typedef struct node_tensors {
    int weight, bias, mean, var, counter;
} node_tensors;

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static node_tensors tensors_of(ics_model *model, const ics_node *n)
{
    node_tensors r = {-1, -1, -1, -1, -1};
    for (int i = n->first_tensor; i < n->first_tensor + n->num_tensors; i++) {
        const ics_tensor_info *ti = ics_model_tensor(model, i);
        switch (ti->kind) {
        case ICS_TENSOR_WEIGHT:
        case ICS_TENSOR_BN_WEIGHT:
            r.weight = i;
            break;
        case ICS_TENSOR_BIAS:
        case ICS_TENSOR_BN_BIAS:
            r.bias = i;
            break;
        case ICS_TENSOR_BUFFER:
            if (ends_with(ti->name, "running_mean")) r.mean = i;
            if (ends_with(ti->name, "running_var")) r.var = i;
            break;
        case ICS_TENSOR_COUNTER:
            r.counter = i;
            break;
        }
    }
    return r;
}

/* The expression of tensor i into buf ("None" for -1). */
static ics_status tensor_expr(ics_model *model, int i, char *buf, size_t size, ics_error *err)
{
    if (i < 0) {
        snprintf(buf, size, "None");
        return ICS_OK;
    }
    return path_expr(ics_model_tensor(model, i)->name, buf, size, err);
}

/* The name of node i's value in forward: "input" for the model input. */
static void value_name(int i, char *buf, size_t size)
{
    if (i == 0)
        snprintf(buf, size, "input");
    else
        snprintf(buf, size, "x%d", i);
}

static const char *py_bool(int v)
{
    return v ? "True" : "False";
}

/* One line of forward for node i. */
static ics_status emit_node(text_buf *src, ics_model *model, int i, ics_error *err)
{
    const ics_node *n = ics_model_node(model, i);
    char out[32], in0[32] = "", in1[32] = "";
    value_name(i, out, sizeof out);
    if (n->num_inputs > 0) value_name(n->inputs[0], in0, sizeof in0);
    if (n->num_inputs > 1) value_name(n->inputs[1], in1, sizeof in1);
    const char *label = n->name[0] ? n->name : ics_op_kind_name(n->kind);
    node_tensors t = tensors_of(model, n);
    char w[4096], b[4096], mean[4096], var[4096], num[32];
    ics_status st = ICS_OK;
    switch (n->kind) {
    case ICS_OP_CONV2D:
        if (t.weight < 0) break;
        st = tensor_expr(model, t.weight, w, sizeof w, err);
        if (st == ICS_OK) st = tensor_expr(model, t.bias, b, sizeof b, err);
        if (st != ICS_OK) return st;
        text_printf(src, "    %s = torch.conv2d(%s, %s, %s, [%d, %d], [%d, %d], [1, 1], %d)\n", out,
                    in0, w, b, n->stride_h, n->stride_w, n->pad_h, n->pad_w, n->groups);
        return ICS_OK;
    case ICS_OP_BATCHNORM2D: {
        if (t.weight < 0 || t.bias < 0 || t.mean < 0 || t.var < 0) break;
        char momentum[32], eps[32];
        float_literal(n->momentum, momentum, sizeof momentum);
        float_literal(n->eps, eps, sizeof eps);
        st = tensor_expr(model, t.weight, w, sizeof w, err);
        if (st == ICS_OK) st = tensor_expr(model, t.bias, b, sizeof b, err);
        if (st == ICS_OK) st = tensor_expr(model, t.mean, mean, sizeof mean, err);
        if (st == ICS_OK) st = tensor_expr(model, t.var, var, sizeof var, err);
        if (st != ICS_OK) return st;
        /* torch's BatchNorm2d: in training, count the batch, then
         * normalize with batch statistics and update the running ones. */
        if (t.counter >= 0) {
            char counter[4096];
            st = tensor_expr(model, t.counter, counter, sizeof counter, err);
            if (st != ICS_OK) return st;
            text_printf(src, "    if self.training:\n      _%d = torch.add_(%s, 1)\n", i, counter);
        }
        text_printf(src,
                    "    %s = torch.batch_norm(%s, %s, %s, %s, %s, self.training, %s, %s, "
                    "True)\n",
                    out, in0, w, b, mean, var, momentum, eps);
        return ICS_OK;
    }
    case ICS_OP_RELU:
        text_printf(src, "    %s = torch.relu(%s)\n", out, in0);
        return ICS_OK;
    case ICS_OP_RELU6:
        text_printf(src, "    %s = torch.clamp(%s, 0.0, 6.0)\n", out, in0);
        return ICS_OK;
    case ICS_OP_MAXPOOL2D:
        text_printf(src,
                    "    %s = torch.max_pool2d(%s, [%d, %d], [%d, %d], [%d, %d], [1, 1], %s)\n",
                    out, in0, n->kernel_h, n->kernel_w, n->stride_h, n->stride_w, n->pad_h,
                    n->pad_w, py_bool(n->ceil_mode));
        return ICS_OK;
    case ICS_OP_AVGPOOL2D:
        text_printf(src,
                    "    %s = torch.avg_pool2d(%s, [%d, %d], [%d, %d], [%d, %d], %s, %s, None)\n",
                    out, in0, n->kernel_h, n->kernel_w, n->stride_h, n->stride_w, n->pad_h,
                    n->pad_w, py_bool(n->ceil_mode), py_bool(n->count_include_pad));
        return ICS_OK;
    case ICS_OP_ADAPTIVE_AVGPOOL2D:
        /* the node's output size is the module's target size; any input
         * size works as in torch */
        text_printf(src, "    %s = torch.adaptive_avg_pool2d(%s, [%d, %d])\n", out, in0, n->out_h,
                    n->out_w);
        return ICS_OK;
    case ICS_OP_ADD:
        text_printf(src, "    %s = torch.add(%s, %s)\n", out, in0, in1);
        return ICS_OK;
    case ICS_OP_FLATTEN:
        text_printf(src, "    %s = torch.flatten(%s, 1)\n", out, in0);
        return ICS_OK;
    case ICS_OP_DROPOUT:
        float_literal(n->dropout_p, num, sizeof num);
        text_printf(src, "    %s = torch.dropout(%s, %s, self.training)\n", out, in0, num);
        return ICS_OK;
    case ICS_OP_LINEAR:
        if (t.weight < 0) break;
        st = tensor_expr(model, t.weight, w, sizeof w, err);
        if (st == ICS_OK) st = tensor_expr(model, t.bias, b, sizeof b, err);
        if (st != ICS_OK) return st;
        text_printf(src, "    %s = torch.linear(%s, %s, %s)\n", out, in0, w, b);
        return ICS_OK;
    default:
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "TorchScript export: node '%s' (%s) has no TorchScript form", label,
                        ics_op_kind_name(n->kind));
    }
    return ICS_FAIL(err, ICS_ERR_INVALID, "TorchScript export: node '%s' (%s) lacks its tensors",
                    label, ics_op_kind_name(n->kind));
}

static ics_status emit_source(text_buf *src, const ts_tree *t)
{
    ics_model *model = t->model;
    int root = t->modules[0].cls;
    emit_class(src, t, root);
    text_printf(src, "  def forward(self: " TS_MODULE ".%s,\n    input: Tensor) -> Tensor:\n",
                t->classes[root].name);
    int count = ics_model_num_nodes(model);
    if (count < 2 || ics_model_node(model, 0)->kind != ICS_OP_INPUT)
        return ICS_FAIL(t->err, ICS_ERR_INVALID, "TorchScript export: the model graph is empty");
    for (int i = 1; i < count && src->status == ICS_OK; i++) {
        ics_status st = emit_node(src, model, i, t->err);
        if (st != ICS_OK) return st;
    }
    char last[32];
    value_name(count - 1, last, sizeof last);
    text_printf(src, "    return %s\n", last);
    for (int c = 0; c < t->num_classes; c++)
        if (c != root) emit_class(src, t, c);
    return src->status;
}

/* ---- data.pkl ----------------------------------------------------------- */

typedef struct storage_list {
    int *tensors; /* model tensor of storage key k */
    int count;
} storage_list;

/* Module m as an object: training = False (exported in eval mode, as
 * model.eval() leaves it), then its attributes in order. */
static void emit_module(ics_pickle_writer *w, const ts_tree *t, int m, storage_list *storages)
{
    ics_pickle_emit_object_begin(w, TS_MODULE, t->classes[t->modules[m].cls].name);
    ics_pickle_emit_string(w, "training", 8);
    ics_pickle_emit_op(w, ICS_PICKLE_NEWFALSE);
    for (int i = 0; i < t->num_attrs; i++) {
        const ts_attr *a = &t->attrs[i];
        if (a->owner != m) continue;
        ics_pickle_emit_string(w, a->name, a->len);
        if (a->module >= 0) {
            emit_module(w, t, a->module, storages);
            continue;
        }
        const ics_tensor_info *ti = ics_model_tensor(t->model, a->tensor);
        char key[32];
        snprintf(key, sizeof key, "%d", storages->count);
        storages->tensors[storages->count++] = a->tensor;
        int counter = ti->kind == ICS_TENSOR_COUNTER;
        ics_pickle_emit_rebuild_tensor(
            w, ics_pv_dtype_storage_class(counter ? ICS_DT_INT64 : ICS_DT_FLOAT32), key, ti->numel,
            ti->ndim, ti->shape, is_param_kind(ti->kind));
    }
    ics_pickle_emit_object_end(w);
}

/* ---- the archive -------------------------------------------------------- */

static ics_status write_archive(const char *path, ics_model *model, const uint8_t *pkl,
                                size_t pkl_len, const text_buf *src, const storage_list *storages,
                                ics_error *err)
{
    static const uint8_t constants[] = {ICS_PICKLE_PROTO, 2, ICS_PICKLE_EMPTY_TUPLE,
                                        ICS_PICKLE_STOP};
    ics_zip_writer *zw = NULL;
    ics_status st = ics_zip_writer_open(path, &zw, err);
    if (st != ICS_OK) return st;
    st = ics_zip_writer_add(zw, TS_FOLDER "/data.pkl", pkl, pkl_len, err);
    if (st == ICS_OK)
        st = ics_zip_writer_add(zw, TS_FOLDER "/" TS_SOURCE, src->data, src->len, err);
    if (st == ICS_OK)
        st = ics_zip_writer_add(zw, TS_FOLDER "/constants.pkl", constants, sizeof constants, err);
    for (int k = 0; k < storages->count && st == ICS_OK; k++) {
        int i = storages->tensors[k];
        const ics_tensor_info *ti = ics_model_tensor(model, i);
        char name[64];
        snprintf(name, sizeof name, TS_FOLDER "/data/%d", k);
        if (ti->kind == ICS_TENSOR_COUNTER)
            st = ics_zip_writer_add(zw, name, ics_model_tensor_counter(model, i),
                                    (size_t)ti->numel * sizeof(int64_t), err);
        else
            st = ics_zip_writer_add(zw, name, ics_model_tensor_data(model, i),
                                    (size_t)ti->numel * sizeof(float), err);
    }
    if (st == ICS_OK) st = ics_zip_writer_add(zw, TS_FOLDER "/version", "3\n", 2, err);
    if (st == ICS_OK) return ics_zip_writer_close(zw, err);
    ics_zip_writer_abort(zw);
    return st;
}

/* Promise (export.h): path holds the TorchScript archive, or path is
 * untouched and err says why. */
ics_status ics_export_torchscript(ics_model *model, const char *path, int force, ics_error *err)
{
    ics_status st = ics_export_check_target(path, force, err);
    if (st != ICS_OK) return st;
    ts_tree tree = {.model = model, .err = err};
    text_buf src = {.err = err};
    storage_list storages = {NULL, 0};
    ics_pickle_writer w;
    ics_pickle_writer_init(&w, err);
    st = build_tree(&tree);
    if (st == ICS_OK) st = assign_classes(&tree);
    if (st == ICS_OK) st = emit_source(&src, &tree);
    if (st == ICS_OK) {
        storages.tensors = ics_malloc((size_t)ics_model_num_tensors(model) * sizeof(int) + 1,
                                      "TorchScript storages", err);
        if (!storages.tensors) st = ICS_ERR_NOMEM;
    }
    if (st == ICS_OK) {
        emit_module(&w, &tree, 0, &storages);
        st = ics_pickle_writer_finish(&w);
    }
    if (st == ICS_OK)
        st = write_archive(path, model, w.buf, w.len, &src, &storages, err);
    else
        ics_error_prefix(err, "writing %s: ", path);
    ics_pickle_writer_free(&w);
    free(storages.tensors);
    free(src.data);
    tree_free(&tree);
    return st;
}
