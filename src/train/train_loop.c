/*
 * The training loop: micro-batches, gradient accumulation, DDP averaging,
 * optimizer steps, per-epoch evaluation and checkpoints, preemption.
 *
 * Counting follows optimizer steps, never micro-batches: an epoch has
 * steps_per_epoch = ceil(batches_per_epoch / accum_steps) optimizer steps
 * (the last window of an epoch may hold fewer micro-batches), and the
 * fractional epoch is global_step / steps_per_epoch, the x axis of every
 * metric and the clock of the LR schedule (and of recipes).
 */
#include "ics_build_config.h"
#include "train/trainer_internal.h"

#include "backend/backend.h"
#include "core/log.h"
#include "dist/dist.h"
#include "train/preempt.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double ics_train_epoch_of(const ics_trainer *t, int64_t step)
{
    return (double)step / (double)t->steps_per_epoch;
}

double ics_train_sparsity(ics_trainer *t)
{
    return ics_model_sparsity(t->model);
}

/* Running sums of the current logging window (this rank). */
typedef struct window {
    double loss_sum, top1_sum;
    int64_t samples, steps;
    double start_time;
} window;

/* Forward, loss and backward of one replica on its slice of the
 * micro-batch; gradients accumulate in the replica's own slab. */
static void replica_pass(ics_trainer *t, ics_replica *rep, float scale)
{
    const ics_backend_ops *ops = ics_backend_cpu();
    int classes = t->num_classes;
    rep->loss_sum = rep->top1_sum = 0;
    rep->status = ICS_OK;
    if (rep->n == 0) return;
    const float *logits = NULL;
    rep->status = ics_model_forward(rep->model, rep->x, rep->n, &logits, &rep->err);
    if (rep->status) return;
    float loss;
    if (t->manager) {
        /* The recipe's loss: cross-entropy, or mixed with distillation from
         * the teacher's logits on the same images while a
         * DistillationModifier is active. */
        double epoch = ics_train_epoch_of(t, t->global_step);
        const float *teacher_logits = NULL;
        if (t->teacher && ics_manager_distillation_active(t->manager, epoch)) {
            rep->status = ics_model_forward(t->teacher, rep->x, rep->n, &teacher_logits, &rep->err);
            if (rep->status) return;
        }
        loss = ics_manager_loss(t->manager, epoch, rep->n, classes, logits, rep->y, teacher_logits,
                                (float)t->label_smoothing, scale, rep->dlogits, rep->probs);
    } else {
        loss = ops->softmax_xent_forward(rep->n, classes, logits, rep->y, (float)t->label_smoothing, rep->probs);
    }
    if (!isfinite(loss)) {
        rep->status = ICS_FAIL(&rep->err, ICS_ERR_RUNTIME, "the loss is %g at step %lld: training diverged (lower optim.lr?)",
                               (double)loss, (long long)t->global_step);
        return;
    }
    if (!t->manager)
        ops->softmax_xent_backward(rep->n, classes, rep->probs, rep->y, (float)t->label_smoothing, scale, rep->dlogits);
    rep->loss_sum = (double)loss * rep->n;
    for (int i = 0; i < rep->n; i++) rep->top1_sum += ics_topk_hit(logits + (size_t)i * classes, classes, rep->y[i], 1);
    rep->status = ics_model_backward(rep->model, rep->dlogits, &rep->err);
}

typedef struct replica_job {
    ics_trainer *t;
    ics_replica *rep;
    float scale;
} replica_job;

static void *replica_thread(void *arg)
{
    replica_job *job = arg;
    /* This thread's kernels run single-threaded: the replicas are the
     * parallelism (one per core). */
    ics_backend_cpu_set_threads(1);
    replica_pass(job->t, job->rep, job->scale);
    return NULL;
}

/* Runs every replica on its slice of (x, y, n): replica r takes rows
 * [r*B, (r+1)*B) of the micro-batch (the last ones may get fewer or none). */
