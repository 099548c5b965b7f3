/*
 * Importing torch.save checkpoints into an icsparse model (see
 * pth_import.h). Checks first, copies after: a refused file leaves the
 * model untouched.
 */
#include "io/pth_import_internal.h"

#include <icsparse/checkpoint.h>
#include <icsparse/manager.h>
#include <icsparse/qat.h>
#include <icsparse/recipe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

void ics_pth_import_report_free(ics_pth_import_report *report)
{
    if (!report) return;
    free(report->recipe);
    memset(report, 0, sizeof *report);
}

/* Copies "head" then "tail" into out; -1 when it does not fit. */
static int join(char *out, size_t size, const char *head, const char *tail)
{
    int n = snprintf(out, size, "%s%s", head, tail);
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

int ics_pth_import_map_key(const char *key, char *out, size_t size)
{
    /* DataParallel inside DDP can stack the prefix: strip every one. */
    const char *k = key;
    while (strncmp(k, "module.", 7) == 0)
        k += 7;
    /* SparseML's ResNet (sparseml.pytorch.models.classification.resnet)
     * names its modules differently from torchvision but has the same
     * architecture: input.{conv,bn}, sections.S.B.{conv1..3,bn1..3,
     * identity.{conv,bn}}, classifier.fc. */
    if (strncmp(k, "input.conv.", 11) == 0) return join(out, size, "conv1.", k + 11) ? -1 : 1;
    if (strncmp(k, "input.bn.", 9) == 0) return join(out, size, "bn1.", k + 9) ? -1 : 1;
    if (strncmp(k, "classifier.fc.", 14) == 0) return join(out, size, "fc.", k + 14) ? -1 : 1;
    if (strncmp(k, "sections.", 9) == 0) {
        char *end;
        long s = strtol(k + 9, &end, 10);
        if (end != k + 9 && *end == '.' && s >= 0 && s < 1000) {
            const char *b = end + 1;
            long blk = strtol(b, &end, 10);
            if (end != b && *end == '.' && blk >= 0) {
                const char *rest = end + 1;
                const char *sub = rest, *subst = "";
                if (strncmp(rest, "identity.conv.", 14) == 0) {
                    subst = "downsample.0.";
                    sub = rest + 14;
                } else if (strncmp(rest, "identity.bn.", 12) == 0) {
                    subst = "downsample.1.";
                    sub = rest + 12;
                }
                int n = snprintf(out, size, "layer%ld.%ld.%s%s", s + 1, blk, subst, sub);
                return (n < 0 || (size_t)n >= size) ? -1 : 1;
            }
        }
    }
    return join(out, size, "", k) ? -1 : 0;
}

typedef ics_pth_entry entry;

/* Edit distance with adjacent transpositions (optimal string alignment:
 * "wieght" is one edit from "weight"), for naming the closest key in
 * "missing" errors. Names are cut at ROW_MAX - 1 characters. */
#define ROW_MAX (ICS_NAME_MAX + 66)
static size_t edit_distance(const char *a, const char *b)
{
    size_t r0[ROW_MAX], r1[ROW_MAX], r2[ROW_MAX];
    size_t *prev2 = r0, *prev = r1, *cur = r2;
    size_t la = strlen(a), lb = strlen(b);
    if (la > ROW_MAX - 1) la = ROW_MAX - 1;
    if (lb > ROW_MAX - 1) lb = ROW_MAX - 1;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/* The entry whose name is closest to name, among the unclaimed ones
 * (also the claimed ones when any_entry is set); NULL if none. */
static const entry *closest(const entry *e, size_t n, const char *name, int any_entry)
{
    const entry *best = NULL;
    size_t bd = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        if (e[i].used && !any_entry) continue;
        size_t d = edit_distance(e[i].name, name);
        if (d < bd) {
            bd = d;
            best = &e[i];
        }
    }
    return best;
}

static void shape_text(char *out, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    out[0] = '\0';
    used += (size_t)snprintf(out, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used +=
            (size_t)snprintf(out + used, size - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (used < size) snprintf(out + used, size - used, "]");
}

/* The model's classifier: its last linear layer (fc for resnets,
 * classifier for simple_cnn, classifier.1 / classifier.6 for mobilenet_v2
 * and vgg); -1 if none. */
static int classifier_node(const ics_model *model)
{
    int found = -1;
    for (int i = 0; i < ics_model_num_nodes(model); i++)
        if (ics_model_node(model, i)->kind == ICS_OP_LINEAR) found = i;
    return found;
}

/* Fills the report from the checkpoint dict's metadata. */
static ics_status read_metadata(const ics_pth *pth, ics_pth_import_report *rep, ics_error *err)
{
    const ics_pv *root = ics_pth_root(pth);
    if (!root || root->kind != ICS_PV_DICT || ics_pth_is_tensor_dict(root)) return ICS_OK;
    const char *recipe = ics_pv_get_string(root, "recipe");
    if (recipe) {
        rep->recipe = ics_strdup(recipe, err);
        if (!rep->recipe) return ICS_ERR_NOMEM;
    }
    double epoch;
    if (ics_pv_get_float(root, "epoch", &epoch) == 0) {
        rep->has_epoch = 1;
        rep->epoch = epoch;
    }
    const char *arch = ics_pv_get_string(root, "arch_key");
    if (arch) snprintf(rep->arch_key, sizeof rep->arch_key, "%s", arch);
    const ics_pv *opt = ics_pv_dict_get(root, "optimizer");
    rep->has_optimizer = opt && opt->kind != ICS_PV_NONE;
    return ICS_OK;
}

/* Builds the mapped key table of the file's state_dict (names as model's
 * tensors are named). */
static ics_status collect(const ics_pth *pth, const char *label, const ics_model *model,
                          entry **out, size_t *count, ics_pth_import_report *rep, ics_error *err)
{
    const ics_pv *sd = ics_pth_state_dict(pth);
    if (!sd)
        return ICS_FAIL(
            err, ICS_ERR_FORMAT,
            "%s: no state_dict (expected a dict of tensors, or a checkpoint dict with a "
            "'state_dict' or 'model' entry)",
            label);
    size_t n = sd->u.dict.len;
    entry *e = ics_calloc(n ? n : 1, sizeof *e, "import key table", err);
    if (!e) return ICS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *key = sd->u.dict.keys[i]->u.str.data;
        e[i].file_key = key;
        e[i].tensor = sd->u.dict.values[i];
        int r = ics_pth_import_map_key(key, e[i].name, sizeof e[i].name);
        if (r < 0) {
            free(e);
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: state_dict key '%.80s...' is too long", label,
                            key);
        }
        rep->renamed += r;
        rep->module_prefix += strncmp(key, "module.", 7) == 0;
        char fused[sizeof e[i].name];
        if (ics_model_find_tensor(model, e[i].name) < 0 &&
            ics_pth_fused_bn_name(model, e[i].name, fused, sizeof fused)) {
            memcpy(e[i].name, fused, sizeof fused);
            rep->fused_bn++;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(e[j].name, e[i].name) == 0) {
                ics_status st =
                    ICS_FAIL(err, ICS_ERR_FORMAT, "%s: keys '%s' and '%s' both stand for '%s'",
                             label, e[j].file_key, key, e[i].name);
                free(e);
                return st;
            }
    }
    *out = e;
    *count = n;
    return ICS_OK;
}

static entry *find(entry *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0) return &e[i];
    return NULL;
}

