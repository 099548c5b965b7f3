/*
 * icsparse/export.h: exports of a model for deployment and for PyTorch.
 *
 * ONNX (fp32): the model graph walked node by node into an NCHW ONNX graph
 * the way torch.onnx.export writes a torchvision model: one input "input"
 * [N, C, H, W] float, one output "output" [N, classes], weights as
 * initializers named exactly as the checkpoint's state_dict keys
 * ("layer1.0.conv1.weight"), BatchNorm kept or folded into the preceding
 * convolution, dropout omitted (inference). The batch axis is static or the
 * symbolic "batch"; height and width are static or "height"/"width" when
 * the model allows any input size (adaptive pooling to 1x1 before the
 * classifier). Opsets 13..17 (ir_version 7 for 13/14, 8 for 15..17).
 *
 * ONNX int8 QDQ: a model with fake quantization (QAT, icsparse/qat.h) is
 * written with its quantizers explicit, the form onnxruntime runs as
 * QLinearConv / QGemm: QuantizeLinear -> DequantizeLinear for every
 * fake-quant node (uint8, per tensor), and for every quantized conv or
 * linear its BN-folded weight as an int8 initializer ("<key>_quantized",
 * per-channel scales, zero points 0) and its bias as int32 at input scale
 * x weight scale, each through DequantizeLinear (axis 0). fold_bn must be
 * set. docs/EXPORT.md has the layout.
 *
 * .pth: the state_dict as torch.save writes it (an OrderedDict of tensors,
 * num_batches_tracked int64), loadable with torch.load(weights_only=True)
 * and load_state_dict(strict=True) into the torchvision module; a QAT
 * model as a SparseML training checkpoint whose state_dict fits torch's
 * eager-mode QAT module (prepare_qat) strictly.
 *
 * TorchScript: the archive torch.jit.save writes (data.pkl with the module
 * tree, code/__torch__/icsparse.py, constants.pkl, data/<k>, version), a
 * module whose submodules follow the state_dict keys and whose forward
 * is straight-line TorchScript over the graph (NCHW input, logits out);
 * torch.jit.load runs it without icsparse. docs/EXPORT.md has the layout.
 *
 * Deployment directory (SparseML's layout): DIR/deployment/model.onnx and
 * DIR/deployment/config.json.
 *
 * Every file is written to a temporary name in its directory and renamed,
 * so a failure never leaves a half-written file under the final name; an
 * existing file is replaced only with `force`.
 */
#ifndef ICSPARSE_EXPORT_H
#define ICSPARSE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include <icsparse/model.h>
#include <icsparse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ics_export_format {
    ICS_EXPORT_ONNX = 0,
    ICS_EXPORT_PTH,
    ICS_EXPORT_TORCHSCRIPT /* model.pt for torch.jit.load (fp32; QAT refused) */
} ics_export_format;

#define ICS_EXPORT_OPSET_MIN 13
#define ICS_EXPORT_OPSET_MAX 17

typedef struct ics_export_options {
    int opset;         /* ONNX opset, 13..17 */
    int batch_size;    /* static batch size; 0 = dynamic axis "batch" */
    int dynamic_shape; /* symbolic "height"/"width" instead of the model's input size */
    int fold_bn;       /* fold each BatchNorm into the convolution before it */
    int force;         /* replace existing output files */
    /* SparseZoo directory samples (sample_inputs/, sample_outputs/,
     * sample_labels/ as .npz): */
    int num_samples;            /* samples written; 0 = none */
    const char *sample_dataset; /* icsparse HDF5 dataset to take them from
                                 * (normalized as in evaluation); NULL:
                                 * standard-normal random inputs, no labels */
    const char *sample_split;   /* the dataset's split; NULL: "val" */
    uint64_t sample_seed;       /* seed of the random inputs */
} ics_export_options;

/* Opset 13, dynamic batch, static shape, BN folded, no force; SparseZoo
 * samples: 4 random inputs from seed 0. */
void ics_export_options_default(ics_export_options *opts);

/* Parses "onnx", "pth" or "torchscript". Error: any other name. */
ics_status ics_export_format_parse(const char *name, ics_export_format *out, ics_error *err);

/* Serializes the model as an ONNX ModelProto into a malloc'd buffer
 * (*bytes, *len; the caller frees). Errors: opset out of range, a node
 * that has no ONNX form (named), --dynamic-shape on a model whose
 * classifier needs a fixed input size; for a QAT model fold_bn unset,
 * quantizers wider than 8 bits, a bias beyond int32 (named); out of
 * memory. */