static ics_status run_replicas(ics_trainer *t, const float *x, const int32_t *y, int n, float scale, window *win,
                               ics_error *err)
{
    size_t row = (size_t)t->height * t->width * t->channels;
    int nr = t->nreplicas;
    for (int r = 0; r < nr; r++) {
        ics_replica *rep = &t->replicas[r];
        int first = r * t->batch_size;
        rep->n = first >= n ? 0 : (n - first < t->batch_size ? n - first : t->batch_size);
        rep->x = x + (size_t)first * row;
        rep->y = y + first;
    }
    if (nr == 1) {
        replica_pass(t, &t->replicas[0], scale);
    } else {
        pthread_t threads[ICS_MAX_REPLICAS];
        replica_job jobs[ICS_MAX_REPLICAS];
        int started[ICS_MAX_REPLICAS] = {0};
        for (int r = 1; r < nr; r++) {
            jobs[r] = (replica_job){t, &t->replicas[r], scale};
            started[r] = pthread_create(&threads[r], NULL, replica_thread, &jobs[r]) == 0;
            if (!started[r]) replica_pass(t, &t->replicas[r], scale); /* no thread: run it here */
        }
        replica_pass(t, &t->replicas[0], scale);
        for (int r = 1; r < nr; r++)
            if (started[r]) pthread_join(threads[r], NULL);
    }
    for (int r = 0; r < nr; r++) {
        ics_replica *rep = &t->replicas[r];
        if (rep->status) {
            if (err) *err = rep->err;
            return rep->status;
        }
        win->loss_sum += rep->loss_sum;
        win->top1_sum += rep->top1_sum;
        win->samples += rep->n;
    }
    return ICS_OK;
}

/* Replicas' gradients summed into replica 0 and averaged (the in-process
 * half of the data-parallel mean; DDP averages over ranks after). */
static void reduce_replicas(ics_trainer *t)
{
    if (t->nreplicas == 1) return;
    size_t n = 0;
    float *g0 = ics_model_grads(t->model, &n);
    for (int r = 1; r < t->nreplicas; r++) {
        const float *g = ics_model_grads(t->replicas[r].model, NULL);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) g0[i] += g[i];
        ics_model_zero_grad(t->replicas[r].model);
    }
    float inv = 1.0f / (float)t->nreplicas;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g0[i] *= inv;
}

/* After the update, every replica takes replica 0's parameters, BN
 * statistics and QAT structure and observers (what DataParallel's
 * broadcast before each forward does). */
static ics_status broadcast_replicas(ics_trainer *t, ics_error *err)
{
    size_t np = 0, nb = 0, nc = 0;
    const float *p0 = ics_model_params(t->model, &np);
    const float *b0 = ics_model_buffers(t->model, &nb);
    const int64_t *c0 = ics_model_counters(t->model, &nc);
    for (int r = 1; r < t->nreplicas; r++) {
        ics_model *m = t->replicas[r].model;
        memcpy(ics_model_params(m, NULL), p0, np * sizeof *p0);
        if (nb) memcpy(ics_model_buffers(m, NULL), b0, nb * sizeof *b0);
        if (nc) memcpy(ics_model_counters(m, NULL), c0, nc * sizeof *c0);
        ics_status st = ics_model_qat_prepare_like(m, t->model, err);
        if (st) return st;
    }
    return ICS_OK;
}

/* QAT observers see each rank's own batches; like torch's DDP (which
 * broadcasts module buffers before every forward), rank 0's quantizer
 * state is everyone's after each step. */
static ics_status broadcast_qat_state(ics_trainer *t, ics_error *err)
{
    size_t n = 0;
    float *state = ics_model_qat_state(t->model, &n);
    if (t->world <= 1 || n == 0) return ICS_OK;
    return ics_dist_bcast(state, n * sizeof *state, 0, err);
}

/* One optimizer step: up to accum_steps micro-batches, the gradients
 * averaged over replicas and ranks, clipped, and the update at the
 * scheduled lr. *got is 0 when the epoch had no batch left. */