/* Checks every model tensor against the table; reinit[i] is set for the
 * classifier tensors transfer learning leaves at the model's init. Keys no
 * tensor claims are errors, except QAT state (left unclaimed). */
static ics_status check_entries(entry *e, size_t n, const char *label, const ics_model *model,
                                char *reinit, ics_pth_import_report *rep, ics_error *err)
{
    int nt = ics_model_num_tensors(model);
    int cls = classifier_node(model);
    ics_status st = ICS_OK;
    /* Mark every match first, so that a missing tensor's closest key is
     * sought among the keys nothing claimed. */
    /* Transfer learning: the classifier's weight in the file has other
     * rows (classes) over the same input features; then its weight and
     * bias are the tensors allowed to differ, both left at the model's
     * init (never one of them alone). */
    int other_classes = 0;
    for (int i = 0; i < nt; i++) {
        const ics_tensor_info *ti = ics_model_tensor(model, i);
        entry *x = find(e, n, ti->name);
        if (!x) continue;
        x->used = 1;
        const ics_pv *t = x->tensor;
        if (ti->node == cls && ti->kind == ICS_TENSOR_WEIGHT && t->u.tensor.ndim == 2 &&
            ti->ndim == 2 && t->u.tensor.shape[1] == ti->shape[1] &&
            t->u.tensor.shape[0] != ti->shape[0])
            other_classes = 1;
    }
    for (int i = 0; i < nt && !st; i++) {
        const ics_tensor_info *ti = ics_model_tensor(model, i);
        entry *x = find(e, n, ti->name);
        if (!x) {
            const entry *c = closest(e, n, ti->name, 0);
            if (!c) c = closest(e, n, ti->name, 1);
            if (c && strcmp(c->name, c->file_key) != 0)
                st = ICS_FAIL(
                    err, ICS_ERR_FORMAT,
                    "%s: tensor '%s' of %s is missing (closest key present: '%s', from '%s')",
                    label, ti->name, ics_model_arch(model), c->name, c->file_key);
            else
                st = ICS_FAIL(err, ICS_ERR_FORMAT,
                              "%s: tensor '%s' of %s is missing (closest key present: '%s')", label,
                              ti->name, ics_model_arch(model),
                              c ? c->name : "none, the state_dict is empty");
            break;
        }
        const ics_pv *t = x->tensor;
        if (ti->kind == ICS_TENSOR_COUNTER) {
            if (t->u.tensor.numel != 1)
                st = ICS_FAIL(err, ICS_ERR_FORMAT,
                              "%s: tensor '%s' has %zu elements, expected a scalar", label,
                              x->file_key, t->u.tensor.numel);
            continue;
        }
        int same = t->u.tensor.ndim == ti->ndim;
        for (int d = 0; same && d < ti->ndim; d++)
            same = t->u.tensor.shape[d] == ti->shape[d];
        if (ti->node == cls && ti->kind == ICS_TENSOR_WEIGHT && t->u.tensor.ndim == ti->ndim)
            rep->file_num_classes = (int)t->u.tensor.shape[0];
        if (same && !(other_classes && ti->node == cls)) continue;
        /* a bias of another length is accepted only with its weight */
        if (other_classes && ti->node == cls &&
            (ti->kind == ICS_TENSOR_WEIGHT || t->u.tensor.ndim == 1)) {
            reinit[i] = 1;
            continue;
        }
        char got[96], want[96];
        shape_text(got, sizeof got, t->u.tensor.ndim, t->u.tensor.shape);
        shape_text(want, sizeof want, ti->ndim, ti->shape);
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: tensor '%s' has shape %s, %s expects %s", label,
                      x->file_key, got, ics_model_arch(model), want);
    }
    for (size_t i = 0; i < n && !st; i++)
        if (!e[i].used && !ics_pth_is_qat_key(e[i].name))
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: unexpected key '%s' (not a tensor of %s)",
                          label, e[i].file_key, ics_model_arch(model));
    return st;
}

