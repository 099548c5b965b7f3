/*
 * src/models/exec.c: planning entry points and the forward and backward
 * passes. Both walk the node list and hand each layer an ics_layer_io whose
 * pointers come from the plan; nothing here allocates.
 */
#include "models/model_internal.h"

#include <stdint.h>
#include <string.h>

#include "nn/layer.h"

#define NONE SIZE_MAX

ics_status ics_model_plan(ics_model *m, int max_batch, int training, ics_error *err)
{
    if (max_batch < 1)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: batch size must be >= 1, got %d", m->arch,
                        max_batch);
    /* The CPU table always exists (backend.h); a device table will be
     * chosen here once the arena can live on a device. */
    if (!m->ops) m->ops = ics_backend_cpu();
    ics_status st = ics_plan_build(m, max_batch, training != 0, err);
    if (st != ICS_OK) return ics_error_prefix(err, "model %s, batch %d: ", m->arch, max_batch), st;
    m->training = training != 0;
    m->last_batch = 0;
    return ICS_OK;
}

size_t ics_model_arena_bytes(const ics_model *m) { return m->plan.planned ? m->plan.arena_bytes : 0; }

size_t ics_model_workspace_bytes(const ics_model *m)
{
    return m->plan.planned ? m->plan.workspace_bytes : 0;
}

void ics_model_set_training(ics_model *m, int training) { m->training = training != 0; }
int ics_model_is_training(const ics_model *m) { return m->training; }

void ics_model_set_dropout_seed(ics_model *m, uint64_t seed, int rank)
{
    m->dropout_seed = seed;
    m->dropout_rank = rank;
    m->dropout_step = 0;
}

static void *at(const ics_model *m, size_t offset)
{
    return offset == NONE ? NULL : m->plan.arena + offset;
}

/* Resolves the parameter, gradient, buffer and counter pointers of a node
 * from its tensors (in table order: weight [, bias] or gamma, beta,
 * running_mean, running_var, num_batches_tracked). */
static void bind_tensors(ics_model *m, int i, ics_layer_io *io)
{
    const ics_node *node = &m->nodes[i];
    int np = 0, nbuf = 0;
    for (int t = node->first_tensor; t < node->first_tensor + node->num_tensors; t++) {
        const ics_tensor_info *ti = &m->tensors[t];
        if (ti->kind == ICS_TENSOR_BUFFER) io->buffer[nbuf++] = m->buffers + ti->offset;
        else if (ti->kind == ICS_TENSOR_COUNTER) io->counter = m->counters + ti->offset;
        else {
            io->param[np] = m->params + ti->offset;
            io->grad[np] = m->grads + ti->offset;
            np++;
        }
    }
}

static void base_io(ics_model *m, int i, int batch, ics_layer_io *io)
{
    const ics_node *node = &m->nodes[i];
    memset(io, 0, sizeof *io);
    io->ops = m->ops;
    io->node = node;
    io->batch = batch;
    io->training = m->training;
    for (int k = 0; k < node->num_inputs; k++) {
        io->in_node[k] = &m->nodes[node->inputs[k]];
        io->x[k] = at(m, m->plan.nodes[node->inputs[k]].out);
    }
    io->y = at(m, m->plan.nodes[i].out);
    io->saved = at(m, m->plan.nodes[i].saved);
    io->workspace = m->plan.workspace;
    io->rng = &m->dropout_rng;
    io->reduce = m->bn_reduce;
    io->reduce_ctx = m->bn_reduce_ctx;
    io->reduce_status = &m->bn_reduce_status;
    io->reduce_error = &m->bn_reduce_error;
    bind_tensors(m, i, io);
    if (!m->qat.active) return;
    /* QAT: the quantizer's state, the folded BN of a conv, frozen BNs */
    io->qat = &m->qat.ctx;
    if (node->kind == ICS_OP_FAKE_QUANT)
        io->qstate = m->qat.state + ICS_QAT_HEADER + (size_t)node->quant_index * ICS_AQ_FLOATS;
    else if (node->quant_index >= 0)
        io->qstate = m->qat.state + m->qat.weight_offset[node->quant_index];
    if (node->kind == ICS_OP_CONV2D && node->fold_bn) {
        const ics_node *bn = &m->nodes[i + 1];
        const ics_tensor_info *t = &m->tensors[bn->first_tensor];
        io->bn_gamma = m->params + t[0].offset;
        io->bn_gamma_grad = m->grads + t[0].offset;
        io->bn_var = m->buffers + t[3].offset;
        io->bn_eps = bn->eps;
    }
    if (node->kind == ICS_OP_BATCHNORM2D && m->qat.state[ICS_QAT_BN_FROZEN] != 0.0f &&
        m->nodes[node->inputs[0]].fold_bn)
        io->bn_frozen = 1;
}