static ics_status train_step(ics_trainer *t, int64_t *batch_in_epoch, window *win, int *got, ics_error *err)
{
    float scale = 1.0f / (float)t->accum_steps;
    *got = 0;
    for (int r = 0; r < t->nreplicas; r++)
        ics_model_set_dropout_seed(t->replicas[r].model,
                                   (uint64_t)ics_config_int(t->cfg, "run.seed") * 1000003u + (uint64_t)t->global_step,
                                   t->rank * t->nreplicas + r);
    for (int micro = 0; micro < t->accum_steps; micro++) {
        const float *x = NULL;
        const int32_t *y = NULL;
        int n = 0;
        ics_status st = ics_train_data_next(t, &x, &y, &n, err);
        if (st) return st;
        if (n == 0) break;
        (*batch_in_epoch)++;
        *got += n;
        /* The last micro-batch of the window starts the all-reduce. */
        int last = micro == t->accum_steps - 1 || *batch_in_epoch >= t->batches_per_epoch;
        if (last) ics_ddp_begin(t->ddp);
        t->ddp_armed = last && t->ddp_overlap;
        st = run_replicas(t, x, y, n, scale, win, err);
        t->ddp_armed = 0;
        if (st) return st;
        if (last) break;
    }
    if (*got == 0) return ICS_OK;
    reduce_replicas(t);
    ics_status st = ics_ddp_finish(t->ddp, err);
    if (st) return st;
    if (t->clip_grad_norm > 0) {
        double norm = 0;
        ics_optim_clip_grad_norm(t->optim, t->clip_grad_norm, &norm);
    }
    double epoch = ics_train_epoch_of(t, t->global_step);
    if (!t->manager || !ics_manager_controls_lr(t->manager))
        ics_optim_set_lr(t->optim, ics_lr_schedule_at(&t->schedule, epoch));
    /* The recipe's modifiers: LR and WD, mask updates on schedule, masked
     * and frozen gradients zeroed; after the step the masks again. */
    int qat_before = ics_model_qat_active(t->model);
    if (t->manager && (st = ics_manager_before_step(t->manager, epoch, t->steps_per_epoch, err))) return st;
    if (!qat_before && ics_model_qat_active(t->model) && t->rank == 0 &&
        ics_config_bool(t->cfg, "train.amp"))
        ICS_INFO("train.amp: off from epoch %.3f on (quantization-aware training runs in float32)", epoch);
    ics_optim_step(t->optim);
    if (t->manager && (st = ics_manager_after_step(t->manager, epoch, err))) return st;
    ics_model_zero_grad(t->model);
    if ((st = broadcast_qat_state(t, err))) return st;
    if ((st = broadcast_replicas(t, err))) return st;
    t->global_step++;
    win->steps++;
    if (t->ema)
        ics_ema_maybe_update(t->ema, t->global_step, ics_train_epoch_of(t, t->global_step),
                             ics_model_params(t->model, NULL), ics_model_buffers(t->model, NULL));
    return ICS_OK;
}

/* Logs the window's averages over all ranks (a collective: every rank
 * calls it at the same steps). */
static ics_status log_window(ics_trainer *t, window *win, ics_error *err)
{
    double sums[3] = {win->loss_sum, win->top1_sum, (double)win->samples};
    ics_status st = ics_dist_allreduce_sum_f64(sums, 3, err);
    if (st) return st;
    double elapsed = now_seconds() - win->start_time;
    double loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    double top1 = sums[2] > 0 ? 100.0 * sums[1] / sums[2] : NAN;
    double ips = elapsed > 0 ? sums[2] / elapsed : 0;
    double lr = ics_optim_lr(t->optim);
    double steps_left = (double)(t->total_steps - t->global_step);
    double eta = win->steps > 0 ? steps_left * elapsed / (double)win->steps : 0;
    t->summary.train_images_per_sec = ips;
    if (t->rank == 0) {
        ics_train_progress(t, loss, top1, lr, ips, eta);
        if ((st = ics_train_log_scalar(t, "train/loss", loss, err))) return st;
        if ((st = ics_train_log_scalar(t, "train/top1", top1, err))) return st;
        if ((st = ics_train_log_scalar(t, "train/lr", lr, err))) return st;
        if ((st = ics_train_log_scalar(t, "train/images_per_sec", ips, err))) return st;
    }
    memset(win, 0, sizeof *win);
    win->start_time = now_seconds();
    return ICS_OK;
}

/* Rank 0's BN running statistics on every rank before evaluating or
 * saving: PyTorch's DDP broadcasts buffers from rank 0 before each forward,
 * so rank 0's statistics are the model's. */
