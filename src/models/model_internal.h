/*
 * src/models/model_internal.h: the model object behind icsparse/model.h and
 * the small builder the architecture files use to describe their graphs.
 */
#ifndef ICS_MODELS_MODEL_INTERNAL_H
#define ICS_MODELS_MODEL_INTERNAL_H

#include <icsparse/model.h>
#include <icsparse/qat.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "nn/layer.h"

/* How an architecture initializes its linear layers (torchvision differs
 * between families). */
typedef enum ics_linear_init {
    ICS_LINEAR_INIT_TORCH_DEFAULT = 0, /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b */
    ICS_LINEAR_INIT_NORMAL_001         /* W ~ N(0, 0.01), b = 0 */
} ics_linear_init;

/* Where each node's tensors live in the arena for one plan (byte offsets;
 * SIZE_MAX = none). */
typedef struct ics_node_plan {
    size_t out;        /* output activation */
    size_t grad;       /* gradient of the output (training plans) */
    size_t saved;      /* saved tensors (BN stats, argmax, dropout mask) */
    int input_grad_first[2]; /* 1: this node's backward is the first to write
                              * input k's gradient (overwrite), 0: accumulate */
    /* Inference fusion (src/nn/fused.c): a group's head (conv or linear)
     * has fused_last = the group's last node, its members (BN, ReLU,
     * ReLU6) fused_head = the head; -1 elsewhere. Evaluation-mode forwards
     * run the head with ics_nn_fused_forward into the last node's output
     * and skip the members. */
    int fused_last, fused_head;
} ics_node_plan;

typedef struct ics_plan {
    int planned;
    int max_batch;
    int training;
    unsigned char *arena;
    size_t arena_bytes;
    void *workspace;
    size_t workspace_bytes;
    size_t scratch;         /* arena offset of the fan-out gradient scratch */
    ics_node_plan *nodes;
    int fused_groups;       /* number of fused groups (0: fusion off) */
} ics_plan;

/* Quantization-aware training state (qat.c). The state floats:
 * [0] observers on, [1] BN frozen, then 5 per activation quantizer
 * (ICS_AQ_*), then the weight scales of each quantized conv / linear. */
enum { ICS_QAT_OBSERVERS = 0, ICS_QAT_BN_FROZEN = 1, ICS_QAT_HEADER = 2 };
typedef struct ics_qat {
    int active;
    ics_qat_ctx ctx;      /* ranges, averaging and scratch handed to layers */
    int num_act;          /* activation quantizers */
    int num_weight;       /* quantized weights */
    size_t *weight_offset; /* per weight quantizer: offset into state */
    int *weight_channels;
    float *state;
    size_t state_count;
} ics_qat;

struct ics_model {
    char arch[32];
    ics_model_options opts;
    ics_linear_init linear_init;

    ics_node *nodes;
    int num_nodes, cap_nodes;
    ics_tensor_info *tensors;
    int num_tensors, cap_tensors;

    size_t num_params, num_buffers, num_counters; /* slab element counts */
    float *params, *grads, *buffers;
    int64_t *counters;

    const ics_backend_ops *ops;
    ics_plan plan;
    int training;
    int last_batch;      /* batch of the last forward; 0 = none pending */
    ics_rng dropout_rng;
    uint64_t dropout_seed;
    int dropout_rank;
    uint64_t dropout_step;
    int build_failed;    /* a builder call failed; err holds why */
    ics_backward_hook backward_hook; /* called after each node with tensors */
    void *backward_hook_ctx;
    ics_sum_reducer bn_reduce; /* synchronized BN (NULL: local statistics) */
    void *bn_reduce_ctx;
    ics_status bn_reduce_status; /* the first reduction failure of a pass */
    ics_error bn_reduce_error;
    ics_qat qat;
};

/* Frees the QAT state (model destruction). */
void ics_qat_free(ics_qat *q);

/* ---- builder: append nodes (computing shapes) and their tensors --------
 * Each returns the new node index, or -1 after recording an error in err
 * (an allocation failure or an input too small for the layer). The module
 * name is the torch module path; tensors are named name.weight etc. */
int ics_build_input(ics_model *m, ics_error *err);
int ics_build_conv(ics_model *m, int in, const char *name, int out_c, int kernel, int stride,
                   int pad, int groups, int bias, ics_error *err);
int ics_build_bn(ics_model *m, int in, const char *name, ics_error *err);
int ics_build_act(ics_model *m, int in, ics_op_kind kind, const char *name, ics_error *err);
int ics_build_maxpool(ics_model *m, int in, const char *name, int kernel, int stride, int pad,
                      ics_error *err);
int ics_build_adaptive_avgpool(ics_model *m, int in, const char *name, int out_h, int out_w,
                               ics_error *err);
/* The residual add; name ("layer1.0.add") names no torch module: it only
 * names the add's quantizer under QAT and its export node. */
int ics_build_add(ics_model *m, int a, int b, const char *name, ics_error *err);
int ics_build_flatten(ics_model *m, int in, ics_error *err);
int ics_build_dropout(ics_model *m, int in, const char *name, float p, ics_error *err);
int ics_build_linear(ics_model *m, int in, const char *name, int out_features, int bias,
                     ics_error *err);

/* Architecture builders (one file per family). Each appends the whole
 * graph after the input node. */
ics_status ics_build_resnet(ics_model *m, int depth, ics_error *err);
ics_status ics_build_mobilenet_v2(ics_model *m, ics_error *err);
ics_status ics_build_vgg_bn(ics_model *m, int depth, ics_error *err);
ics_status ics_build_simple_cnn(ics_model *m, ics_error *err);
ics_status ics_build_lenet(ics_model *m, ics_error *err);

/* The planner (plan.c). */
ics_status ics_plan_build(ics_model *m, int max_batch, int training, ics_error *err);
void ics_plan_free(ics_plan *plan);

#endif
