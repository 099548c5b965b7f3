/*
 * src/models/vgg.c: torchvision's VGG with batch norm (vgg11_bn, vgg16_bn).
 * features.N counts modules as torchvision's make_layers does: each conv
 * takes three slots (Conv2d 3x3 padding 1 WITH bias, BatchNorm2d, ReLU),
 * each "M" one (MaxPool2d(2, 2)). Then AdaptiveAvgPool2d((7, 7)) and the
 * classifier Linear(512*7*7, 4096), ReLU, Dropout, Linear(4096, 4096),
 * ReLU, Dropout, Linear(4096, classes) = classifier.0 / .3 / .6.
 */
#include "models/model_internal.h"

#include <stdio.h>

ics_status ics_build_vgg_bn(ics_model *m, int depth, ics_error *err)
{
    /* torchvision cfgs "A" (11) and "D" (16); 0 marks a max pool. */
    static const int cfg11[] = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1};
    static const int cfg16[] = {64,  64,  0,   128, 128, 0,   256, 256, 256, 0,
                                512, 512, 512, 0,   512, 512, 512, 0,   -1};
    const int *cfg;
    if (depth == 11) cfg = cfg11;
    else if (depth == 16) cfg = cfg16;
    else return ICS_FAIL(err, ICS_ERR_INVALID, "vgg: unsupported depth %d", depth);
    m->linear_init = ICS_LINEAR_INIT_NORMAL_001;
    char name[ICS_NAME_MAX];
    int x = 0, index = 0;
    for (int i = 0; cfg[i] >= 0 && x >= 0; i++) {
        if (cfg[i] == 0) {
            snprintf(name, sizeof name, "features.%d", index++);
            x = ics_build_maxpool(m, x, name, 2, 2, 0, err);
            continue;
        }
        snprintf(name, sizeof name, "features.%d", index++);
        x = ics_build_conv(m, x, name, cfg[i], 3, 1, 1, 1, 1, err);
        snprintf(name, sizeof name, "features.%d", index++);
        if (x >= 0) x = ics_build_bn(m, x, name, err);
        snprintf(name, sizeof name, "features.%d", index++);
        if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, name, err);
    }
    float p = m->opts.dropout >= 0.0f ? m->opts.dropout : 0.5f;
    if (x >= 0) x = ics_build_adaptive_avgpool(m, x, "avgpool", 7, 7, err);
    if (x >= 0) x = ics_build_flatten(m, x, err);
    if (x >= 0) x = ics_build_linear(m, x, "classifier.0", 4096, 1, err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "classifier.1", err);
    if (x >= 0) x = ics_build_dropout(m, x, "classifier.2", p, err);
    if (x >= 0) x = ics_build_linear(m, x, "classifier.3", 4096, 1, err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "classifier.4", err);
    if (x >= 0) x = ics_build_dropout(m, x, "classifier.5", p, err);
    if (x >= 0) x = ics_build_linear(m, x, "classifier.6", m->opts.num_classes, 1, err);
    return x >= 0 ? ICS_OK : (err ? err->status : ICS_ERR_RUNTIME);
}
