/*
 * icsparse/qat.h: quantization-aware training (fake quantization) on a
 * model.
 *
 * ics_model_qat_prepare rewrites a model's graph the way SparseML's
 * QuantizationModifier rewrites a torch module:
 *  - conv [-> BN] [-> ReLU | ReLU6] runs as one fused group: the BN is
 *    folded into the weight (w * gamma / sqrt(running_var + eps)), that
 *    weight is fake-quantized int8 symmetric per output channel, the conv
 *    result is divided by the fold factor again and the BN runs as usual
 *    (batch statistics while training, running statistics once frozen):
 *    torch's intrinsic QAT ConvBn2d / ConvBnReLU2d;
 *  - linear weights are fake-quantized the same way (per output row);
 *  - fake-quant nodes (uint8 affine per tensor, moving-average min/max
 *    observers) follow the model input ("quant"), every fused conv group,
 *    every linear (+ReLU), every residual add (+ReLU) and every average
 *    pool: "<module>.activation_post_process". Max pool, flatten and
 *    dropout pass quantized values through unchanged.
 * Node indices change (fake-quant nodes are inserted); the tensor table
 * does not. A planned model is planned again with the same batch size and
 * mode.
 *
 * Weight scales follow the current weights (max |w| per channel / 127.5)
 * at every forward while observers are enabled (a function of the weights,
 * as torch's weight fake-quant); activation observers update only in
 * training-mode forwards (evaluation leaves them as they are), as
 * min' = min + c (batch_min - min) with c = averaging_constant (0.01).
 * Scale and zero point as torch computes them: the range is widened to
 * include 0, scale = (max - min) / (qmax - qmin) (at least float epsilon),
 * zero_point = qmin - round(min / scale) clamped to [qmin, qmax].
 * Fake quantization: q = clamp(round_half_even(x / scale) + zp, qmin,
 * qmax), y = (q - zp) * scale; its gradient passes where x was inside the
 * range (the straight-through estimator).
 */
#ifndef ICSPARSE_QAT_H
#define ICSPARSE_QAT_H

#include <stddef.h>
#include <stdint.h>

#include <icsparse/model.h>
#include <icsparse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ics_qat_options {
    int weight_bits;     /* 8: [-128, 127] */
    int activation_bits; /* 8: [0, 255] */
    int reduce_range;    /* activations use one bit less (torch's reduce_range) */
    int quantize_conv_activations;   /* fake-quant after conv groups (1) */
    int quantize_linear_activations; /* fake-quant after linear layers (1) */
    int fold_bn;                     /* fold BN into the conv (1) */
    double averaging_constant;       /* activation observers (0.01) */
    /* torch module-path prefixes to quantize ("layer1", "features.3");
     * NULL / 0: the whole model. The SparseML ResNet names "input",
     * "sections", "sections.N" and "classifier" select the same modules of
     * a torchvision-named ResNet. */
    const char *const *submodules;
    int num_submodules;
    /* torch module types left unquantized: Conv2d, Linear, AdaptiveAvgPool2d,
     * AvgPool2d, Add (the residual adds); ReLU, ReLU6, BatchNorm2d,
     * MaxPool2d, Dropout, Flatten and Identity are accepted and change
     * nothing (they carry no quantizer of their own). */
    const char *const *exclude_types;
    int num_exclude_types;
} ics_qat_options;

void ics_qat_options_default(ics_qat_options *o);

/* Applies the QAT structure (see above). Errors: already prepared, a
 * submodule prefix that selects nothing, an unknown excluded type (the
 * error names it), bits outside [2, 16], out of memory. */
ics_status ics_model_qat_prepare(ics_model *model, const ics_qat_options *opts, ics_error *err);

/* The checks of ics_model_qat_prepare without changing the model (a
 * recipe's options validated when it is bound, before training starts). */
ics_status ics_model_qat_check(const ics_model *model, const ics_qat_options *opts, ics_error *err);

/* Gives dst (same arch and options) src's QAT structure and state. */
ics_status ics_model_qat_prepare_like(ics_model *dst, const ics_model *src, ics_error *err);

int ics_model_qat_active(const ics_model *model);

/* Observers on (the default) or off (scales and zero points frozen). */
void ics_model_qat_set_observers(ics_model *model, int enabled);
int ics_model_qat_observers(const ics_model *model);
/* Folded BNs use their running statistics even in training mode and stop
 * updating them (torch's freeze_bn_stats). */
void ics_model_qat_freeze_bn(ics_model *model, int frozen);
int ics_model_qat_bn_frozen(const ics_model *model);

/* Calibration (one-shot quantization): an evaluation-mode forward of x
 * (batch <= the planned batch) in which the activation observers update;
 * BN running statistics do not change. Needs observers on. */
ics_status ics_model_qat_calibrate(ics_model *model, const float *x, int batch, ics_error *err);

/* An activation quantizer's state. */
typedef struct ics_act_quant {
    float scale;
    int32_t zero_point;
    int32_t quant_min, quant_max;
    float min_val, max_val; /* the observer's range */
    int initialized;        /* the observer has seen a batch */
} ics_act_quant;

/* The quantizer of fake-quant node `node`; ICS_ERR_INVALID for other nodes. */
ics_status ics_model_act_quant_get(const ics_model *model, int node, ics_act_quant *q, ics_error *err);
/* Sets min_val, max_val and initialized (scale and zero point follow). */
ics_status ics_model_act_quant_set(ics_model *model, int node, float min_val, float max_val, int initialized,
                                   ics_error *err);

/* The weight quantizer of conv or linear node `node`: NULL when the
 * weight is not quantized; else out_c scales (zero points are 0) and the
 * integer range. */
const float *ics_model_weight_scales(const ics_model *model, int node, int *channels, int *quant_min,
                                     int *quant_max);
float *ics_model_weight_scales_mut(ics_model *model, int node);

/* The weight and bias a quantized conv or linear node computes with at
 * inference, before weight quantization: BN folded in (running
 * statistics) when fold_bn, the bias then being beta + (b - mean) * factor.
 * w holds the weight's numel, b out_c floats. With observers enabled the
 * weight scales are refreshed from this weight first, as a forward would. */
ics_status ics_model_qat_inference_weight(ics_model *model, int node, float *w, float *b, ics_error *err);

/* All QAT state as one float array (flags, activation quantizers, weight
 * scales, the running variances the last training forward folded with),
 * for broadcasting rank 0's observers to the other ranks and
 * replicas (torch's DDP broadcasts module buffers the same way). */
float *ics_model_qat_state(ics_model *model, size_t *count);

/* Round half to even, then fake-quantize (per tensor or per channel): the
 * arithmetic of the fake-quant nodes, exposed for tests. */
float ics_fake_quant_value(float x, float scale, int32_t zero_point, int32_t quant_min, int32_t quant_max);
/* torch's qparams from an observed range (affine, or symmetric with zero
 * point 0 when symmetric). */
void ics_quant_params(float min_val, float max_val, int32_t quant_min, int32_t quant_max, int symmetric,
                      float *scale, int32_t *zero_point);

#ifdef __cplusplus
}
#endif
#endif