/* Copies the checked tensors into model. */
static ics_status copy_entries(entry *e, size_t n, const char *label, ics_model *model,
                               const char *reinit, ics_pth_import_report *rep, ics_error *err)
{
    int nt = ics_model_num_tensors(model);
    int cls = classifier_node(model);
    int reinit_any = 0;
    ics_status st = ICS_OK;
    for (int i = 0; i < nt && !st; i++) {
        const ics_tensor_info *ti = ics_model_tensor(model, i);
        if (reinit[i]) {
            rep->reinitialized++;
            reinit_any = 1;
            continue;
        }
        const ics_pv *t = find(e, n, ti->name)->tensor;
        if (ti->kind == ICS_TENSOR_COUNTER) {
            int64_t *c = ics_model_tensor_counter(model, i);
            if (t->u.tensor.dtype == ICS_DT_INT64) {
                memcpy(c, t->u.tensor.data, sizeof *c);
            } else {
                float v;
                st = ics_pv_tensor_to_f32(t, &v, 1, err);
                *c = (int64_t)llroundf(v);
            }
        } else {
            st = ics_pv_tensor_to_f32(t, ics_model_tensor_data(model, i), (size_t)ti->numel, err);
        }
        rep->tensors_loaded += !st;
    }
    if (!st && reinit_any) {
        const ics_node *node = ics_model_node(model, cls);
        snprintf(rep->reinit_layer, sizeof rep->reinit_layer, "%s", node->name);
        ICS_WARN("%s: classifier '%s' has %d classes there, the model %d: '%s' is re-initialized "
                 "(transfer learning)",
                 label, node->name, rep->file_num_classes, node->out_c, node->name);
    }
    return st;
}

ics_status ics_pth_import_open(const char *path, ics_pth **out, ics_pth_import_report *rep,
                               ics_error *err)
{
    *out = NULL;
    memset(rep, 0, sizeof *rep);
    ics_pth *pth = NULL;
    ics_status st = ics_pth_load(path, &pth, err);
    if (!st) st = read_metadata(pth, rep, err);
    if (st) {
        ics_pth_destroy(pth);
        return st;
    }
    *out = pth;
    return ICS_OK;
}

