/*
 * src/nn/layer.h: the layer contract. One file per layer (conv2d.c,
 * batchnorm2d.c, ...) holds its forward and backward side by side; both
 * call only the op table (src/backend/backend.h). The model (src/models)
 * owns all memory and hands each call an ics_layer_io with every pointer
 * already resolved, so a layer never allocates and never fails.
 */
#ifndef ICS_NN_LAYER_H
#define ICS_NN_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include <icsparse/model.h>

#include "backend/backend.h"
#include "core/rng.h"

/* What quantization-aware training hands the layers (owned by the model). */
typedef struct ics_qat_ctx {
    int observers;             /* observers update (weights: every forward;
                                * activations: training forwards) */
    int32_t act_qmin, act_qmax; /* activation range (uint8: 0..255) */
    int32_t w_qmin, w_qmax;     /* weight range (int8: -128..127) */
    float averaging;           /* activation observers' constant */
    int calibrate;             /* activation observers update in this
                                * evaluation-mode forward (calibration) */
    float *wbuf, *dwbuf, *mbuf; /* scratch: the quantized weight, its gradient,
                                 * the straight-through mask */
    float *fold, *dfold;       /* scratch: BN fold factors and their gradient */
} ics_qat_ctx;

/* An activation quantizer's floats inside the model's QAT state. */
enum { ICS_AQ_SCALE = 0, ICS_AQ_ZERO_POINT, ICS_AQ_MIN, ICS_AQ_MAX, ICS_AQ_INITIALIZED, ICS_AQ_FLOATS };

typedef struct ics_layer_io {
    const ics_backend_ops *ops;
    const ics_node *node;
    const ics_node *in_node[2]; /* the input nodes (for their shapes) */
    int batch;
    int training;        /* BN batch statistics, active dropout */
    const float *x[2];   /* inputs */
    float *y;            /* output */
    const float *dy;     /* gradient of the output (backward) */
    float *dx[2];        /* gradients of the inputs, OVERWRITTEN; NULL: not needed */
    float *param[2];     /* conv/linear: weight, bias (or NULL); BN: gamma, beta */
    float *grad[2];      /* their gradients, ACCUMULATED */
    float *buffer[2];    /* BN: running_mean, running_var */
    int64_t *counter;    /* BN: num_batches_tracked */
    void *saved;         /* BN: mean and invstd (2*C floats); maxpool: argmax
                          * (int32); dropout: keep mask (uint8) */
    void *workspace;     /* conv scratch */
    ics_rng *rng;        /* dropout */
    /* synchronized BN: sums `count` doubles over ranks (NULL: local BN);
     * a failure is recorded in *reduce_status / *reduce_error */
    ics_sum_reducer reduce;
    void *reduce_ctx;
    ics_status *reduce_status;
    ics_error *reduce_error;
    /* QAT: the fake-quant node's ICS_AQ_* floats, or a quantized conv /
     * linear's per-channel weight scales; NULL otherwise */
    float *qstate;
    const ics_qat_ctx *qat;
    /* a conv whose BN is folded: that BN's gamma, gamma gradient, running
     * variance and eps */
    const float *bn_gamma, *bn_var;
    float *bn_gamma_grad;
    float bn_eps;
    int bn_frozen; /* BN: running statistics even in training mode */
    /* Inference fusion (ics_nn_fused_forward): the head conv or linear of a
     * fused group computes the group's output into y, with the group's BN
     * (its gamma, beta and current running statistics; none when
     * bn_gamma is NULL) and final activation as the kernel's epilogue. */
    ics_epilogue fuse;
} ics_layer_io;

/* What the planner must know about a layer kind. */
typedef struct ics_layer_kind {
    void (*forward)(const ics_layer_io *io);
    void (*backward)(const ics_layer_io *io);
    /* Bytes of tensors saved from forward for backward (or used by the
     * forward op even in inference) for `batch` samples. */
    size_t (*saved_bytes)(const ics_node *node, const ics_node *in, int batch, int training);
    int backward_reads_input;  /* conv, BN and linear read x in backward */
    int backward_reads_output; /* ReLU and ReLU6 read y */
    int dx_may_be_null;        /* the op accepts dx == NULL (conv, linear) */
} ics_layer_kind;

