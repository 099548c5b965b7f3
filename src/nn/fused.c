/*
 * src/nn/fused.c: a fused inference group, computed by its head node.
 *
 * At inference BatchNorm is a fixed per-channel affine map and ReLU a
 * pointwise clamp, so conv -> BN [-> ReLU | ReLU6] needs one pass over the
 * output, not three (conv writes it, BN reads and rewrites it, ReLU again).
 * The head runs the op table's conv2d_forward_fused (linear_forward_fused
 * for linear -> ReLU) with the BN and the activation as the kernel's
 * epilogue: each kernel applies y = act(y * s + t) to the rows it has just
 * written, while they are in cache, with
 *   s = gamma / sqrt(running_var + eps),  t = beta - running_mean * s
 * computed at the call from the BN's CURRENT parameters and statistics (a
 * training run evaluates between steps that move them) by the same code as
 * the BN op, so the group gives the unfused ops' values (see backend.h for
 * the one exception, GEMM row blocking). Nothing is folded into a copy of
 * the weight: that would cost a pass over every weight per forward and a
 * weight-sized scratch for no gain in arithmetic (one multiply per output
 * in cache either way).
 *
 * The planner (src/models/plan.c) finds the groups and gives the head the
 * group's output buffer; exec.c skips the members. A table without the
 * fused entries (NULL) gets the unfused ops in place on y.
 * docs/DESIGN-ENGINE.md has the design and the measurements.
 */
#include "nn/layer.h"

/* The epilogue as separate ops, in place on y (rows x channels). */
static void epilogue_ops(const ics_layer_io *io, int64_t rows, int channels)
{
    const ics_epilogue *ep = &io->fuse;
    if (ep->bn_gamma)
        io->ops->batchnorm_forward_eval(rows, channels, io->y, ep->bn_gamma, ep->bn_beta, ep->bn_mean,
                                        ep->bn_var, ep->bn_eps, io->y);
    if (ep->act == ICS_ACT_RELU) io->ops->relu_forward(rows * channels, io->y, io->y);
    else if (ep->act == ICS_ACT_RELU6) io->ops->relu6_forward(rows * channels, io->y, io->y);
}

void ics_nn_fused_forward(const ics_layer_io *io)
{
    const ics_node *node = io->node;
    const float *weight = io->param[0], *bias = io->param[1];
    if (node->kind == ICS_OP_LINEAR) {
        const int in = (int)ics_node_numel(io->in_node[0]), out = node->out_c;
        if (io->ops->linear_forward_fused) {
            io->ops->linear_forward_fused(io->batch, in, out, io->x[0], weight, bias, &io->fuse, io->y);
        } else {
            io->ops->linear_forward(io->batch, in, out, io->x[0], weight, bias, io->y);
            epilogue_ops(io, io->batch, out);
        }
        return;
    }
    ics_conv2d_desc d;
    ics_nn_conv2d_desc(node, io->in_node[0], io->batch, &d);
    if (io->ops->conv2d_forward_fused) {
        io->ops->conv2d_forward_fused(&d, io->x[0], weight, bias, &io->fuse, io->y, io->workspace);
    } else {
        io->ops->conv2d_forward(&d, io->x[0], weight, bias, io->y, io->workspace);
        epilogue_ops(io, (int64_t)d.batch * d.out_h * d.out_w, d.out_c);
    }
}
