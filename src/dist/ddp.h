/*
 * src/dist/ddp.h: data-parallel gradient averaging over MPI ranks, in
 * buckets started while backward is still running.
 *
 * The gradient slab is cut into buckets of consecutive tensors taken from
 * the END of the model (backward produces the last layers' gradients
 * first), each about bucket_bytes (PyTorch DDP's idea, with its 25 MiB
 * default scaled down to fit CPU caches). During the backward of the last
 * micro-batch of an optimizer step, the model reports each node whose
 * parameter gradients are final (ics_ddp_node_done); a bucket whose
 * tensors are all final starts a non-blocking MPI_Iallreduce at once, and
 * later reports push MPI's progress engine. ics_ddp_finish waits for every
 * bucket and divides by the world size, giving the average gradient, as
 * torch's DDP does. With one rank everything is a no-op.
 */
#ifndef ICS_DIST_DDP_H
#define ICS_DIST_DDP_H

#include <stddef.h>
#include <icsparse/model.h>
#include <icsparse/status.h>

typedef struct ics_ddp ics_ddp;

/* Buckets over the model's parameter gradients. bucket_bytes 0 = 4 MiB. */
ics_status ics_ddp_create(ics_model *model, size_t bucket_bytes, ics_ddp **out, ics_error *err);
void ics_ddp_destroy(ics_ddp *ddp);

/* Starts a step's reduction: every bucket pending, nothing in flight. */
void ics_ddp_begin(ics_ddp *ddp);
/* Node `node` finished its backward: its parameter gradients are final. */
ics_status ics_ddp_node_done(ics_ddp *ddp, int node, ics_error *err);
/* Starts what is left, waits for all buckets, averages (divides by the
 * world size). */
ics_status ics_ddp_finish(ics_ddp *ddp, ics_error *err);

/* Broadcasts parameters, buffers and counters from rank 0, so every rank
 * starts from identical weights. */
ics_status ics_ddp_broadcast_model(ics_model *model, ics_error *err);

int ics_ddp_bucket_count(const ics_ddp *ddp);

#endif