double ics_pth_import_epoch(const ics_pth_import_report *rep)
{
    return rep->has_epoch ? rep->epoch : -1.0;
}

ics_status ics_pth_import_recipe(ics_pth_import_report *rep, const char *label, ics_recipe **out,
                                 ics_error *err)
{
    *out = NULL;
    if (!rep->recipe) return ICS_OK;
    char source[1100];
    snprintf(source, sizeof source, "%s:recipe", label);
    ics_error local;
    ics_error *e = err ? err : &local;
    ics_status st = ics_recipe_load_string(rep->recipe, source, NULL, out, e);
    if (!st || st == ICS_ERR_NOMEM) return st;
    /* Without its QAT structure a quantized model's weights mean
     * something else: that recipe must be understood. Others only decide
     * what training holds (the caller says what it does without one). */
    if (strstr(rep->recipe, "QuantizationModifier")) return st;
    ICS_WARN("%s: its recipe is not applied (%s)", label, e->message);
    rep->recipe_unread = 1;
    return ICS_OK;
}

ics_status ics_pth_import_apply(const ics_pth *pth, const char *label, const ics_recipe *recipe,
                                ics_model *model, ics_pth_import_report *rep, ics_error *err)
{
    entry *e = NULL;
    size_t n = 0;
    ics_pth_qat_plan *plan = NULL;
    char *reinit = ics_calloc((size_t)ics_model_num_tensors(model) + 1, 1, "import flags", err);
    ics_status st = reinit ? ICS_OK : ICS_ERR_NOMEM;
    if (!st) st = collect(pth, label, model, &e, &n, rep, err);
    if (!st) st = check_entries(e, n, label, model, reinit, rep, err);
    /* update_architecture_from_recipe: the QAT structure the recipe has
     * given by the file's epoch, before the quantizer state is matched */
    if (!st && recipe) {
        int before = ics_model_qat_active(model);
        st = ics_recipe_apply_structure(recipe, model, ics_pth_import_epoch(rep), err);
        if (st) ics_error_prefix(err, "%s: ", label);
        rep->qat_structure = !st && !before && ics_model_qat_active(model);
    }
    if (!st && ics_model_qat_active(model)) {
        /* a re-initialized classifier's quantizers start afresh too */
        const char *skip = NULL;
        for (int i = 0; i < ics_model_num_tensors(model) && !skip; i++)
            if (reinit[i]) skip = ics_model_node(model, ics_model_tensor(model, i)->node)->name;
        st = ics_pth_qat_plan_make(e, n, label, model, skip, rep, &plan, err);
    } else
        for (size_t i = 0; !st && i < n; i++)
            rep->qat_extras += !e[i].used; /* only QAT keys are left: skipped */
    if (!st) st = copy_entries(e, n, label, model, reinit, rep, err);
    if (!st && plan) ics_pth_qat_plan_apply(plan, model);
    ics_pth_qat_plan_destroy(plan);
    free(reinit);
    free(e);
    return st;
}

ics_status ics_pth_import_into_model(const char *path, ics_model *model,
                                     ics_pth_import_report *report, ics_error *err)
{
    ics_pth_import_report local;
    ics_pth_import_report *rep = report ? report : &local;
    ics_pth *pth = NULL;
    ics_recipe *recipe = NULL;
    ics_status st = ics_pth_import_open(path, &pth, rep, err);
    if (!st) st = ics_pth_import_recipe(rep, path, &recipe, err);
    if (!st) st = ics_pth_import_apply(pth, path, recipe, model, rep, err);
    ics_recipe_destroy(recipe);
    ics_pth_destroy(pth);
    if (!report) ics_pth_import_report_free(&local);
    return st;
}

/* Rows / columns of the file's tensor that stands for the model tensor
 * name (dim d), or 0. */
static int64_t file_dim(const ics_pth *pth, const char *name, int d)
{
    const ics_pv *sd = ics_pth_state_dict(pth);
    if (!sd) return 0;
    char mapped[ICS_NAME_MAX + 64];
    for (size_t i = 0; i < sd->u.dict.len; i++) {
        if (ics_pth_import_map_key(sd->u.dict.keys[i]->u.str.data, mapped, sizeof mapped) < 0)
            continue;
        const ics_pv *t = sd->u.dict.values[i];
        if (strcmp(mapped, name) == 0 && t->u.tensor.ndim > d) return t->u.tensor.shape[d];
    }
    return 0;
}

/* Creates the model the file fits: class count and input channels read
 * from the file when opts leaves them open. */