static ics_status sync_buffers(ics_trainer *t, ics_error *err)
{
    size_t nb = 0, nc = 0;
    float *b = ics_model_buffers(t->model, &nb);
    int64_t *c = ics_model_counters(t->model, &nc);
    ics_status st = nb ? ics_dist_bcast(b, nb * sizeof *b, 0, err) : ICS_OK;
    if (!st && nc) st = ics_dist_bcast(c, nc * sizeof *c, 0, err);
    if (!st) st = broadcast_qat_state(t, err);
    return st;
}

static ics_status evaluate_split(ics_trainer *t, ics_model *model, const char *split, ics_eval_result *res,
                                 ics_error *err)
{
    ics_split_source src = {t->eval_readers, t->n_eval_readers, split};
    memset(res, 0, sizeof *res);
    res->loss = res->top1 = res->top5 = NAN;
    if (t->n_eval_readers == 0 || ics_split_rows(&src) == 0) return ICS_OK;
    return ics_evaluate(model, &src, t->batch_size, t->mean, t->std, 0, res, err);
}

static ics_status log_eval(ics_trainer *t, const char *prefix, const ics_eval_result *r, ics_error *err)
{
    if (t->rank != 0 || r->count == 0) return ICS_OK;
    char tag[64];
    ics_status st;
    snprintf(tag, sizeof tag, "%s/loss", prefix);
    if ((st = ics_train_log_scalar(t, tag, r->loss, err))) return st;
    snprintf(tag, sizeof tag, "%s/top1", prefix);
    if ((st = ics_train_log_scalar(t, tag, r->top1, err))) return st;
    snprintf(tag, sizeof tag, "%s/top5", prefix);
    return ics_train_log_scalar(t, tag, r->top5, err);
}

/* Evaluates the EMA weights (copied into the EMA model). */
static ics_status evaluate_ema(ics_trainer *t, const char *split, ics_eval_result *res, ics_error *err)
{
    size_t np = 0, nb = 0, nc = 0;
    float *p = ics_model_params(t->ema_model, &np);
    float *b = ics_model_buffers(t->ema_model, &nb);
    memcpy(p, ics_ema_params(t->ema), np * sizeof *p);
    if (nb) memcpy(b, ics_ema_buffers(t->ema), nb * sizeof *b);
    int64_t *c = ics_model_counters(t->ema_model, &nc);
    if (nc) memcpy(c, ics_model_counters(t->model, NULL), nc * sizeof *c);
    /* under QAT the EMA weights run with the model's quantizers */
    ics_status st = ics_model_qat_prepare_like(t->ema_model, t->model, err);
    if (st) return st;
    return evaluate_split(t, t->ema_model, split, res, err);
}

