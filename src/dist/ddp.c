/* Bucketed, overlapped gradient all-reduce: see ddp.h. */
#include "ics_build_config.h"
#include "dist/ddp.h"
#include "core/alloc.h"
#include "dist/dist.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

typedef struct bucket {
    size_t lo, hi;        /* slab range [lo, hi) in floats */
    int tensors_left;     /* tensors not final yet in this step */
    int tensors_total;
    int started;
    MPI_Request request;
} bucket;

struct ics_ddp {
    ics_model *model;
    float *grads;
    bucket *buckets;
    int nbuckets;
    int *bucket_of_tensor; /* -1 for tensors without gradients */
    int world;
};

int ics_ddp_bucket_count(const ics_ddp *ddp) { return ddp->nbuckets; }

static int has_grad(const ics_tensor_info *t)
{
    return t->kind != ICS_TENSOR_BUFFER && t->kind != ICS_TENSOR_COUNTER;
}

ics_status ics_ddp_create(ics_model *model, size_t bucket_bytes, ics_ddp **out, ics_error *err)
{
    *out = NULL;
    if (bucket_bytes == 0) bucket_bytes = (size_t)4 << 20;
    ics_ddp *d = ics_calloc(1, sizeof *d, "DDP state", err);
    if (!d) return ICS_ERR_NOMEM;
    int nt = ics_model_num_tensors(model);
    d->model = model;
    d->grads = ics_model_grads(model, NULL);
    d->world = ics_dist_size();
    d->bucket_of_tensor = ics_malloc(sizeof(int) * (size_t)(nt ? nt : 1), "DDP tensor map", err);
    d->buckets = ics_calloc((size_t)(nt ? nt : 1), sizeof(bucket), "DDP buckets", err);
    if (!d->bucket_of_tensor || !d->buckets) {
        ics_ddp_destroy(d);
        return ICS_ERR_NOMEM;
    }
    /* Walk tensors from the last: a bucket closes when it holds at least
     * bucket_bytes. Parameters are laid out in tensor order in the slab, so
     * each bucket is one contiguous range. */
    bucket *cur = NULL;
    for (int i = nt - 1; i >= 0; i--) {
        const ics_tensor_info *t = ics_model_tensor(model, i);
        d->bucket_of_tensor[i] = -1;
        if (!has_grad(t)) continue;
        if (!cur || (cur->hi - cur->lo) * sizeof(float) >= bucket_bytes) {
            cur = &d->buckets[d->nbuckets++];
            cur->lo = t->offset;
            cur->hi = t->offset + (size_t)t->numel;
        }
        if (t->offset < cur->lo) cur->lo = t->offset;
        if (t->offset + (size_t)t->numel > cur->hi) cur->hi = t->offset + (size_t)t->numel;
        cur->tensors_total++;
        d->bucket_of_tensor[i] = d->nbuckets - 1;
    }
    *out = d;
    return ICS_OK;
}

void ics_ddp_destroy(ics_ddp *ddp)
{
    if (!ddp) return;
    free(ddp->bucket_of_tensor);
    free(ddp->buckets);
    free(ddp);
}

void ics_ddp_begin(ics_ddp *ddp)
{
    for (int b = 0; b < ddp->nbuckets; b++) {
        ddp->buckets[b].tensors_left = ddp->buckets[b].tensors_total;
        ddp->buckets[b].started = 0;
        ddp->buckets[b].request = MPI_REQUEST_NULL;
    }
}

static ics_status start_bucket(ics_ddp *ddp, bucket *b, ics_error *err)
{
    b->started = 1;
    if (ddp->world <= 1) return ICS_OK;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, ddp->grads + b->lo, (int)(b->hi - b->lo), MPI_FLOAT, MPI_SUM,
                            MPI_COMM_WORLD, &b->request);
    if (rc != MPI_SUCCESS)
        return ICS_FAIL(err, ICS_ERR_MPI, "gradient all-reduce could not start on rank %d", ics_dist_rank());
    return ICS_OK;
}

/* Lets MPI move the reductions in flight along (Open MPI progresses
 * non-blocking collectives only inside MPI calls). */
static void progress(ics_ddp *ddp)
{
    if (ddp->world <= 1) return;
    for (int b = 0; b < ddp->nbuckets; b++) {
        if (!ddp->buckets[b].started || ddp->buckets[b].request == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&ddp->buckets[b].request, &done, MPI_STATUS_IGNORE);
        break; /* one test is enough to run the progress engine */
    }
}

ics_status ics_ddp_node_done(ics_ddp *ddp, int node, ics_error *err)
{
    const ics_node *n = ics_model_node(ddp->model, node);
    for (int i = n->first_tensor; i < n->first_tensor + n->num_tensors; i++) {
        int bi = ddp->bucket_of_tensor[i];
        if (bi < 0) continue;
        bucket *b = &ddp->buckets[bi];
        if (--b->tensors_left == 0 && !b->started) {
            ics_status st = start_bucket(ddp, b, err);
            if (st) return st;
        }
    }
    progress(ddp);
    return ICS_OK;
}

ics_status ics_ddp_finish(ics_ddp *ddp, ics_error *err)
{
    for (int b = 0; b < ddp->nbuckets; b++) {
        if (!ddp->buckets[b].started) {
            ics_status st = start_bucket(ddp, &ddp->buckets[b], err);
            if (st) return st;
        }
    }
    if (ddp->world <= 1) return ICS_OK;
    float scale = 1.0f / (float)ddp->world;
    for (int b = 0; b < ddp->nbuckets; b++) {
        bucket *bk = &ddp->buckets[b];
        if (MPI_Wait(&bk->request, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return ICS_FAIL(err, ICS_ERR_MPI, "gradient all-reduce failed on rank %d", ics_dist_rank());
        float *g = ddp->grads + bk->lo;
        size_t n = bk->hi - bk->lo;
        for (size_t i = 0; i < n; i++) g[i] *= scale;
    }
    return ICS_OK;
}

ics_status ics_ddp_broadcast_model(ics_model *model, ics_error *err)
{
    size_t np = 0, nb = 0, nc = 0;
    float *p = ics_model_params(model, &np);
    float *b = ics_model_buffers(model, &nb);
    int64_t *c = ics_model_counters(model, &nc);
    ics_status st = ics_dist_bcast(p, np * sizeof *p, 0, err);
    if (!st && nb) st = ics_dist_bcast(b, nb * sizeof *b, 0, err);
    if (!st && nc) st = ics_dist_bcast(c, nc * sizeof *c, 0, err);
    return st;
}
