/*
 * src/export/export_onnx_internal.h: what the fp32 ONNX writer
 * (export_onnx.c) and the int8 QDQ writer of QAT models
 * (export_onnx_qdq.c) share: the message builder (one arena owning every
 * protobuf-c message), the per-node walk state, and the emitters of each.
 *
 * The walk visits the icsparse graph in order; every node whose ws->alias
 * is itself emits ONNX nodes that read the values of its inputs
 * (ws->value[ws->alias[input]]) and produce ws->value[i].
 */
#ifndef ICS_EXPORT_ONNX_INTERNAL_H
#define ICS_EXPORT_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <icsparse/export.h>
#include <icsparse/model.h>
#include <icsparse/status.h>

#include "export/onnx.pb-c.h"

typedef struct onnx_arena {
    void **blocks;
    size_t len, cap;
} onnx_arena;

typedef struct onnx_builder {
    onnx_arena arena;
    ics_model *model;
    const ics_export_options *opts;
    ics_error *err;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    int have_clip_bounds; /* the shared ReLU6 bounds initializers exist */
} onnx_builder;

/* Per icsparse node: which node's ONNX value carries its output (dropout
 * and a folded BatchNorm pass their input's value through), the value's
 * name, whether its spatial size is independent of the input size, and
 * (QAT models) the fake-quant node whose uint8 grid the value lies on. */
typedef struct walk_state {
    int *alias;
    int *fold_into; /* conv node index: its BN folded into it (or -1) */
    int *fixed_size;
    int *qsource; /* QAT: fake-quant node of the value, -1 when not quantized */
    char (*value)[ICS_NAME_MAX + 16];
} walk_state;

/* The tensors of one conv, linear or batchnorm node, by role. */
typedef struct node_tensors {
    int weight, bias;           /* conv, linear; -1 when absent */
    int gamma, beta, mean, var; /* batchnorm */
} node_tensors;

/* Zeroed memory owned by the builder's arena; NULL with b->err set. */
void *ics_onnx_alloc(onnx_builder *b, size_t bytes);

Onnx__AttributeProto *ics_onnx_attr_int(onnx_builder *b, const char *name, int64_t v);
Onnx__AttributeProto *ics_onnx_attr_float(onnx_builder *b, const char *name, float v);
Onnx__AttributeProto *ics_onnx_attr_ints(onnx_builder *b, const char *name, const int64_t *v,
                                         size_t n);

/* Appends a node with one output; a NULL attribute (a failed allocation)
 * refuses it with the error already set. */
ics_status ics_onnx_add_node(onnx_builder *b, const char *op_type, const char *name,
                             const char *const *inputs, size_t n_inputs, const char *output,
                             Onnx__AttributeProto **attrs, size_t n_attrs);

/* An initializer of ONNX type data_type (FLOAT, INT32, INT8 or UINT8 of
 * Onnx__TensorProto__DataType) from host values, stored as little-endian
 * raw_data; ndim 0 is a scalar (no dims). */
ics_status ics_onnx_add_init(onnx_builder *b, const char *name, int data_type, int ndim,
                             const int64_t *dims, const void *data);

node_tensors ics_onnx_find_tensors(ics_model *model, const ics_node *n);

/* torch's Conv2d (node n) as an ONNX Conv reading values in, weight and
 * bias (NULL: none), producing out. */
ics_status ics_onnx_add_conv(onnx_builder *b, const ics_node *n, const char *name, const char *in,
                             const char *weight, const char *bias, const char *out);

/* The fp32 ONNX node(s) of icsparse node i (export_onnx.c). */
ics_status ics_onnx_emit_fp32(onnx_builder *b, walk_state *ws, int i);

/* ---- int8 QDQ (export_onnx_qdq.c) ----------------------------------------- */

/* Refuses export options and QAT settings the QDQ graph cannot express
 * (BN kept, wider than 8-bit quantizers), naming the option or node. */
ics_status ics_onnx_qdq_check(ics_model *model, const ics_export_options *opts, ics_error *err);

/* Node and initializer capacity the QDQ graph of the model may need. */
void ics_onnx_qdq_capacity(ics_model *model, size_t *nodes, size_t *inits);

/* 1 when the QDQ walk keeps the BatchNorm after conv node `conv` as a
 * BatchNormalization (a quantized conv whose QAT group does not fold BN). */
int ics_onnx_qdq_keeps_bn(ics_model *model, int conv);

/* The ONNX node(s) of node i of a QAT model: QuantizeLinear ->
 * DequantizeLinear for a fake-quant node, int8 weight + int32 bias
 * DequantizeLinear feeding Conv / Gemm for a quantized conv or linear,
 * a re-quantization after max pool and flatten of quantized values, the
 * fp32 form for everything else. */
ics_status ics_onnx_qdq_emit(onnx_builder *b, walk_state *ws, int i);

#endif