static ics_status end_of_epoch(ics_trainer *t, int final, ics_error *err)
{
    ics_status st = sync_buffers(t, err);
    if (st) return st;
    ics_eval_result val;
    if ((st = evaluate_split(t, t->model, "val", &val, err))) return st;
    if ((st = log_eval(t, "val", &val, err))) return st;
    if (t->ema && ics_ema_n_averaged(t->ema) > 0) {
        ics_eval_result ema_val;
        if ((st = evaluate_ema(t, "val", &ema_val, err))) return st;
        if ((st = log_eval(t, "val_ema", &ema_val, err))) return st;
    }
    double sparsity = ics_train_sparsity(t);
    t->summary.sparsity = sparsity;
    if (t->rank == 0 && (st = ics_train_log_scalar(t, "sparsity/overall", sparsity, err))) return st;
    if (t->manager && t->rank == 0) {
        enum { MAX_LAYERS = 512 };
        const char *names[MAX_LAYERS];
        double values[MAX_LAYERS];
        int n = ics_manager_sparsity(t->manager, names, values, MAX_LAYERS, NULL);
        for (int i = 0; i < n && i < MAX_LAYERS; i++) {
            char tag[256];
            snprintf(tag, sizeof tag, "sparsity/%s", names[i]);
            if ((st = ics_train_log_scalar(t, tag, values[i], err))) return st;
        }
    }
    double epoch = ics_train_epoch_of(t, t->global_step);
    t->summary.val_loss = val.loss;
    t->summary.val_top1 = val.top1;
    t->summary.val_top5 = val.top5;
    if (t->rank == 0 && val.count > 0)
        ICS_INFO("epoch %.2f: val loss %.4f top-1 %.2f%% top-5 %.2f%% (%lld images)", epoch, val.loss, val.top1,
                 val.top5, (long long)val.count);
    if ((st = ics_train_save(t, "last.h5", "last", &val, NULL, err))) return st;
    double save_best_after = ics_config_float(t->cfg, "train.save_best_after");
    if (val.count > 0 && epoch >= save_best_after && val.top1 > t->best_val_top1) {
        t->best_val_top1 = val.top1;
        t->summary.best_val_top1 = val.top1;
        if ((st = ics_train_save(t, "best.h5", "best", &val, NULL, err))) return st;
    }
    /* best_pruned: only once every pruning modifier has ended (the
     * sparsification step is complete), the best val top-1 since then. */
    if (t->manager && ics_manager_has_pruning(t->manager) && ics_manager_pruning_ended(t->manager, epoch) &&
        val.count > 0 && val.top1 > t->best_pruned_top1) {
        t->best_pruned_top1 = val.top1;
        if ((st = ics_train_save(t, "best_pruned.h5", "best_pruned", &val, NULL, err))) return st;
    }
    /* best_pruned_quantized: once pruning has ended and quantization is
     * active, the best val top-1 since then. */
    if (t->manager && ics_model_qat_active(t->model) && ics_manager_pruning_ended(t->manager, epoch) &&
        val.count > 0 && val.top1 > t->best_pruned_quantized_top1) {
        t->best_pruned_quantized_top1 = val.top1;
        if ((st = ics_train_save(t, "best_pruned_quantized.h5", "best_pruned_quantized", &val, NULL, err)))
            return st;
    }
    long long keep = ics_config_int(t->cfg, "train.keep_last");
    if (keep > 0 && !final) {
        char name[64];
        snprintf(name, sizeof name, "epoch-%04lld.h5", (long long)llround(epoch));
        if ((st = ics_train_save(t, name, "epoch", &val, NULL, err))) return st;
        /* Keep the newest `keep` per-epoch checkpoints. */
        long long old = llround(epoch) - keep;
        if (t->rank == 0 && old >= 0) {
            char path[1300];
            snprintf(path, sizeof path, "%s/epoch-%04lld.h5", t->ckpt_dir, old);
            remove(path);
            ics_checkpoint_remove_parts(path, NULL); /* its shards, if written sharded */
        }
    }
    return ICS_OK;
}

/* Once per step, every rank learns whether to stop (a signal reached any
 * rank) or to write the timed checkpoint (rank 0's clock decides). */
static ics_status step_checks(ics_trainer *t, int *stop, int *checkpoint, ics_error *err)
{
    double minutes = ics_config_float(t->cfg, "train.checkpoint_every_minutes");
    double flags[2] = {ics_preempt_signal() != 0, 0};
    if (t->rank == 0 && minutes > 0 && now_seconds() - t->last_checkpoint_time > minutes * 60) flags[1] = 1;
    ics_status st = ics_dist_allreduce_max_f64(flags, 2, err);
    *stop = flags[0] > 0;
    *checkpoint = flags[1] > 0;
    return st;
}

