/*
 * src/export/export_zoo.c: a SparseZoo-style model directory, the layout
 * SparseZoo serves a model in (model.md card with YAML front matter,
 * model.onnx, deployment/, training/model.pth and a TorchScript
 * training/model.pt, recipe/, and sample inputs, outputs and labels as
 * numpy .npz files), so a checkpoint can be dropped where SparseZoo
 * tooling or a person expects one. TensorBoard logs are not copied:
 * icsparse's run directory holds them.
 *
 * Samples: the first num_samples rows of a dataset split, normalized as
 * evaluation does ((x/255 - mean)/std), with their labels; without a
 * dataset, standard-normal random inputs (SplitMix64 + Box-Muller from
 * sample_seed) and no labels. Outputs are the logits of icsparse's own
 * eval-mode forward, on a copy of the model so the caller's model keeps
 * its plan and mode. Inputs are NCHW [1, C, H, W] like the ONNX input.
 */
#include "ics_build_config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <icsparse/checkpoint.h>
#include <icsparse/export.h>
#include <icsparse/qat.h>

#include "core/alloc.h"
#include "data/dataset.h"
#include "data/rng.h"
#include "export/export_internal.h"
#include "export/export_npz.h"
#include "train/evaluate.h"

/* "null" for a metric that was not measured (NaN), else the number. */
static void put_metric(char *buf, size_t size, double v)
{
    if (isnan(v))
        snprintf(buf, size, "null");
    else
        snprintf(buf, size, "%.6g", v);
}

/* A copy of model's weights in a model planned for one-sample inference. */
static ics_status inference_copy(ics_model *model, ics_model **out, ics_error *err)
{
    ics_model *copy = NULL;
    ics_status st =
        ics_model_create(ics_model_arch(model), ics_model_get_options(model), &copy, err);
    /* a QAT model's samples are its own fake-quantized logits: the copy
     * gets its structure and quantizer state */
    if (st == ICS_OK) st = ics_model_qat_prepare_like(copy, model, err);
    size_t n1, n2;
    if (st == ICS_OK) {
        float *a = ics_model_params(model, &n1), *b = ics_model_params(copy, &n2);
        if (n1 == n2) memcpy(b, a, n1 * sizeof *a);
        int ok = n1 == n2;
        a = ics_model_buffers(model, &n1);
        b = ics_model_buffers(copy, &n2);
        if (ok && n1 == n2) memcpy(b, a, n1 * sizeof *a);
        ok = ok && n1 == n2;
        int64_t *c1 = ics_model_counters(model, &n1), *c2 = ics_model_counters(copy, &n2);
        if (ok && n1 == n2) memcpy(c2, c1, n1 * sizeof *c1);
        ok = ok && n1 == n2;
        if (!ok)
            st = ICS_FAIL(err, ICS_ERR_RUNTIME, "SparseZoo samples: cannot copy the %s model",
                          ics_model_arch(model));
    }
    if (st == ICS_OK) st = ics_model_plan(copy, 1, 0, err);
    if (st != ICS_OK) {
        ics_model_destroy(copy);
        return st;
    }
    *out = copy;
    return ICS_OK;
}

