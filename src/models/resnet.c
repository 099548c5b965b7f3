/*
 * src/models/resnet.c: torchvision's ResNet family (resnet18/34 with
 * BasicBlock, resnet50/101 with Bottleneck), module names as in
 * torchvision.models.resnet so state_dict keys match one-to-one.
 *
 * Bottleneck is "ResNet v1.5": the stride sits on the 3x3 conv2, not on
 * the 1x1 conv1. A block gets a downsample branch (conv1x1 + BN, named
 * downsample.0 and downsample.1) when its stride is not 1 or its input
 * width differs from planes * expansion. The CIFAR stem replaces the 7x7
 * stride-2 conv1 by a 3x3 stride-1 one and drops the max pool, the usual
 * adaptation for 32x32 inputs.
 */
#include "models/model_internal.h"

#include <stdio.h>

/* One block. `in` is the block input node; returns the block output node
 * (after the final ReLU) or -1. Torch registers conv1, bn1, conv2, bn2,
 * [conv3, bn3,] then downsample, so the main branch is built first. */
static int block(ics_model *m, int in, const char *prefix, int planes, int stride,
                 int bottleneck, ics_error *err)
{
    char name[ICS_NAME_MAX];
    int expansion = bottleneck ? 4 : 1;
    int in_c = m->nodes[in].out_c;
    int x = in;
#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", prefix, suffix), name)
    if (bottleneck) {
        x = ics_build_conv(m, x, NAME("conv1"), planes, 1, 1, 0, 1, 0, err);
        if (x >= 0) x = ics_build_bn(m, x, NAME("bn1"), err);
        if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "", err);
        if (x >= 0) x = ics_build_conv(m, x, NAME("conv2"), planes, 3, stride, 1, 1, 0, err);
        if (x >= 0) x = ics_build_bn(m, x, NAME("bn2"), err);
        if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "", err);
        if (x >= 0) x = ics_build_conv(m, x, NAME("conv3"), planes * 4, 1, 1, 0, 1, 0, err);
        if (x >= 0) x = ics_build_bn(m, x, NAME("bn3"), err);
    } else {
        x = ics_build_conv(m, x, NAME("conv1"), planes, 3, stride, 1, 1, 0, err);
        if (x >= 0) x = ics_build_bn(m, x, NAME("bn1"), err);
        if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "", err);
        if (x >= 0) x = ics_build_conv(m, x, NAME("conv2"), planes, 3, 1, 1, 1, 0, err);
        if (x >= 0) x = ics_build_bn(m, x, NAME("bn2"), err);
    }
    if (x < 0) return -1;
    int identity = in;
    if (stride != 1 || in_c != planes * expansion) {
        identity = ics_build_conv(m, in, NAME("downsample.0"), planes * expansion, 1, stride, 0, 1,
                                  0, err);
        if (identity >= 0) identity = ics_build_bn(m, identity, NAME("downsample.1"), err);
        if (identity < 0) return -1;
    }
    x = ics_build_add(m, x, identity, NAME("add"), err);
#undef NAME
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "", err);
    return x;
}

ics_status ics_build_resnet(ics_model *m, int depth, ics_error *err)
{
    int blocks[4];
    int bottleneck = depth >= 50;
    switch (depth) {
    case 18: blocks[0] = 2, blocks[1] = 2, blocks[2] = 2, blocks[3] = 2; break;
    case 34: blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3; break;
    case 50: blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3; break;
    case 101: blocks[0] = 3, blocks[1] = 4, blocks[2] = 23, blocks[3] = 3; break;
    default: return ICS_FAIL(err, ICS_ERR_INVALID, "resnet: unsupported depth %d", depth);
    }
    m->linear_init = ICS_LINEAR_INIT_TORCH_DEFAULT;
    int x = 0;
    if (m->opts.cifar_stem) {
        x = ics_build_conv(m, x, "conv1", 64, 3, 1, 1, 1, 0, err);
        if (x >= 0) x = ics_build_bn(m, x, "bn1", err);
        if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "relu", err);
    } else {
        x = ics_build_conv(m, x, "conv1", 64, 7, 2, 3, 1, 0, err);
        if (x >= 0) x = ics_build_bn(m, x, "bn1", err);
        if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "relu", err);
        if (x >= 0) x = ics_build_maxpool(m, x, "maxpool", 3, 2, 1, err);
    }
    for (int layer = 0; layer < 4 && x >= 0; layer++) {
        int planes = 64 << layer;
        for (int b = 0; b < blocks[layer] && x >= 0; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", layer + 1, b);
            x = block(m, x, prefix, planes, b == 0 && layer > 0 ? 2 : 1, bottleneck, err);
        }
    }
    if (x >= 0) x = ics_build_adaptive_avgpool(m, x, "avgpool", 1, 1, err);
    if (x >= 0) x = ics_build_flatten(m, x, err);
    /* torchvision's ResNet has no dropout; a requested one goes before fc
     * as an unnamed module (it has no tensors, so names are unaffected). */
    if (x >= 0 && m->opts.dropout > 0.0f) x = ics_build_dropout(m, x, "dropout", m->opts.dropout, err);
    if (x >= 0) x = ics_build_linear(m, x, "fc", m->opts.num_classes, 1, err);
    return x >= 0 ? ICS_OK : (err ? err->status : ICS_ERR_RUNTIME);
}
