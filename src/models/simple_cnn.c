/*
 * src/models/simple_cnn.c: the small CNN for 28x28 images (MNIST,
 * Fashion-MNIST), the network of the SparseML reference runs: two blocks of
 * conv 3x3 padding 1 (no bias: BN follows) + BN + ReLU + MaxPool2d(2), then
 * flatten and one linear layer (64*7*7 = 3136 -> classes on 28x28).
 * Module names, as a torch nn.Sequential `features` and a Linear
 * `classifier` (tests/torchref/models_ref.py defines the same module):
 *   features.0 conv(in->32)  features.1 BN  features.2 ReLU  features.3 pool
 *   features.4 conv(32->64)  features.5 BN  features.6 ReLU  features.7 pool
 *   classifier  Linear(64 * (H/4) * (W/4) -> classes)
 */
#include "models/model_internal.h"

ics_status ics_build_simple_cnn(ics_model *m, ics_error *err)
{
    m->linear_init = ICS_LINEAR_INIT_TORCH_DEFAULT;
    int x = ics_build_conv(m, 0, "features.0", 32, 3, 1, 1, 1, 0, err);
    if (x >= 0) x = ics_build_bn(m, x, "features.1", err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "features.2", err);
    if (x >= 0) x = ics_build_maxpool(m, x, "features.3", 2, 2, 0, err);
    if (x >= 0) x = ics_build_conv(m, x, "features.4", 64, 3, 1, 1, 1, 0, err);
    if (x >= 0) x = ics_build_bn(m, x, "features.5", err);
    if (x >= 0) x = ics_build_act(m, x, ICS_OP_RELU, "features.6", err);
    if (x >= 0) x = ics_build_maxpool(m, x, "features.7", 2, 2, 0, err);
    if (x >= 0) x = ics_build_flatten(m, x, err);
    if (x >= 0 && m->opts.dropout > 0.0f) x = ics_build_dropout(m, x, "dropout", m->opts.dropout, err);
    if (x >= 0) x = ics_build_linear(m, x, "classifier", m->opts.num_classes, 1, err);
    return x >= 0 ? ICS_OK : (err ? err->status : ICS_ERR_RUNTIME);
}