ics_status ics_export_onnx_bytes(ics_model *model, const ics_export_options *opts, uint8_t **bytes,
                                 size_t *len, ics_error *err);

/* Writes the ONNX model to path (temporary file + rename). */
ics_status ics_export_onnx(ics_model *model, const ics_export_options *opts, const char *path,
                           ics_error *err);

/* Writes the model's state_dict to path as a PyTorch .pth (temporary file
 * + rename); refuses an existing path unless force. A QAT model is written
 * as ics_export_pth_qat does, without a recipe and with epoch -1. */
ics_status ics_export_pth(ics_model *model, const char *path, int force, ics_error *err);

/* Writes a QAT model to path as a SparseML training checkpoint,
 * {"state_dict", "recipe" (when not NULL), "arch_key", "epoch"}, whose
 * state_dict is torch's eager-mode QAT module's (prepare_qat after
 * fuse_modules_qat, the input's QuantStub "quant" at the top level): the
 * float weights under torchvision names, a BN folded into a quantized conv
 * as "<conv>.bn.*", every weight quantizer as "<module>.weight_fake_quant.*"
 * and every activation quantizer as "quant.activation_post_process.*" /
 * "<module>.activation_post_process.*" (docs/EXPORT.md lists the keys).
 * icsparse's .pth import rebuilds the same model from it (the recipe at
 * `epoch` gives the QAT structure). Errors: not a QAT model, an existing
 * path without force, out of memory, I/O. */
ics_status ics_export_pth_qat(ics_model *model, const char *recipe, double epoch, const char *path,
                              int force, ics_error *err);

/* Writes the model to path as a TorchScript archive (temporary file +
 * rename) that torch.jit.load opens: parameters and buffers under their
 * state_dict keys, forward(input NCHW float) -> logits, eval mode as
 * saved. Refuses an existing path unless force, and a graph node without
 * a TorchScript form (named). */
ics_status ics_export_torchscript(ics_model *model, const char *path, int force, ics_error *err);

/* Writes DIR/deployment/model.onnx and DIR/deployment/config.json (the
 * arch, classes, input shape and export settings); refuses an existing
 * DIR/deployment unless opts->force. */
ics_status ics_export_deployment_dir(ics_model *model, const ics_export_options *opts,
                                     const char *dir, ics_error *err);

struct ics_checkpoint_info;

/* Writes a SparseZoo-style model directory DIR: model.md (YAML front
 * matter: arch, classes, input shape, sparsity, metrics), model.onnx,
 * deployment/{model.onnx,config.json}, training/model.pth,
 * training/model.pt (TorchScript), recipe/recipe_original.md when recipe
 * is not NULL, and opts->num_samples samples: sample_inputs/inp-NNNN.npz
 * ("input" [1, C, H, W] float32), sample_outputs/out-NNNN.npz ("output"
 * [1, classes], the model's logits) and, from a dataset,
 * sample_labels/lab-NNNN.npz ("label" [1] int64). The model itself is not
 * touched (the outputs come from a copy). Refuses an existing
 * DIR/model.onnx or DIR/model.md unless opts->force. */
ics_status ics_export_sparsezoo_dir(ics_model *model, const struct ics_checkpoint_info *info,
                                    const char *recipe, const ics_export_options *opts,
                                    const char *dir, ics_error *err);

/* The whole export of a checkpoint file: opens it, builds its model and
 * writes `format` into output_dir (model.onnx, model.pth or model.pt, created with
 * its parents if missing), the deployment directory into deployment_dir
 * and the SparseZoo directory into sparsezoo_dir when not NULL. A checkpoint with fake quantization
 * (QAT) is built with its recipe's QAT structure and quantizer state
 * (ics_checkpoint_load_model) and exported as int8 QDQ ONNX, its .pth
 * as ics_export_pth_qat with the checkpoint's recipe and epoch (and so the
 * SparseZoo directory's training/model.pth); TorchScript of it is refused
 * (ICS_ERR_NOT_IMPLEMENTED). The path written is copied into written (may
 * be NULL). */
ics_status ics_export_checkpoint(const char *checkpoint, ics_export_format format,
                                 const ics_export_options *opts, const char *output_dir,
                                 const char *deployment_dir, const char *sparsezoo_dir,
                                 char *written, size_t written_size, ics_error *err);

#ifdef __cplusplus
}
#endif
#endif
