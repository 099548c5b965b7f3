/*
 * src/nn/layers.c: the table from op kind to layer functions and the facts
 * the memory planner needs (what backward reads, what is saved).
 */
#include "nn/layer.h"

static const ics_layer_kind kinds[ICS_OP_COUNT] = {
    [ICS_OP_INPUT] = {NULL, NULL, NULL, 0, 0, 0},
    [ICS_OP_CONV2D] = {ics_nn_conv2d_forward, ics_nn_conv2d_backward, NULL, 1, 0, 1},
    [ICS_OP_BATCHNORM2D] = {ics_nn_batchnorm2d_forward, ics_nn_batchnorm2d_backward,
                            ics_nn_batchnorm2d_saved_bytes, 1, 0, 0},
    [ICS_OP_RELU] = {ics_nn_relu_forward, ics_nn_relu_backward, NULL, 0, 1, 0},
    [ICS_OP_RELU6] = {ics_nn_relu6_forward, ics_nn_relu6_backward, NULL, 0, 1, 0},
    [ICS_OP_MAXPOOL2D] = {ics_nn_maxpool2d_forward, ics_nn_maxpool2d_backward,
                          ics_nn_maxpool2d_saved_bytes, 0, 0, 0},
    [ICS_OP_AVGPOOL2D] = {ics_nn_avgpool2d_forward, ics_nn_avgpool2d_backward, NULL, 0, 0, 0},
    [ICS_OP_ADAPTIVE_AVGPOOL2D] = {ics_nn_adaptive_avgpool2d_forward,
                                   ics_nn_adaptive_avgpool2d_backward, NULL, 0, 0, 0},
    [ICS_OP_ADD] = {ics_nn_add_forward, ics_nn_add_backward, NULL, 0, 0, 1},
    [ICS_OP_FLATTEN] = {ics_nn_flatten_forward, ics_nn_flatten_backward, NULL, 0, 0, 0},
    [ICS_OP_DROPOUT] = {ics_nn_dropout_forward, ics_nn_dropout_backward,
                        ics_nn_dropout_saved_bytes, 0, 0, 0},
    [ICS_OP_LINEAR] = {ics_nn_linear_forward, ics_nn_linear_backward, NULL, 1, 0, 1},
    [ICS_OP_FAKE_QUANT] = {ics_nn_fake_quant_forward, ics_nn_fake_quant_backward,
                           ics_nn_fake_quant_saved_bytes, 0, 0, 1},
};

const ics_layer_kind *ics_layer_kind_of(ics_op_kind kind)
{
    if ((int)kind < 0 || kind >= ICS_OP_COUNT) return NULL;
    return &kinds[kind];
}