ics_status ics_trainer_run(ics_trainer *t, ics_error *err)
{
    ics_status st = ICS_OK;
    int64_t spe = t->steps_per_epoch;
    t->last_checkpoint_time = now_seconds();
    if (t->rank == 0)
        ICS_INFO("training %s: %d ranks x %d replicas x batch %d x %d accumulation = %lld images per step, "
                 "%lld steps per epoch, %.2f epochs (%lld steps), from step %lld",
                 ics_model_arch(t->model), t->world, t->nreplicas, t->batch_size, t->accum_steps,
                 (long long)t->world * t->nreplicas * t->batch_size * t->accum_steps, (long long)spe, t->epochs,
                 (long long)t->total_steps, (long long)t->global_step);
    /* Replicas start from the weights the run starts from (initial,
     * resumed or imported); so does a "self" distillation teacher. */
    if ((st = broadcast_replicas(t, err))) return st;
    if (t->teacher && strcmp(ics_config_string(t->cfg, "distill.teacher"), "self") == 0) {
        size_t np = 0, nb = 0;
        memcpy(ics_model_params(t->teacher, NULL), ics_model_params(t->model, &np), np * sizeof(float));
        memcpy(ics_model_buffers(t->teacher, NULL), ics_model_buffers(t->model, &nb), nb * sizeof(float));
    }
    window win;
    memset(&win, 0, sizeof win);
    win.start_time = now_seconds();
    while (t->global_step < t->total_steps) {
        int64_t epoch = t->global_step / spe;
        if ((st = ics_train_data_epoch(t, epoch, err))) return st;
        /* Resuming inside an epoch: skip the micro-batches already used. */
        int64_t batch_in_epoch = 0;
        int64_t skip = (t->global_step - epoch * spe) * t->accum_steps;
        for (int64_t i = 0; i < skip; i++) {
            const float *x;
            const int32_t *y;
            int n;
            if ((st = ics_train_data_next(t, &x, &y, &n, err))) return st;
            batch_in_epoch++;
        }
        int64_t end = (epoch + 1) * spe < t->total_steps ? (epoch + 1) * spe : t->total_steps;
        while (t->global_step < end) {
            int got = 0;
            st = train_step(t, &batch_in_epoch, &win, &got, err);
            st = ics_dist_agree(st, err);
            if (st) return st;
            if (got == 0) break; /* every rank has the same batch count */
            if (t->global_step % t->log_every == 0 && (st = log_window(t, &win, err))) return st;
            /* train.eval_every_steps: val figures between epoch ends too. */
            long long every = ics_config_int(t->cfg, "train.eval_every_steps");
            if (every > 0 && t->global_step % every == 0 && t->global_step % spe != 0) {
                ics_eval_result mid;
                if ((st = sync_buffers(t, err))) return st;
                if ((st = evaluate_split(t, t->model, "val", &mid, err))) return st;
                if ((st = log_eval(t, "val", &mid, err))) return st;
            }
            int stop = 0, checkpoint = 0;
            if ((st = step_checks(t, &stop, &checkpoint, err))) return st;
            if (stop || checkpoint) {
                if ((st = sync_buffers(t, err))) return st;
                if ((st = ics_train_save(t, "last.h5", "last", NULL, NULL, err))) return st;
                t->last_checkpoint_time = now_seconds();
            }
            if (stop) {
                ics_train_progress_done(t);
                if (t->rank == 0)
                    ICS_WARN("signal %d: stopped at step %lld (epoch %.3f); %s/last.h5 resumes the run",
                             ics_preempt_signal(), (long long)t->global_step, ics_train_epoch_of(t, t->global_step),
                             t->ckpt_dir);
                return ICS_FAIL(err, ICS_ERR_INTERRUPTED, "preempted by signal %d: checkpoint written to %s/last.h5",
                                ics_preempt_signal(), t->ckpt_dir);
            }
        }
        ics_train_progress_done(t);
        if (win.steps > 0 && (st = log_window(t, &win, err))) return st;
        if ((st = end_of_epoch(t, t->global_step >= t->total_steps, err))) return st;
        for (int i = 0; i < t->nloggers; i++)
            if ((st = ics_logger_flush(t->loggers[i], err))) return st;
    }
    t->summary.global_step = t->global_step;
    t->summary.epoch = ics_train_epoch_of(t, t->global_step);
    if (t->manager && (st = ics_manager_finalize(t->manager, err))) return st;
    if (ics_config_bool(t->cfg, "train.test_at_end")) {
        if ((st = sync_buffers(t, err))) return st;
        ics_eval_result test;
        if ((st = evaluate_split(t, t->model, "test", &test, err))) return st;
        if ((st = log_eval(t, "test", &test, err))) return st;
        t->summary.test_loss = test.loss;
        t->summary.test_top1 = test.top1;
        t->summary.test_top5 = test.top5;
        if (t->rank == 0 && test.count > 0)
            ICS_INFO("test: loss %.4f top-1 %.2f%% top-5 %.2f%% (%lld images)", test.loss, test.top1, test.top5,
                     (long long)test.count);
        ics_eval_result val = {t->summary.val_loss, t->summary.val_top1, t->summary.val_top5, 0};
        if ((st = ics_train_save(t, "last.h5", "last", &val, &test, err))) return st;
    }
    for (int i = 0; i < t->nloggers; i++)
        if ((st = ics_logger_flush(t->loggers[i], err))) return st;
    return ics_train_write_results(t, err);
}
