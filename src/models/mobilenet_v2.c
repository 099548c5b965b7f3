/*
 * src/models/mobilenet_v2.c: torchvision's MobileNetV2 with a width
 * multiplier. Names follow torchvision.models.mobilenetv2: features.0 is
 * Conv2dNormActivation (features.0.0 conv, .1 BN, .2 ReLU6); each
 * InvertedResidual N has a `conv` Sequential: [expand 1x1 ConvBNReLU6 when
 * t != 1,] depthwise 3x3 ConvBNReLU6, then a plain 1x1 conv and BN (the
 * linear bottleneck); the last feature is a 1x1 ConvBNReLU6 to
 * last_channel; classifier = [Dropout(0.2), Linear] so the linear layer is
 * classifier.1.
 */
#include "models/model_internal.h"

#include <stdio.h>

/* torchvision's _make_divisible: round v to the nearest multiple of
 * divisor (at least divisor) without going more than 10% below v. */
static int make_divisible(double v, int divisor)
{
    int new_v = (int)(v + divisor / 2.0) / divisor * divisor;
    if (new_v < divisor) new_v = divisor;
    if (new_v < 0.9 * v) new_v += divisor;
    return new_v;
}

/* Conv (bias-free) + BN + ReLU6, named prefix.0, prefix.1 (prefix.2 is the
 * activation). */
static int conv_bn_relu6(ics_model *m, int x, const char *prefix, int out_c, int kernel,
                         int stride, int groups, ics_error *err)
{
    char name[ICS_NAME_MAX];
    snprintf(name, sizeof name, "%s.0", prefix);
    x = ics_build_conv(m, x, name, out_c, kernel, stride, (kernel - 1) / 2, groups, 0, err);
    snprintf(name, sizeof name, "%s.1", prefix);
    if (x >= 0) x = ics_build_bn(m, x, name, err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU6, "", err);
    return x;
}

static int inverted_residual(ics_model *m, int in, int index, int out_c, int stride, int t,
                             ics_error *err)
{
    char prefix[ICS_NAME_MAX], name[ICS_NAME_MAX];
    int in_c = m->nodes[in].out_c;
    /* torchvision: hidden_dim = int(round(inp * expand_ratio)) */
    int hidden = in_c * t;
    int k = 0; /* index inside the `conv` Sequential */
    int x = in;
    if (t != 1) {
        snprintf(prefix, sizeof prefix, "features.%d.conv.%d", index, k++);
        x = conv_bn_relu6(m, x, prefix, hidden, 1, 1, 1, err);
    }
    snprintf(prefix, sizeof prefix, "features.%d.conv.%d", index, k++);
    if (x >= 0) x = conv_bn_relu6(m, x, prefix, hidden, 3, stride, hidden, err);
    snprintf(name, sizeof name, "features.%d.conv.%d", index, k++);
    if (x >= 0) x = ics_build_conv(m, x, name, out_c, 1, 1, 0, 1, 0, err);
    snprintf(name, sizeof name, "features.%d.conv.%d", index, k++);
    if (x >= 0) x = ics_build_bn(m, x, name, err);
    snprintf(name, sizeof name, "features.%d.add", index);
    if (x >= 0 && stride == 1 && in_c == out_c) x = ics_build_add(m, in, x, name, err);
    return x;
}

ics_status ics_build_mobilenet_v2(ics_model *m, ics_error *err)
{
    /* (t, c, n, s): expansion, output channels, repeats, first stride */
    static const int setting[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2},
                                      {6, 64, 4, 2},  {6, 96, 3, 1},  {6, 160, 3, 2},
                                      {6, 320, 1, 1}};
    double width = m->opts.width_mult;
    m->linear_init = ICS_LINEAR_INIT_NORMAL_001;
    int in_c = make_divisible(32 * width, 8);
    int last_c = make_divisible(1280 * (width > 1.0 ? width : 1.0), 8);
    int x = conv_bn_relu6(m, 0, "features.0", in_c, 3, 2, 1, err);
    int index = 1;
    for (int s = 0; s < 7 && x >= 0; s++) {
        int out_c = make_divisible(setting[s][1] * width, 8);
        for (int i = 0; i < setting[s][2] && x >= 0; i++)
            x = inverted_residual(m, x, index++, out_c, i == 0 ? setting[s][3] : 1, setting[s][0],
                                  err);
    }
    char prefix[32];
    snprintf(prefix, sizeof prefix, "features.%d", index);
    if (x >= 0) x = conv_bn_relu6(m, x, prefix, last_c, 1, 1, 1, err);
    if (x >= 0) x = ics_build_adaptive_avgpool(m, x, "", 1, 1, err);
    if (x >= 0) x = ics_build_flatten(m, x, err);
    float p = m->opts.dropout >= 0.0f ? m->opts.dropout : 0.2f;
    if (x >= 0) x = ics_build_dropout(m, x, "classifier.0", p, err);
    if (x >= 0) x = ics_build_linear(m, x, "classifier.1", m->opts.num_classes, 1, err);
    return x >= 0 ? ICS_OK : (err ? err->status : ICS_ERR_RUNTIME);
}
