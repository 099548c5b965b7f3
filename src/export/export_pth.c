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
 * max_val) read older key layouts without it. The module tree and the
 * versions: export_pth_metadata.c.
 */
#include "ics_build_config.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <icsparse/export.h>
#include <icsparse/qat.h>

#include "export/export_internal.h"
#include "export/export_pth_metadata.h"
#include "io/pth_writer.h"

enum { KEY_LEN = ICS_PTH_KEY_LEN };

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

/* Saves root whose state_dict is sd (root itself for an fp32 model) with
 * sd's _metadata. */
static ics_status save_with_metadata(ics_pv_arena *a, ics_model *model, const ics_pv *root,
                                     const ics_pv *sd, const char *path, ics_error *err)
{
    ics_pv *meta = NULL, *attrs = ics_pv_new_dict(a, 0, err);
    ics_status st = attrs ? ics_pth_module_metadata(a, model, sd, &meta, err) : ICS_ERR_NOMEM;
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
