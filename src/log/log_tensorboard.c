/*
 * src/log/log_tensorboard.c: TensorBoard event files.
 *
 * Each open creates a new file DIR/events.out.tfevents.<10-digit unix
 * time>.<host>.<pid>.<n> (n counts up from 0 until the name is free, so
 * two writers in one second never share a file); TensorBoard merges every
 * file in the directory. A resumed run therefore starts a new file:
 * TensorBoard purges events whose step goes backwards within a file, and
 * the trainer keeps steps increasing across files.
 *
 * The first record is Event{file_version: "brain.Event:2"}, then one Event
 * per scalar with a Summary holding one simple_value (see tb_event.h),
 * each in TFRecord framing (tfrecord.h). Values are stored as float32,
 * TensorBoard's scalar type. Writes are buffered; flush() pushes them out.
 */
#include "ics_build_config.h"
#include "core/alloc.h"
#include "log/logger.h"
#include "log/tb_event.h"
#include "log/tfrecord.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *path;
    FILE *f;
    unsigned char event[ICS_TB_EVENT_MAX];
} tensorboard;

static double wall_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void tb_free(tensorboard *tb)
{
    free(tb->path);
    free(tb);
}

/* Creates the next free events.out.tfevents.* name (O_EXCL: never reuses
 * or truncates a file) and returns it open for writing. */
static ics_status create_file(tensorboard *tb, const char *dir, double now, ics_error *err)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    /* '/' would make the name a path; TensorBoard's writers keep the rest. */
    for (char *c = host; *c; c++)
        if (*c == '/') *c = '_';
    size_t cap = strlen(dir) + strlen(host) + 96;
    tb->path = ics_malloc(cap, "event file name", err);
    if (!tb->path) return ICS_ERR_NOMEM;
    for (int n = 0;; n++) {
        snprintf(tb->path, cap, "%s/events.out.tfevents.%010lld.%s.%ld.%d", dir, (long long)now, host,
                 (long)getpid(), n);
        tb->f = fopen(tb->path, "wbx"); /* C11 "x": O_EXCL */
        if (tb->f) return ICS_OK;
        if (errno != EEXIST) return ICS_FAIL(err, ICS_ERR_IO, "cannot create %s: %s", tb->path, strerror(errno));
    }
}

static ics_status tb_open(void **state, const char *dir, ics_error *err)
{
    *state = NULL;
    ics_status st = ics_log_mkdirs(dir, err);
    if (st != ICS_OK) return st;
    tensorboard *tb = ics_calloc(1, sizeof *tb, "tensorboard logger", err);
    if (!tb) return ICS_ERR_NOMEM;
    double now = wall_time_now();
    st = create_file(tb, dir, now, err);
    if (st == ICS_OK) {
        size_t n = ics_tb_encode_file_version(tb->event, now, 0, ICS_TB_FILE_VERSION);
        st = ics_tfrecord_write(tb->f, tb->path, tb->event, n, err);
        if (st == ICS_OK && fflush(tb->f) != 0)
            st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write: %s", tb->path, strerror(errno));
    }
    if (st != ICS_OK) {
        if (tb->f) fclose(tb->f);
        tb_free(tb);
        return st;
    }
    *state = tb;
    return ICS_OK;
}

static ics_status tb_scalar(void *state, const char *tag, int64_t step, double epoch, double value, ics_error *err)
{
    tensorboard *tb = state;
    (void)epoch;
    size_t n = ics_tb_encode_scalar(tb->event, wall_time_now(), step, tag, (float)value);
    if (n == 0)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: tag is longer than %d bytes: %.40s...", tb->path, ICS_TB_TAG_MAX,
                        tag);
    return ics_tfrecord_write(tb->f, tb->path, tb->event, n, err);
}

static ics_status tb_flush(void *state, ics_error *err)
{
    tensorboard *tb = state;
    if (fflush(tb->f) != 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot flush: %s", tb->path, strerror(errno));
    return ICS_OK;
}

static ics_status tb_close(void *state, ics_error *err)
{
    tensorboard *tb = state;
    if (!tb) return ICS_OK;
    ics_status st = ICS_OK;
    if (fclose(tb->f) != 0) st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot close: %s", tb->path, strerror(errno));
    tb_free(tb);
    return st;
}

const ics_logger_ops ics_logger_tensorboard = {"tensorboard", tb_open, tb_scalar, tb_flush, tb_close};