/* Standard-normal NHWC inputs (Box-Muller over SplitMix64 uniforms). */
static void random_inputs(float *x, size_t count, uint64_t seed)
{
    const double two_pi = 6.283185307179586476925;
    ics_data_rng rng;
    ics_data_rng_seed(&rng, seed, 0x5a3d1e, 0);
    for (size_t i = 0; i < count; i += 2) {
        /* u1 in (0, 1] so the log is finite */
        double u1 = (double)((ics_data_rng_next(&rng) >> 11) + 1) * (1.0 / 9007199254740992.0);
        double u2 = (double)(ics_data_rng_next(&rng) >> 11) * (1.0 / 9007199254740992.0);
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < count) x[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

/* The first n rows of the dataset split as normalized NHWC floats and
 * their labels; *n is lowered to the rows there are. */
static ics_status dataset_inputs(const ics_model_options *mo, const ics_export_options *opts,
                                 float **x_out, int32_t **labels_out, int *n, ics_error *err)
{
    const char *split = opts->sample_split ? opts->sample_split : "val";
    ics_dataset_reader *d = NULL;
    ics_status st = ics_dataset_open(opts->sample_dataset, &d, err);
    if (st != ICS_OK) return st;
    const ics_dataset_meta *meta = ics_dataset_reader_meta(d);
    int64_t rows = ics_dataset_count(d, split);
    if (meta->height != mo->in_h || meta->width != mo->in_w || meta->channels != mo->in_channels ||
        meta->num_classes != mo->num_classes)
        st = ICS_FAIL(err, ICS_ERR_CONFIG,
                      "SparseZoo samples: %s (%dx%dx%d, %d classes) does not fit the model "
                      "(%dx%dx%d, %d classes)",
                      opts->sample_dataset, meta->height, meta->width, meta->channels,
                      meta->num_classes, mo->in_h, mo->in_w, mo->in_channels, mo->num_classes);
    else if (rows == 0)
        st = ICS_FAIL(err, ICS_ERR_CONFIG, "SparseZoo samples: %s has no %s split",
                      opts->sample_dataset, split);
    if (st != ICS_OK) {
        ics_dataset_close(d);
        return st;
    }
    if (rows < *n) *n = (int)rows;
    size_t pixels = (size_t)*n * mo->in_h * mo->in_w;
    uint8_t *raw = ics_malloc(pixels * mo->in_channels + 1, "sample images", err);
    float *x = ics_malloc(pixels * mo->in_channels * sizeof *x + 1, "sample inputs", err);
    int32_t *labels = ics_malloc((size_t)*n * sizeof *labels + 1, "sample labels", err);
    st = raw && x && labels ? ICS_OK : ICS_ERR_NOMEM;
    if (st == ICS_OK) st = ics_dataset_read(d, split, 0, *n, raw, labels, err);
    if (st == ICS_OK)
        ics_normalize_images(raw, x, (int64_t)pixels, mo->in_channels, meta->mean, meta->std);
    free(raw);
    ics_dataset_close(d);
    if (st != ICS_OK) {
        free(x);
        free(labels);
        return st;
    }
    *x_out = x;
    *labels_out = labels;
    return ICS_OK;
}

/* DIR/sample_inputs/inp-NNNN.npz, DIR/sample_outputs/out-NNNN.npz and,
 * with a dataset, DIR/sample_labels/lab-NNNN.npz. */
static ics_status write_samples(ics_model *model, const ics_export_options *opts, const char *dir,
                                ics_error *err)
{
    int n = opts->num_samples;
    if (n <= 0) return ICS_OK;
    const ics_model_options *mo = ics_model_get_options(model);
    int c = mo->in_channels, h = mo->in_h, w = mo->in_w, classes = mo->num_classes;
    size_t row = (size_t)c * h * w;
    float *x = NULL, *nchw = NULL;
    int32_t *labels = NULL;
    ics_model *copy = NULL;
    ics_status st;
    if (opts->sample_dataset) {
        st = dataset_inputs(mo, opts, &x, &labels, &n, err);
    } else {
        x = ics_malloc((size_t)n * row * sizeof *x + 1, "sample inputs", err);
        st = x ? ICS_OK : ICS_ERR_NOMEM;
        if (st == ICS_OK) random_inputs(x, (size_t)n * row, opts->sample_seed);
    }
    char sub[3][4200];
    const char *names[3] = {"sample_inputs", "sample_outputs", "sample_labels"};
    for (int k = 0; k < 3 && st == ICS_OK; k++) {
        snprintf(sub[k], sizeof sub[k], "%s/%s", dir, names[k]);
        if (k < 2 || labels) st = ics_export_mkdirs(sub[k], err);
    }
    if (st == ICS_OK) {
        nchw = ics_malloc(row * sizeof *nchw + 1, "sample input", err);
        st = nchw ? ICS_OK : ICS_ERR_NOMEM;
    }
    if (st == ICS_OK) st = inference_copy(model, &copy, err);
    for (int s = 0; s < n && st == ICS_OK; s++) {
        const float *xs = x + (size_t)s * row;
        const float *logits = NULL;
        st = ics_model_forward(copy, xs, 1, &logits, err);
        if (st != ICS_OK) break;
        /* NHWC (icsparse) -> NCHW (torch, ONNX) */
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < h * w; p++)
                nchw[(size_t)ch * h * w + p] = xs[(size_t)p * c + ch];
        char path[4300];
        int64_t in_shape[4] = {1, c, h, w}, out_shape[2] = {1, classes}, lab_shape[1] = {1};
        ics_npz_array in = {"input", "<f4", 4, in_shape, nchw};
        snprintf(path, sizeof path, "%s/inp-%04d.npz", sub[0], s);
        st = ics_npz_write(path, &in, 1, err);
        ics_npz_array out = {"output", "<f4", 2, out_shape, logits};
        snprintf(path, sizeof path, "%s/out-%04d.npz", sub[1], s);
        if (st == ICS_OK) st = ics_npz_write(path, &out, 1, err);
        if (st == ICS_OK && labels) {
            int64_t label = labels[s];
            ics_npz_array lab = {"label", "<i8", 1, lab_shape, &label};
            snprintf(path, sizeof path, "%s/lab-%04d.npz", sub[2], s);
            st = ics_npz_write(path, &lab, 1, err);
        }
    }
    ics_model_destroy(copy);
    free(nchw);
    free(x);
    free(labels);
    return st;
}

/* A growing text buffer; a failed allocation sticks in st. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
    ics_status st;
    ics_error *err;
} text_buf;

static void tb_printf(text_buf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(text_buf *t, const char *fmt, ...)
{
    if (t->st) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) n = 0;
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap <= t->len + (size_t)n) cap *= 2;
        char *p = ics_realloc(t->s, cap, "model card", t->err);
        if (!p) {
            t->st = ICS_ERR_NOMEM;
            return;
        }
        t->s = p;
        t->cap = cap;
    }
}

/* The integer ranges of a QAT model's quantizers (the first activation
 * and weight quantizer; icsparse gives all of one kind the same range)
 * and how many layers have quantized weights. */
static void quant_scheme(ics_model *model, ics_act_quant *act, int *w_qmin, int *w_qmax,
                         int *layers, int *quantizers)
{
    *layers = *quantizers = 0;
    act->quant_min = act->quant_max = 0;
    *w_qmin = *w_qmax = 0;
    for (int k = 0; k < ics_model_num_nodes(model); k++) {
        const ics_node *n = ics_model_node(model, k);
        ics_act_quant q;
        if (n->kind == ICS_OP_FAKE_QUANT && ics_model_act_quant_get(model, k, &q, NULL) == ICS_OK) {
            if (!*quantizers) *act = q;
            ++*quantizers;
        }
        int lo, hi;
        if ((n->kind == ICS_OP_CONV2D || n->kind == ICS_OP_LINEAR) &&
            ics_model_weight_scales(model, k, NULL, &lo, &hi)) {
            if (!*layers) *w_qmin = lo, *w_qmax = hi;
            ++*layers;
        }
    }
}

/* DIR/model.md: YAML front matter, what the files are, the quantization
 * scheme of a QAT model and the sparsity of every prunable layer. */
static ics_status write_card(ics_model *model, const ics_checkpoint_info *info, const char *recipe,
                             const ics_export_options *opts, const char *card, ics_error *err)
{
    const ics_model_options *mo = ics_model_get_options(model);
    const char *arch = ics_model_arch(model);
    int qat = ics_model_qat_active(model);
    ics_act_quant act;
    int w_qmin, w_qmax, layers, quantizers;
    quant_scheme(model, &act, &w_qmin, &w_qmax, &layers, &quantizers);
    char top1[32], top5[32], loss[32];
    put_metric(top1, sizeof top1, info->val_top1);
    put_metric(top5, sizeof top5, info->val_top5);
    put_metric(loss, sizeof loss, info->val_loss);
    text_buf t = {NULL, 0, 0, ICS_OK, err};
    tb_printf(&t,
              "---\n"
              "domain: cv\n"
              "sub_domain: classification\n"
              "architecture: %s\n"
              "framework: pytorch\n"
              "repo: icsparse\n"
              "dataset_classes: %d\n"
              "input_shape: [%d, %d, %d]\n"
              "sparsity: %.6g\n"
              "epoch: %.6g\n"
              "metrics: {val_top1: %s, val_top5: %s, val_loss: %s}\n"
              "onnx_opset: %d\n",
              arch, mo->num_classes, mo->in_channels, mo->in_h, mo->in_w, info->sparsity,
              info->epoch, top1, top5, loss, opts->opset);
    if (qat)
        tb_printf(&t,
                  "quantization: {format: int8 QDQ, activations: uint8 per-tensor affine [%d, %d], "
                  "weights: int8 per-channel symmetric [%d, %d]}\n",
                  act.quant_min, act.quant_max, w_qmin, w_qmax);
    tb_printf(&t, "---\n\n# %s (icsparse)\n\n", arch);
    if (qat) {
        tb_printf(&t,
                  "Exported by icsparse %s from a checkpoint of kind '%s' with\n"
                  "quantization-aware training. `model.onnx` and `deployment/model.onnx` are\n"
                  "the **int8 QDQ** model: they take `input` [batch, %d, %d, %d] (NCHW float32,\n"
                  "normalized as in training) and give `output` [batch, %d] logits, with\n"
                  "every quantizer explicit (onnxruntime runs it as QLinearConv / QGemm).\n\n"
                  "Quantization scheme (torch's eager-mode QAT): activations uint8 per-tensor\n"
                  "affine, integers [%d, %d], scale and zero point from moving-average min/max\n"
                  "observers (%d quantizers: `QuantizeLinear` -> `DequantizeLinear`); weights\n"
                  "int8 per-output-channel symmetric, integers [%d, %d], zero point 0 (%d\n"
                  "layers, BatchNorm folded into the int8 weights, biases int32 at input scale\n"
                  "x weight scale).\n\n"
                  "`training/model.pth` is the training checkpoint (`state_dict`, `recipe`,\n"
                  "`arch_key`, `epoch`): the float weights under torchvision names and the\n"
                  "quantizer state under torch's eager QAT names (`<conv>.bn.*`,\n"
                  "`*.weight_fake_quant.*`, `*.activation_post_process.*`); a torch QAT\n"
                  "module prepared with `prepare_qat` loads it strictly, and icsparse\n"
                  "(`--init-from`, `icsparse-consolidate --from-pth`) rebuilds the QAT model\n"
                  "from it. There is no `training/model.pt`: TorchScript export is fp32 only\n"
                  "(int8 TorchScript is not implemented)%s.\n",
                  PACKAGE_VERSION, info->kind, mo->in_channels, mo->in_h, mo->in_w,
                  mo->num_classes, act.quant_min, act.quant_max, quantizers, w_qmin, w_qmax,
                  layers,
                  recipe ? "; `recipe/recipe_original.md` is the recipe that produced it" : "");
    } else {
        tb_printf(&t,
                  "Exported by icsparse %s from a checkpoint of kind '%s'. `model.onnx` and\n"
                  "`deployment/model.onnx` take `input` [batch, %d, %d, %d] (NCHW float32,\n"
                  "normalized as in training) and give `output` [batch, %d] logits;\n"
                  "`training/model.pth` is the torchvision state_dict and `training/model.pt`\n"
                  "the TorchScript module (torch.jit.load)%s.\n",
                  PACKAGE_VERSION, info->kind, mo->in_channels, mo->in_h, mo->in_w,
                  mo->num_classes,
                  recipe ? "; `recipe/recipe_original.md` is the recipe that produced it" : "");
    }
    if (opts->num_samples > 0)
        tb_printf(&t,
                  "\n`sample_inputs/inp-NNNN.npz` (key `input`, [1, %d, %d, %d]) and\n"
                  "`sample_outputs/out-NNNN.npz` (key `output`, the logits%s) are %s%s.\n",
                  mo->in_channels, mo->in_h, mo->in_w,
                  qat ? " of icsparse's fake-quantized forward" : "",
                  opts->sample_dataset ? "rows of the dataset's split" : "random normal inputs",
                  opts->sample_dataset ? "; `sample_labels/lab-NNNN.npz` (key `label`) their labels"
                                       : "");
    tb_printf(&t, "\n## Sparsity per layer\n\n| weight | elements | zeros | sparsity |\n"
                  "|---|---|---|---|\n");
    for (int i = 0; i < ics_model_num_tensors(model); i++) {
        const ics_tensor_info *ti = ics_model_tensor(model, i);
        if (!ti->prunable) continue;
        const float *w = ics_model_tensor_data(model, i);
        int64_t zeros = 0;
        for (int64_t j = 0; j < ti->numel; j++)
            zeros += w[j] == 0.0f;
        tb_printf(&t, "| `%s` | %lld | %lld | %.4f |\n", ti->name, (long long)ti->numel,
                  (long long)zeros, ti->numel ? (double)zeros / (double)ti->numel : 0.0);
    }
    ics_status st = t.st ? t.st : ics_export_write_atomic(card, t.s, t.len, err);
    free(t.s);
    return st;
}

/* Promise (export.h): DIR/{model.md, model.onnx, deployment/, training/
 * model.pth, recipe/recipe_original.md when a recipe is given}; refused
 * when DIR/model.onnx or DIR/model.md exists and opts->force is unset. */
ics_status ics_export_sparsezoo_dir(ics_model *model, const ics_checkpoint_info *info,
                                    const char *recipe, const ics_export_options *opts,
                                    const char *dir, ics_error *err)
{
    char onnx[4200], card[4200], training[4200], pth[4200], pt[4200], recipe_dir[4200],
        recipe_path[4200];
    if (strlen(dir) > 4000) return ICS_FAIL(err, ICS_ERR_INVALID, "path too long: %s", dir);
    snprintf(onnx, sizeof onnx, "%s/model.onnx", dir);
    snprintf(card, sizeof card, "%s/model.md", dir);
    snprintf(training, sizeof training, "%s/training", dir);
    snprintf(pth, sizeof pth, "%s/training/model.pth", dir);
    snprintf(pt, sizeof pt, "%s/training/model.pt", dir);
    snprintf(recipe_dir, sizeof recipe_dir, "%s/recipe", dir);
    snprintf(recipe_path, sizeof recipe_path, "%s/recipe/recipe_original.md", dir);
    ics_status st = ics_export_check_target(onnx, opts->force, err);
    if (st == ICS_OK) st = ics_export_check_target(card, opts->force, err);
    if (st == ICS_OK) st = ics_export_mkdirs(training, err);
    int qat = ics_model_qat_active(model);
    /* a QAT model: the training checkpoint with its recipe and quantizers
     * (first: with observers on, the int8 export refreshes the weight
     * scales from the weights, as a forward would), and no TorchScript
     * (int8 TorchScript is not implemented) */
    if (st == ICS_OK && qat)
        st = ics_export_pth_qat(model, recipe, info->epoch, pth, opts->force, err);
    else if (st == ICS_OK)
        st = ics_export_pth(model, pth, opts->force, err);
    if (st == ICS_OK) st = ics_export_onnx(model, opts, onnx, err);
    if (st == ICS_OK) st = ics_export_deployment_dir(model, opts, dir, err);
    if (st == ICS_OK && !qat) st = ics_export_torchscript(model, pt, opts->force, err);
    /* a replaced fp32 directory's TorchScript would not be this model */
    if (st == ICS_OK && qat && opts->force && ics_export_exists(pt) && unlink(pt) != 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "cannot remove %s: %s", pt, strerror(errno));
    if (st == ICS_OK && recipe) {
        st = ics_export_mkdirs(recipe_dir, err);
        if (st == ICS_OK) st = ics_export_write_atomic(recipe_path, recipe, strlen(recipe), err);
    }
    if (st == ICS_OK) st = write_samples(model, opts, dir, err);
    if (st != ICS_OK) return st;

    /* The card last: its presence says the directory is complete. */
    return write_card(model, info, recipe, opts, card, err);
}
