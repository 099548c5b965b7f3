/*
 * src/models/plan.c: the activation memory planner.
 *
 * Every tensor a forward/backward pass touches (node outputs, output
 * gradients, saved tensors, the fan-out scratch) becomes a buffer with a
 * size and a lifetime [first, last] on a timeline where forward of node i
 * is step i and its backward is step 2N-1-i. Buffers whose lifetimes do not
 * overlap may share bytes. Offsets come from the classic greedy: place the
 * largest buffers first, each at the lowest offset that does not collide
 * with an already placed buffer alive at the same time. The whole plan is
 * one allocation; forward and backward then only index into it.
 *
 * Lifetimes (training plan):
 *  - output of node i: from step i to its last reader: forward consumers,
 *    the backward of consumers whose backward reads their input (conv, BN,
 *    linear), its own backward if it reads its output (ReLU, ReLU6); the
 *    logits stay alive to the end (the caller reads them).
 *  - gradient of node i's output: from the backward of its last consumer
 *    (the first to write it) to its own backward. The logits' gradient is
 *    the caller's dlogits and needs no buffer.
 *  - saved tensors of node i: from step i to its own backward.
 * An inference plan keeps outputs only until their last forward reader.
 *
 * In-place activations: a ReLU/ReLU6 whose input node feeds nothing else,
 * and whose input's backward does not read its own output (conv, BN,
 * linear and add read their inputs or nothing), writes over its input:
 * the two outputs share one buffer that lives as long as either needs it.
 * This is torch's ReLU(inplace=True), and it saves the BN outputs of every
 * conv-BN-ReLU (a third of a ResNet's training activations).
 *
 * Inference fusion (src/nn/fused.c, docs/DESIGN-ENGINE.md): consecutive
 * conv -> BN [-> ReLU | ReLU6], conv -> ReLU | ReLU6 and linear -> ReLU |
 * ReLU6 chains, each node the only consumer of the one before, become a
 * group that an evaluation-mode forward computes in one call of the head,
 * writing the output of the group's last node. Not under QAT (its conv
 * folds its BN its own way) nor with ICSPARSE_NO_FUSION set to anything but
 * "" or "0". In an inference plan the members share the head's buffer (all
 * of a group's outputs are one tensor: the last node's). A training plan
 * keeps its buffers (training forwards run node by node) but starts the
 * buffer of the group's last output at the head's step, so that an
 * evaluation forward may write it while the head reads its input.
 */
#include "models/model_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "nn/layer.h"

#define ALIGN 64
#define NONE SIZE_MAX

typedef struct buf {
    size_t bytes;
    int first, last;
    size_t offset;
    size_t *target; /* where to store the offset */
} buf;

static size_t align_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

static int by_size_desc(const void *a, const void *b)
{
    const buf *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->first - y->first; /* stable tie-break: deterministic plans */
}

