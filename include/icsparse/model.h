/*
 * icsparse/model.h: the model API.
 *
 * A model is a graph of nodes in topological order (node 0 is the input).
 * Each node is one torch module (or one functional op such as the residual
 * add) with its attributes, its input node indices and its per-sample output
 * shape (NHWC). Export code (ONNX, TorchScript), the recipe code (pruning by
 * parameter name, QAT observers after a node, conv-BN fusion) and the
 * trainer walk this graph through the accessors below; it is read-only
 * outside src/models.
 *
 * Tensors (parameters and buffers) are listed in ONE table in exactly the
 * order and with exactly the names and shapes of torchvision's state_dict
 * ("layer1.0.conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked").
 * All float parameters live in one slab, their gradients in a second slab
 * at the same offsets, the float buffers (BN running statistics) in a third,
 * and the int64 counters (num_batches_tracked) in a fourth.
 *
 * Memory for activations is planned once per (batch size, training or
 * inference) by ics_model_plan: one arena, offsets from a lifetime planner.
 * ics_model_forward and ics_model_backward allocate nothing.
 * Design notes: docs/DESIGN-MODEL.md.
 */
#ifndef ICSPARSE_MODEL_H
#define ICSPARSE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <icsparse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the graph ---------------------------------------------------------- */

typedef enum ics_op_kind {
    ICS_OP_INPUT = 0,         /* the model input; no parameters */
    ICS_OP_CONV2D,            /* torch.nn.Conv2d */
    ICS_OP_BATCHNORM2D,       /* torch.nn.BatchNorm2d (affine, track_running_stats) */
    ICS_OP_RELU,              /* torch.nn.ReLU */
    ICS_OP_RELU6,             /* torch.nn.ReLU6 */
    ICS_OP_MAXPOOL2D,         /* torch.nn.MaxPool2d */
    ICS_OP_AVGPOOL2D,         /* torch.nn.AvgPool2d */
    ICS_OP_ADAPTIVE_AVGPOOL2D,/* torch.nn.AdaptiveAvgPool2d((out_h, out_w)) */
    ICS_OP_ADD,               /* residual add of two nodes (functional) */
    ICS_OP_FLATTEN,           /* torch.flatten(x, 1) in PyTorch's (c, h, w) order */
    ICS_OP_DROPOUT,           /* torch.nn.Dropout(p) */
    ICS_OP_LINEAR,            /* torch.nn.Linear */
    ICS_OP_FAKE_QUANT,        /* activation fake quantization (QAT; inserted by
                               * ics_model_qat_prepare, named
                               * "<module>.activation_post_process") */
    ICS_OP_COUNT
} ics_op_kind;

#define ICS_NAME_MAX 96

/* One node. Shapes are per sample, NHWC (out_h, out_w, out_c); a flat
 * vector has out_h = out_w = 1. */
typedef struct ics_node {
    ics_op_kind kind;
    char name[ICS_NAME_MAX]; /* torch module path ("layer1.0.conv1"); "" for functional ops */
    int num_inputs;          /* 0 (input), 1, or 2 (add) */
    int inputs[2];           /* indices of earlier nodes */
    int out_h, out_w, out_c;
    /* attributes (those that do not apply are 0) */
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int groups;    /* conv */
    int has_bias;  /* conv, linear */
    int ceil_mode; /* pools */
    int count_include_pad; /* avg pool */
    float eps, momentum;   /* batchnorm: torch defaults 1e-5, 0.1 */
    float dropout_p;       /* dropout */
    /* this node's entries in the tensor table: [first_tensor, first_tensor + num_tensors) */
    int first_tensor, num_tensors;
    /* quantization-aware training (all 0 / -1 until ics_model_qat_prepare):
     * conv and linear: quant_index >= 0 when the weight is fake-quantized
     * (index of its per-channel scales); conv: fold_bn = 1 when the BN node
     * right after it is folded into the quantized weight.
     * fake-quant node: quant_index = its activation quantizer. */
    int quant_index;
    int fold_bn;
} ics_node;

/* Short name of an op kind ("conv2d", "batchnorm2d", ...). */
const char *ics_op_kind_name(ics_op_kind kind);

/* ---- the tensor table --------------------------------------------------- */

typedef enum ics_tensor_kind {
    ICS_TENSOR_WEIGHT = 0, /* conv or linear weight */
    ICS_TENSOR_BIAS,       /* conv or linear bias */
    ICS_TENSOR_BN_WEIGHT,  /* batchnorm gamma */
    ICS_TENSOR_BN_BIAS,    /* batchnorm beta */
    ICS_TENSOR_BUFFER,     /* running_mean / running_var (float32, not trained) */
    ICS_TENSOR_COUNTER     /* num_batches_tracked (int64 scalar, shape []) */
} ics_tensor_kind;

