/*
 * A QAT conv [-> BN] [-> ReLU] [-> fake-quant] group run through the layer
 * functions themselves (src/nn), outside any model, so that tests can read
 * the gradient of the group's input, which a model never computes for its
 * first layer. The wiring is exec.c's: the conv gets its weight scales,
 * the folded BN's gamma, running variance and gamma gradient; the BN gets
 * the frozen flag. Shared by test_qat (finite differences) and
 * test_qat_torch (torch.nn.intrinsic.qat.ConvBnReLU2d).
 */
#ifndef ICS_TEST_QAT_GROUP_H
#define ICS_TEST_QAT_GROUP_H

#include <stdint.h>

#include "nn/layer.h"

typedef struct qat_group {
    /* shape and structure (set before qat_group_init) */
    int batch, in_h, in_w, in_c, out_c, kernel, stride, pad;
    int has_bias;  /* conv bias */
    int has_bn;    /* BN after the conv, folded into it */
    int has_relu;  /* ReLU after the BN */
    int act_quant; /* activation fake-quant node last */
    int weight_bits, activation_bits;
    /* mode (may change between passes) */
    int training, bn_frozen, observers;

    ics_node in, conv, bn, relu, fq;
    /* parameters and state: x is NHWC, w OIHW */
    float *x, *w, *b, *gamma, *beta, *running_mean, *running_var;
    int64_t counter;
    float *w_state;                 /* the conv's quantizer state (its weight scales first) */
    float act_state[ICS_AQ_FLOATS]; /* the activation quantizer */
    /* activations: y_out aliases the last one */
    float *y_conv, *y_bn, *y_relu, *y_fq, *y_out;
    /* gradients of the activations, and the parameters' (accumulated) */
    float *d_fq_in, *d_relu_in, *d_bn_in, *dx;
    float *gw, *gb, *ggamma, *gbeta;
    float *bn_saved; /* 2 * out_c */
    uint8_t *mask;   /* fake-quant pass-through mask */
    void *workspace;
    ics_qat_ctx ctx;
    int64_t x_count, y_count, w_count;
} qat_group;

/* Allocates everything for the shape set in g (zeroed; running_var 1,
 * gamma 1, weight scales 1, activation scale 1). Returns 0 or -1. */
int qat_group_init(qat_group *g);
void qat_group_free(qat_group *g);

/* One forward through the group in g's mode. */
void qat_group_forward(qat_group *g);
/* One backward of dy (the last node's output gradient, y_count floats):
 * parameter gradients are zeroed first, dx is written. Needs a training
 * forward just before (the BN and fake-quant saved state). */
void qat_group_backward(qat_group *g, const float *dy);

#endif