/* The head of a fused group in an evaluation forward (plan.c marks the
 * groups, src/nn/fused.c runs them): the group's output buffer, and its
 * BN's tensors (gamma, beta, running_mean, running_var in table order)
 * and final activation as the kernel's epilogue. */
static void fused_io(ics_model *m, int i, ics_layer_io *io)
{
    const int last = m->plan.nodes[i].fused_last;
    const ics_node *end = &m->nodes[last];
    io->y = at(m, m->plan.nodes[last].out);
    io->fuse.act = end->kind == ICS_OP_RELU    ? ICS_ACT_RELU
                   : end->kind == ICS_OP_RELU6 ? ICS_ACT_RELU6
                                               : ICS_ACT_NONE;
    const ics_node *bn = &m->nodes[i + 1];
    if (bn->kind != ICS_OP_BATCHNORM2D) return;
    const ics_tensor_info *t = &m->tensors[bn->first_tensor];
    io->fuse.bn_gamma = m->params + t[0].offset;
    io->fuse.bn_beta = m->params + t[1].offset;
    io->fuse.bn_mean = m->buffers + t[2].offset;
    io->fuse.bn_var = m->buffers + t[3].offset;
    io->fuse.bn_eps = bn->eps;
}

/* The layer functions of node i: the QAT variants for quantized weights. */
static void (*forward_of(const ics_model *m, int i))(const ics_layer_io *)
{
    const ics_node *node = &m->nodes[i];
    if (node->quant_index >= 0 && node->kind == ICS_OP_CONV2D) return ics_nn_conv2d_qat_forward;
    if (node->quant_index >= 0 && node->kind == ICS_OP_LINEAR) return ics_nn_linear_qat_forward;
    return ics_layer_kind_of(node->kind)->forward;
}

static void (*backward_of(const ics_model *m, int i))(const ics_layer_io *)
{
    const ics_node *node = &m->nodes[i];
    if (node->quant_index >= 0 && node->kind == ICS_OP_CONV2D) return ics_nn_conv2d_qat_backward;
    if (node->quant_index >= 0 && node->kind == ICS_OP_LINEAR) return ics_nn_linear_qat_backward;
    return ics_layer_kind_of(node->kind)->backward;
}

ics_status ics_model_forward(ics_model *m, const float *x, int batch, const float **logits,
                             ics_error *err)
{
    if (!m->plan.planned)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: forward before ics_model_plan", m->arch);
    if (batch < 1 || batch > m->plan.max_batch)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: batch %d outside the planned 1..%d",
                        m->arch, batch, m->plan.max_batch);
    if (m->training && !m->plan.training)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "model %s: training mode needs a training plan (ics_model_plan with "
                        "training = 1)",
                        m->arch);
    /* Dropout masks: one generator per (seed, rank) advanced per forward,
     * so a run is reproducible and ranks draw different masks. */
    ics_rng_init(&m->dropout_rng, m->dropout_seed, (uint64_t)m->dropout_rank,
                 2 + (m->dropout_step++ << 8));
    const ics_node *in = &m->nodes[0];
    memcpy(at(m, m->plan.nodes[0].out), x, (size_t)batch * (size_t)ics_node_numel(in) * sizeof(float));
    m->bn_reduce_status = ICS_OK;
    if (m->qat.active) m->qat.ctx.observers = m->qat.state[ICS_QAT_OBSERVERS] != 0.0f;
    /* Evaluation forwards run fused groups as one call of their head
     * (training forwards need every node's output for backward). */
    const int fused = !m->training && !m->qat.active && m->plan.fused_groups > 0;
    for (int i = 1; i < m->num_nodes; i++) {
        const ics_node_plan *np = &m->plan.nodes[i];
        if (fused && np->fused_head >= 0) continue;
        ics_layer_io io;
        base_io(m, i, batch, &io);
        if (fused && np->fused_last >= 0) {
            fused_io(m, i, &io);
            ics_nn_fused_forward(&io);
        } else {
            forward_of(m, i)(&io);
        }
    }
    if (m->bn_reduce_status) {
        if (err) *err = m->bn_reduce_error;
        return m->bn_reduce_status;
    }
    m->last_batch = m->training ? batch : 0;
    *logits = at(m, m->plan.nodes[m->num_nodes - 1].out);
    return ICS_OK;
}