static ics_status create_fitting_model(const ics_pth *pth, const char *arch,
                                       const ics_model_options *given, ics_model **out,
                                       ics_error *err)
{
    ics_model_options o;
    if (given)
        o = *given;
    else
        ics_model_options_default(&o);
    int want_classes = o.num_classes <= 0, want_channels = o.in_channels <= 0;
    ics_model *m = NULL;
    ics_status st = ics_model_create(arch, &o, &m, err);
    if (st) return st;
    int redo = 0;
    int cls = classifier_node(m);
    if (want_classes && cls >= 0) {
        char name[ICS_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.weight", ics_model_node(m, cls)->name);
        int64_t rows = file_dim(pth, name, 0);
        if (rows > 0 && rows <= 1000000 && rows != ics_model_node(m, cls)->out_c) {
            o.num_classes = (int)rows;
            redo = 1;
        }
    }
    if (want_channels) {
        for (int i = 0; i < ics_model_num_nodes(m); i++) {
            const ics_node *nd = ics_model_node(m, i);
            if (nd->kind != ICS_OP_CONV2D) continue;
            char name[ICS_NAME_MAX + 16];
            snprintf(name, sizeof name, "%s.weight", nd->name);
            int64_t c = file_dim(pth, name, 1);
            if (c > 0 && c <= 64 && c != ics_model_get_options(m)->in_channels) {
                o.in_channels = (int)c;
                redo = 1;
            }
            break;
        }
    }
    if (redo) {
        ics_model_destroy(m);
        m = NULL;
        st = ics_model_create(arch, &o, &m, err);
    }
    if (!st) *out = m;
    return st;
}

ics_status ics_pth_import_to_checkpoint(const char *path, const char *arch,
                                        const ics_model_options *opts, const char *out_h5,
                                        ics_error *err)
{
    ics_pth_import_report rep;
    ics_pth *pth = NULL;
    ics_model *model = NULL;
    ics_recipe *recipe = NULL;
    ics_status st = ics_pth_import_open(path, &pth, &rep, err);
    if (!st && (!arch || !arch[0])) {
        if (!rep.arch_key[0])
            st = ICS_FAIL(err, ICS_ERR_CONFIG, "%s has no arch_key: name the architecture (--arch)",
                          path);
        arch = rep.arch_key;
    }
    if (!st) st = create_fitting_model(pth, arch, opts, &model, err);
    if (!st) {
        ics_model_init_params(model, 0);
        st = ics_pth_import_recipe(&rep, path, &recipe, err);
    }
    if (!st) st = ics_pth_import_apply(pth, path, recipe, model, &rep, err);
    ics_checkpoint_writer *w = NULL;
    if (!st) st = ics_checkpoint_begin(out_h5, &w, err);
    if (!st) {
        ics_checkpoint_info info;
        ics_checkpoint_info_init(&info);
        snprintf(info.arch, sizeof info.arch, "%s", ics_model_arch(model));
        info.model_options = *ics_model_get_options(model);
        info.world_size = 1;
        snprintf(info.kind, sizeof info.kind, "imported");
        info.sparsity = ics_model_sparsity(model);
        /* Training starts here (epoch 0), except for a QAT model: loading
         * it rebuilds the structure from /recipe at info.epoch, so that is
         * the file's epoch (a finished run's: the recipe's end). */
        info.qat_active = ics_model_qat_active(model);
        if (info.qat_active)
            info.epoch =
                ics_pth_import_epoch(&rep) >= 0 ? rep.epoch : (double)ics_recipe_max_epochs(recipe);
        st = ics_checkpoint_put_info(w, &info, err);
        if (!st) st = ics_checkpoint_put_model(w, model, err);
        if (!st) st = ics_checkpoint_put_quant(w, model, err);
        if (!st && rep.recipe) st = ics_checkpoint_put_text(w, "recipe", rep.recipe, err);
        if (!st)
            st = ics_checkpoint_commit(w, err);
        else
            ics_checkpoint_abort(w);
    }
    if (!st)
        ICS_INFO("imported %s (%d tensors%s%s%s) into %s", path, rep.tensors_loaded,
                 rep.renamed ? ", SparseZoo names" : "",
                 rep.reinitialized ? ", classifier re-initialized" : "",
                 ics_model_qat_active(model) ? ", quantization-aware" : "", out_h5);
    ics_recipe_destroy(recipe);
    ics_model_destroy(model);
    ics_pth_destroy(pth);
    ics_pth_import_report_free(&rep);
    return st;
}