static int by_offset(const void *a, const void *b)
{
    const buf *x = *(const buf *const *)a, *y = *(const buf *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Greedy placement; returns the arena size. `scratch` holds n pointers. */
static size_t place(buf *bufs, int n, const buf **scratch)
{
    qsort(bufs, (size_t)n, sizeof *bufs, by_size_desc);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        for (int j = 0; j < i; j++)
            if (bufs[j].first <= bufs[i].last && bufs[i].first <= bufs[j].last)
                scratch[k++] = &bufs[j];
        qsort(scratch, (size_t)k, sizeof *scratch, by_offset);
        size_t offset = 0;
        for (int j = 0; j < k; j++) {
            if (scratch[j]->offset >= offset + bufs[i].bytes) break; /* fits in the gap */
            size_t end = scratch[j]->offset + scratch[j]->bytes;
            if (end > offset) offset = end;
        }
        bufs[i].offset = offset;
        if (offset + bufs[i].bytes > total) total = offset + bufs[i].bytes;
    }
    return total;
}

void ics_plan_free(ics_plan *plan)
{
    ics_free_aligned(plan->arena);
    ics_free_aligned(plan->workspace);
    free(plan->nodes);
    memset(plan, 0, sizeof *plan);
}

/* ICSPARSE_NO_FUSION=1 (anything but "" and "0") plans without fused
 * groups: every node runs on its own, as in training. */
static int fusion_disabled(void)
{
    const char *v = getenv("ICSPARSE_NO_FUSION");
    return v && *v && strcmp(v, "0") != 0;
}

/* 1 when node src + 1 is a `kind` node whose only input is src and src
 * feeds nothing else: the next member of a fused group. */
static int next_member(const ics_model *m, const int *consumers, int src, ics_op_kind kind)
{
    if (src + 1 >= m->num_nodes || consumers[src] != 1) return 0;
    const ics_node *next = &m->nodes[src + 1];
    return next->kind == kind && next->num_inputs == 1 && next->inputs[0] == src;
}

/* Marks the fused groups (see the top of this file) in p->nodes. */
static void find_fused_groups(const ics_model *m, const int *consumers, ics_plan *p)
{
    p->fused_groups = 0;
    if (m->qat.active || fusion_disabled()) return;
    for (int i = 1; i < m->num_nodes; i++) {
        const ics_node *head = &m->nodes[i];
        if (head->kind != ICS_OP_CONV2D && head->kind != ICS_OP_LINEAR) continue;
        if (head->quant_index >= 0 || head->fold_bn) continue;
        int last = i;
        if (head->kind == ICS_OP_CONV2D && next_member(m, consumers, last, ICS_OP_BATCHNORM2D))
            last++;
        if (next_member(m, consumers, last, ICS_OP_RELU) || next_member(m, consumers, last, ICS_OP_RELU6))
            last++;
        if (last == i) continue;
        p->nodes[i].fused_last = last;
        for (int k = i + 1; k <= last; k++) p->nodes[k].fused_head = i;
        p->fused_groups++;
    }
}

ics_status ics_plan_build(ics_model *m, int max_batch, int training, ics_error *err)
{
    ics_plan_free(&m->plan);
    ics_plan *p = &m->plan;
    const int n = m->num_nodes;
    const int end = 2 * n; /* a step after everything */
    p->nodes = ics_calloc((size_t)n, sizeof *p->nodes, "plan nodes", err);
    buf *bufs = ics_calloc((size_t)(3 * n + 1), sizeof *bufs, "plan buffers", err);
    const buf **scratch = ics_calloc((size_t)(3 * n + 1), sizeof *scratch, "plan scratch", err);
    if (!p->nodes || !bufs || !scratch) {
        free(bufs);
        free(scratch);
        ics_plan_free(p);
        return ICS_ERR_NOMEM;
    }
    int nb = 0;
    size_t scratch_bytes = 0;
    for (int i = 0; i < n; i++) {
        ics_node_plan *np = &p->nodes[i];
        np->out = np->grad = np->saved = NONE;
        np->input_grad_first[0] = np->input_grad_first[1] = 0;
        np->fused_last = np->fused_head = -1;
    }
    /* Last reader of each output, and which consumer's backward writes an
     * input's gradient first (the latest consumer in forward order). */
    int *last_fwd = ics_calloc((size_t)n, sizeof *last_fwd, "plan lifetimes", err);
    int *last_bwd_read = ics_calloc((size_t)n, sizeof *last_bwd_read, "plan lifetimes", err);
    int *first_grad_writer = ics_calloc((size_t)n, sizeof *first_grad_writer, "plan lifetimes", err);
    if (!last_fwd || !last_bwd_read || !first_grad_writer) {
        free(last_fwd);
        free(last_bwd_read);
        free(first_grad_writer);
        free(bufs);
        free(scratch);
        ics_plan_free(p);
        return ICS_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        last_fwd[i] = i;
        last_bwd_read[i] = -1;
        first_grad_writer[i] = -1;
    }
    for (int j = 0; j < n; j++) {
        const ics_node *node = &m->nodes[j];
        const ics_layer_kind *lk = ics_layer_kind_of(node->kind);
        for (int k = 0; k < node->num_inputs; k++) {
            int src = node->inputs[k];
            if (j > last_fwd[src]) last_fwd[src] = j;
            if (lk->backward_reads_input && 2 * n - 1 - j > last_bwd_read[src])
                last_bwd_read[src] = 2 * n - 1 - j;
            if (j > first_grad_writer[src]) first_grad_writer[src] = j;
        }
        /* a QAT conv with a folded BN reads its output (the fold's gradient) */
        if (lk->backward_reads_output || node->fold_bn) last_bwd_read[j] = 2 * n - 1 - j;
    }
    for (int j = 0; j < n; j++) {
        const ics_node *node = &m->nodes[j];
        for (int k = 0; k < node->num_inputs; k++) {
            int src = node->inputs[k];
            /* add(x, x) would see the same input twice: only k = 0 is first */
            p->nodes[j].input_grad_first[k] =
                first_grad_writer[src] == j && !(k == 1 && node->inputs[0] == src);
        }
    }

    /* alias[j] = i when ReLU j runs in place on node i's output (or j is
     * a member of head i's fused group in an inference plan); a buffer
     * lives from step first_step[i] (node i's own step unless an
     * evaluation forward of a fused group writes it earlier) */
    int *consumers = ics_calloc((size_t)n, sizeof *consumers, "plan lifetimes", err);
    int *alias = ics_calloc((size_t)n, sizeof *alias, "plan lifetimes", err);
    int *first_step = ics_calloc((size_t)n, sizeof *first_step, "plan lifetimes", err);
    if (!consumers || !alias || !first_step) {
        free(consumers);
        free(alias);
        free(first_step);
        free(last_fwd);
        free(last_bwd_read);
        free(first_grad_writer);
        free(bufs);
        free(scratch);
        ics_plan_free(p);
        return ICS_ERR_NOMEM;
    }
    for (int j = 0; j < n; j++)
        for (int k = 0; k < m->nodes[j].num_inputs; k++) consumers[m->nodes[j].inputs[k]]++;
    for (int j = 0; j < n; j++) {
        const ics_node *node = &m->nodes[j];
        alias[j] = -1;
        if (node->kind != ICS_OP_RELU && node->kind != ICS_OP_RELU6 && node->kind != ICS_OP_FAKE_QUANT) continue;
        int src = node->inputs[0];
        if (src > 0 && consumers[src] == 1 && !ics_layer_kind_of(m->nodes[src].kind)->backward_reads_output &&
            !m->nodes[src].fold_bn && alias[src] < 0)
            alias[j] = src;
    }
    find_fused_groups(m, consumers, p);
    for (int j = 0; j < n; j++) first_step[j] = j;
    for (int i = 0; i < n; i++) {
        int last = p->nodes[i].fused_last;
        if (last < 0) continue;
        if (!training) {
            for (int k = i + 1; k <= last; k++) alias[k] = i;
        } else {
            int owner = alias[last] >= 0 ? alias[last] : last;
            first_step[owner] = i;
        }
    }
    /* an aliased buffer lives until the last use of either output */
    for (int j = n - 1; j >= 0; j--)
        if (alias[j] >= 0) {
            int src = alias[j];
            int last_j = j == n - 1 ? end : last_fwd[j];
            if (training && last_bwd_read[j] > last_j) last_j = last_bwd_read[j];
            if (last_j > last_fwd[src]) last_fwd[src] = last_j;
        }

    size_t ws = 0;
    for (int i = 0; i < n; i++) {
        const ics_node *node = &m->nodes[i];
        const ics_layer_kind *lk = ics_layer_kind_of(node->kind);
        size_t act_bytes = align_up((size_t)max_batch * (size_t)ics_node_numel(node) * sizeof(float));
        /* output */
        int last = last_fwd[i];
        if (i == n - 1) last = end;
        if (training && last_bwd_read[i] > last) last = last_bwd_read[i];
        if (alias[i] < 0) bufs[nb++] = (buf){act_bytes, first_step[i], last, 0, &p->nodes[i].out};
        /* output gradient: written first by the backward of the latest
         * consumer, read by this node's backward. The input node needs none
         * (nothing learns from the image), nor do the logits (the caller's
         * dlogits). */
        if (training && i > 0 && i < n - 1 && first_grad_writer[i] >= 0)
            bufs[nb++] = (buf){act_bytes, 2 * n - 1 - first_grad_writer[i], 2 * n - 1 - i, 0,
                               &p->nodes[i].grad};
        /* saved */
        size_t saved = lk->saved_bytes ? lk->saved_bytes(node, node->num_inputs ? &m->nodes[node->inputs[0]] : NULL, max_batch, training) : 0;
        if (saved)
            bufs[nb++] = (buf){align_up(saved), i, training ? 2 * n - 1 - i : i, 0,
                               &p->nodes[i].saved};
        /* gradients that are accumulated, not first written, go through
         * the scratch; so do inputs whose op cannot skip dx */
        if (training && i > 0)
            for (int k = 0; k < node->num_inputs; k++) {
                int src = node->inputs[k];
                if (!p->nodes[i].input_grad_first[k] || (src == 0 && !lk->dx_may_be_null)) {
                    size_t b = align_up((size_t)max_batch * (size_t)ics_node_numel(&m->nodes[src]) * sizeof(float));
                    if (b > scratch_bytes) scratch_bytes = b;
                }
            }
        if (node->kind == ICS_OP_CONV2D) {
            ics_conv2d_desc d;
            ics_nn_conv2d_desc(node, &m->nodes[node->inputs[0]], max_batch, &d);
            size_t w = m->ops->conv2d_workspace_bytes(&d);
            if (w > ws) ws = w;
        }
    }
    if (scratch_bytes) bufs[nb++] = (buf){scratch_bytes, n, end, 0, &p->scratch};
    else p->scratch = NONE;
    free(last_fwd);
    free(last_bwd_read);
    free(first_grad_writer);

    size_t total = place(bufs, nb, scratch);
    for (int i = 0; i < nb; i++) *bufs[i].target = bufs[i].offset;
    for (int j = 0; j < n; j++)
        if (alias[j] >= 0) p->nodes[j].out = p->nodes[alias[j]].out;
    free(consumers);
    free(alias);
    free(first_step);
    free(bufs);
    free(scratch);

    p->arena = ics_malloc_aligned(total ? total : ALIGN, "activation arena", err);
    p->workspace = ics_malloc_aligned(ws ? ws : ALIGN, "conv workspace", err);
    if (!p->arena || !p->workspace) {
        ics_plan_free(p);
        return ICS_ERR_NOMEM;
    }
    p->arena_bytes = total;
    p->workspace_bytes = ws;
    p->max_batch = max_batch;
    p->training = training;
    p->planned = 1;
    ICS_DEBUG("model %s: planned batch %d %s: arena %.1f MiB, workspace %.1f MiB, %d fused groups",
              m->arch, max_batch, training ? "training" : "inference", (double)total / 1048576.0,
              (double)ws / 1048576.0, p->fused_groups);
    return ICS_OK;
}