ics_status ics_model_backward(ics_model *m, const float *dlogits, ics_error *err)
{
    if (!m->plan.planned || !m->plan.training)
        return ICS_FAIL(err, ICS_ERR_INVALID, "model %s: backward needs a training plan", m->arch);
    if (!m->training || m->last_batch == 0)
        return ICS_FAIL(err, ICS_ERR_INVALID,
                        "model %s: backward needs a training-mode forward first (BN in eval mode "
                        "has no batch-statistics backward)",
                        m->arch);
    int batch = m->last_batch;
    float *scratch = at(m, m->plan.scratch);
    m->bn_reduce_status = ICS_OK;
    for (int i = m->num_nodes - 1; i >= 1; i--) {
        const ics_node *node = &m->nodes[i];
        const ics_layer_kind *lk = ics_layer_kind_of(node->kind);
        ics_layer_io io;
        base_io(m, i, batch, &io);
        io.dy = i == m->num_nodes - 1 ? dlogits : at(m, m->plan.nodes[i].grad);
        int accumulate[2] = {0, 0};
        for (int k = 0; k < node->num_inputs; k++) {
            int src = node->inputs[k];
            if (src == 0) {
                /* nothing needs the image's gradient */
                io.dx[k] = lk->dx_may_be_null ? NULL : scratch;
            } else if (m->plan.nodes[i].input_grad_first[k]) {
                io.dx[k] = at(m, m->plan.nodes[src].grad);
            } else {
                /* fan-out: a later consumer already wrote this gradient */
                io.dx[k] = scratch;
                accumulate[k] = 1;
            }
        }
        if (node->kind == ICS_OP_ADD && (accumulate[0] || accumulate[1])) {
            /* add's gradient is dy itself: accumulate it directly instead
             * of copying it through the scratch */
            for (int k = 0; k < 2; k++) {
                float *g = at(m, m->plan.nodes[node->inputs[k]].grad);
                int64_t count = (int64_t)batch * ics_node_numel(node);
                if (node->inputs[k] == 0) continue;
                if (accumulate[k]) m->ops->accumulate(count, io.dy, g);
                else memcpy(g, io.dy, (size_t)count * sizeof(float));
            }
            continue;
        }
        backward_of(m, i)(&io);
        for (int k = 0; k < node->num_inputs; k++)
            if (accumulate[k])
                m->ops->accumulate((int64_t)batch * ics_node_numel(&m->nodes[node->inputs[k]]),
                                   scratch, at(m, m->plan.nodes[node->inputs[k]].grad));
        if (m->bn_reduce_status) {
            if (err) *err = m->bn_reduce_error;
            return m->bn_reduce_status;
        }
        /* This node's parameter gradients are final: DDP may start
         * reducing them while the earlier layers run backward. */
        if (m->backward_hook && node->num_tensors > 0) {
            /* A BN folded into its QAT conv gets more gamma gradient from
             * the conv's backward: it is final only after that. */
            int folded_bn = node->kind == ICS_OP_BATCHNORM2D && m->nodes[node->inputs[0]].fold_bn;
            ics_status hs = folded_bn ? ICS_OK : m->backward_hook(m->backward_hook_ctx, i, err);
            if (!hs && node->fold_bn) hs = m->backward_hook(m->backward_hook_ctx, i + 1, err);
            if (hs) return hs;
        }
    }
    m->last_batch = 0;
    return ICS_OK;
}

void ics_model_set_backward_hook(ics_model *m, ics_backward_hook hook, void *ctx)
{
    m->backward_hook = hook;
    m->backward_hook_ctx = ctx;
}

void ics_model_set_bn_reducer(ics_model *m, ics_sum_reducer reduce, void *ctx)
{
    m->bn_reduce = reduce;
    m->bn_reduce_ctx = ctx;
}

void ics_model_zero_grad(ics_model *m) { memset(m->grads, 0, m->num_params * sizeof(float)); }

const float *ics_model_node_output(const ics_model *m, int node)
{
    if (!m->plan.planned || node < 0 || node >= m->num_nodes) return NULL;
    return at(m, m->plan.nodes[node].out);
}

const uint8_t *ics_model_dropout_mask(const ics_model *m, int node)
{
    if (!m->plan.planned || !m->plan.training || node < 0 || node >= m->num_nodes ||
        m->nodes[node].kind != ICS_OP_DROPOUT)
        return NULL;
    return at(m, m->plan.nodes[node].saved);
}