/* The table entry for a kind (never NULL for kinds < ICS_OP_COUNT except
 * ICS_OP_INPUT, which has no forward). */
const ics_layer_kind *ics_layer_kind_of(ics_op_kind kind);

/* Per-sample element count of a node's output. */
static inline int64_t ics_node_numel(const ics_node *n)
{
    return (int64_t)n->out_h * n->out_w * n->out_c;
}

/* The conv descriptor of a conv node for `batch` samples. */
void ics_nn_conv2d_desc(const ics_node *node, const ics_node *in, int batch, ics_conv2d_desc *d);

/* The layers (one file each). */
void ics_nn_conv2d_forward(const ics_layer_io *io);
void ics_nn_conv2d_backward(const ics_layer_io *io);
void ics_nn_batchnorm2d_forward(const ics_layer_io *io);
void ics_nn_batchnorm2d_backward(const ics_layer_io *io);
size_t ics_nn_batchnorm2d_saved_bytes(const ics_node *node, const ics_node *in, int batch,
                                      int training);
void ics_nn_relu_forward(const ics_layer_io *io);
void ics_nn_relu_backward(const ics_layer_io *io);
void ics_nn_relu6_forward(const ics_layer_io *io);
void ics_nn_relu6_backward(const ics_layer_io *io);
void ics_nn_maxpool2d_forward(const ics_layer_io *io);
void ics_nn_maxpool2d_backward(const ics_layer_io *io);
size_t ics_nn_maxpool2d_saved_bytes(const ics_node *node, const ics_node *in, int batch,
                                    int training);
void ics_nn_avgpool2d_forward(const ics_layer_io *io);
void ics_nn_avgpool2d_backward(const ics_layer_io *io);
void ics_nn_adaptive_avgpool2d_forward(const ics_layer_io *io);
void ics_nn_adaptive_avgpool2d_backward(const ics_layer_io *io);
void ics_nn_add_forward(const ics_layer_io *io);
void ics_nn_add_backward(const ics_layer_io *io);
void ics_nn_flatten_forward(const ics_layer_io *io);
void ics_nn_flatten_backward(const ics_layer_io *io);
void ics_nn_dropout_forward(const ics_layer_io *io);
void ics_nn_dropout_backward(const ics_layer_io *io);
size_t ics_nn_dropout_saved_bytes(const ics_node *node, const ics_node *in, int batch,
                                  int training);
void ics_nn_linear_forward(const ics_layer_io *io);
void ics_nn_linear_backward(const ics_layer_io *io);
/* The head of a fused inference group, conv [-> BN] [-> ReLU | ReLU6] or
 * linear -> ReLU | ReLU6 (fused.c): one kernel call with the BN (current
 * running statistics) and the activation as its epilogue. Evaluation mode
 * only. */
void ics_nn_fused_forward(const ics_layer_io *io);
/* QAT variants (fake-quantized weight; conv2d_qat also folds its BN) and
 * the activation fake-quant node. */
void ics_nn_conv2d_qat_forward(const ics_layer_io *io);
void ics_nn_conv2d_qat_backward(const ics_layer_io *io);
void ics_nn_linear_qat_forward(const ics_layer_io *io);
void ics_nn_linear_qat_backward(const ics_layer_io *io);
void ics_nn_fake_quant_forward(const ics_layer_io *io);
void ics_nn_fake_quant_backward(const ics_layer_io *io);
size_t ics_nn_fake_quant_saved_bytes(const ics_node *node, const ics_node *in, int batch, int training);

/* Per-channel symmetric weight fake quantization (fake_quant.c): with
 * observe, scales[c] = max|w_c| / ((qmax - qmin) / 2) first; then
 * wq = fq(w) and, when mask is not NULL, mask = 1 where the gradient
 * passes. rows = out channels, cols = elements per channel. */
void ics_nn_weight_fake_quant(int rows, int64_t cols, const float *w, float *scales, int observe, int32_t qmin,
                              int32_t qmax, float *wq, float *mask);

#endif
