/*
 * src/models/lenet.c: LeNet-5 for 28x28 (or 32x32) images, without any
 * BatchNorm. Its training is independent of how a batch is split, which
 * makes it the model for testing that DDP, DP and gradient accumulation
 * give the same weights as one big batch. As a torch module:
 *   features   = Sequential(Conv2d(in, 6, 5, padding=2), ReLU, MaxPool2d(2),
 *                           Conv2d(6, 16, 5), ReLU, MaxPool2d(2))
 *   classifier = Sequential(Linear(16*5*5, 120), ReLU, Linear(120, 84), ReLU,
 *                           Linear(84, classes))
 * (for 28x28 inputs; 32x32 gives 16*6*6 features).
 */
#include "models/model_internal.h"

ics_status ics_build_lenet(ics_model *m, ics_error *err)
{
    m->linear_init = ICS_LINEAR_INIT_TORCH_DEFAULT;
    int x = ics_build_conv(m, 0, "features.0", 6, 5, 1, 2, 1, 1, err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "features.1", err);
    if (x >= 0) x = ics_build_maxpool(m, x, "features.2", 2, 2, 0, err);
    if (x >= 0) x = ics_build_conv(m, x, "features.3", 16, 5, 1, 0, 1, 1, err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "features.4", err);
    if (x >= 0) x = ics_build_maxpool(m, x, "features.5", 2, 2, 0, err);
    if (x >= 0) x = ics_build_flatten(m, x, err);
    if (x >= 0) x = ics_build_linear(m, x, "classifier.0", 120, 1, err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "classifier.1", err);
    if (x >= 0) x = ics_build_linear(m, x, "classifier.2", 84, 1, err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "classifier.3", err);
    if (x >= 0) x = ics_build_linear(m, x, "classifier.4", m->opts.num_classes, 1, err);
    return x >= 0 ? ICS_OK : (err ? err->status : ICS_ERR_RUNTIME);
}