typedef struct ics_tensor_info {
    char name[ICS_NAME_MAX + 32]; /* state_dict key */
    ics_tensor_kind kind;
    int ndim;                     /* 0 for the counter (a scalar, as in torch) */
    int64_t shape[4];             /* torch layout (conv weight OIHW) */
    int64_t numel;
    size_t offset;                /* elements into its slab (params, buffers or counters) */
    int node;                     /* owning node */
    int weight_decay;             /* default: 1 for conv/linear weights, 0 for bias and BN
                                   * (the "no decay on BN and bias" convention) */
    int prunable;                 /* 1 for conv and linear weights */
} ics_tensor_info;

/* ---- creation ----------------------------------------------------------- */

typedef struct ics_model_options {
    int num_classes;  /* default 1000 (0 = default) */
    int in_channels;  /* default 3 (0 = default) */
    int in_h, in_w;   /* input size; default 224x224 (0 = default) */
    float width_mult; /* mobilenet_v2 only; default 1.0 (0 = default) */
    int cifar_stem;   /* resnets: conv1 3x3 stride 1 padding 1 and no max pool */
    float dropout;    /* classifier dropout p; < 0 = the architecture's default
                       * (mobilenet_v2 0.2, vgg 0.5, none for resnet and
                       * simple_cnn); 0 = none. ics_model_options_default
                       * sets -1: start from it rather than from zeros. */
} ics_model_options;

/* The defaults above (num_classes 1000, 3 channels, 224x224, width 1.0,
 * arch dropout). */
void ics_model_options_default(ics_model_options *opts);

typedef struct ics_model ics_model;

/* Builds the graph and tensor table of architecture `arch` (resnet18,
 * resnet34, resnet50, resnet101, mobilenet_v2, vgg11_bn, vgg16_bn,
 * simple_cnn) and allocates the parameter, gradient and buffer slabs
 * (zeroed; call ics_model_init_params). BN running_var starts at 1 as in
 * torch. opts may be NULL (defaults). Errors: unknown arch, options out of
 * range, an input too small for the architecture, out of memory. */
ics_status ics_model_create(const char *arch, const ics_model_options *opts, ics_model **out,
                            ics_error *err);
void ics_model_destroy(ics_model *model);

/* The list of arch keys, NULL-terminated. */
const char *const *ics_model_arch_names(void);

const char *ics_model_arch(const ics_model *model);
const ics_model_options *ics_model_get_options(const ics_model *model);

/* Initializes parameters as torchvision does, reproducibly from seed:
 * conv weights kaiming_normal(fan_out, relu), conv biases 0, BN gamma 1 and
 * beta 0, linear layers per architecture (torch's default uniform bound
 * 1/sqrt(fan_in) for resnet and simple_cnn, normal(0, 0.01) with zero bias
 * for mobilenet_v2 and vgg). Also resets running stats (mean 0, var 1) and
 * num_batches_tracked (0). */
void ics_model_init_params(ics_model *model, uint64_t seed);

/* ---- graph and tensor access -------------------------------------------- */

int ics_model_num_nodes(const ics_model *model);
const ics_node *ics_model_node(const ics_model *model, int index);
/* Index of the node named `name`, or -1. */
int ics_model_find_node(const ics_model *model, const char *name);

int ics_model_num_tensors(const ics_model *model);
const ics_tensor_info *ics_model_tensor(const ics_model *model, int index);
/* Index of the tensor with this state_dict key, or -1. */
int ics_model_find_tensor(const ics_model *model, const char *name);
/* Float data of a tensor (params or buffers slab); NULL for the counter. */
float *ics_model_tensor_data(ics_model *model, int index);
/* Gradient of a parameter; NULL for buffers and counters. */
float *ics_model_tensor_grad(ics_model *model, int index);
/* The num_batches_tracked counter; NULL for other tensors. */
int64_t *ics_model_tensor_counter(ics_model *model, int index);

/* Fraction of exact zeros over the prunable weights (conv and linear
 * weights): the sparsity checkpoints, logs and reports state. */
double ics_model_sparsity(ics_model *model);

/* The slabs themselves (count = number of elements). */
float *ics_model_params(ics_model *model, size_t *count);
float *ics_model_grads(ics_model *model, size_t *count);
float *ics_model_buffers(ics_model *model, size_t *count);
int64_t *ics_model_counters(ics_model *model, size_t *count);

/* ---- execution ---------------------------------------------------------- */

/* Plans the activation arena and the workspace for up to max_batch samples,
 * with backward (training = 1) or forward only (training = 0), on the CPU
 * op table; replaces an earlier plan. Sets the mode (ics_model_set_training)
 * to `training`. Errors: batch < 1, out of memory.
 * Evaluation-mode forwards (in either kind of plan) fuse conv -> BN [->
 * ReLU/ReLU6], conv -> ReLU/ReLU6 and linear -> ReLU/ReLU6 chains into
 * one kernel call each, the BN (with its current running statistics) and
 * the activation applied where the kernel writes its output; the logits
 * are those of the unfused ops (bit for bit unless a 1x1 convolution's
 * GEMM is split differently: then to float32 rounding). Not for QAT
 * models. Setting the environment variable ICSPARSE_NO_FUSION=1 before
 * planning plans without fusion (docs/DESIGN-ENGINE.md). */
ics_status ics_model_plan(ics_model *model, int max_batch, int training, ics_error *err);

/* Bytes of the planned arena (activations, gradients, saved tensors) and of
 * the conv workspace; 0 before planning. */
size_t ics_model_arena_bytes(const ics_model *model);
size_t ics_model_workspace_bytes(const ics_model *model);

/* Training mode (BN uses batch statistics and updates running stats,
 * dropout is active) or evaluation mode (BN uses running statistics,
 * dropout is the identity), as torch's module.train()/eval(). */
void ics_model_set_training(ics_model *model, int training);
int ics_model_is_training(const ics_model *model);

/* Seeds the dropout masks (reproducible per seed, rank and step). */
void ics_model_set_dropout_seed(ics_model *model, uint64_t seed, int rank);

/* Runs the forward pass on batch <= max_batch samples x (NHWC float32,
 * batch x in_h x in_w x in_channels). *logits points into the arena
 * (batch x num_classes) and stays valid until the next forward. */
ics_status ics_model_forward(ics_model *model, const float *x, int batch, const float **logits,
                             ics_error *err);

/* Back-propagates dlogits (batch x num_classes, the batch of the last
 * forward) and ACCUMULATES parameter gradients into the gradient slab.
 * Needs a training plan, training mode, and a forward since the last
 * backward. */
ics_status ics_model_backward(ics_model *model, const float *dlogits, ics_error *err);

/* Called by ics_model_backward after the backward of each node that owns
 * tensors, once that node's parameter gradients are final (data-parallel
 * reduction starts there while earlier layers still run). An error stops
 * the backward. NULL removes the hook. */
typedef ics_status (*ics_backward_hook)(void *ctx, int node, ics_error *err);
void ics_model_set_backward_hook(ics_model *model, ics_backward_hook hook, void *ctx);

/* Synchronized BatchNorm: when set, BN layers in training mode compute
 * their batch statistics (and the backward's sums) over every rank's rows:
 * they call reduce to sum `count` doubles across ranks, in place. NULL
 * (the default) keeps statistics local, PyTorch's default under DDP. */
typedef ics_status (*ics_sum_reducer)(void *ctx, double *values, int count, ics_error *err);
void ics_model_set_bn_reducer(ics_model *model, ics_sum_reducer reduce, void *ctx);

/* Zeroes the gradient slab. */
void ics_model_zero_grad(ics_model *model);

/* Where a node's output lives in the arena (NHWC, batch rows), for tests
 * and debugging; NULL before planning. The bytes hold the last forward's
 * values only while the plan keeps them alive (in a training plan, every
 * output backward reads), and a node whose sole reader is a ReLU shares
 * its buffer with it (in-place ReLU), so it shows the ReLU's output.
 * Fused groups (ics_model_plan): an evaluation forward writes only the
 * group's last output. In an inference plan every node of a group shares
 * that buffer, so the conv and its BN show the group's final values; a
 * training plan keeps separate buffers, and those an evaluation forward
 * does not write (the conv's, usually) hold what the last training forward
 * left there. */
const float *ics_model_node_output(const ics_model *model, int node);

/* The keep mask (1 keep, 0 drop) drawn by dropout node `node` in the last
 * training forward, batch * numel bytes; NULL otherwise. Valid between that
 * forward and the following backward (the plan reuses the bytes after). */
const uint8_t *ics_model_dropout_mask(const ics_model *model, int node);

#ifdef __cplusplus
}
#endif
#endif
