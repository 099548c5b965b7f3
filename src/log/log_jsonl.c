/*
 * src/log/log_jsonl.c: DIR/metrics.jsonl, one JSON object per optimizer
 * step that logged anything:
 *   {"step":120,"epoch":1.5,"Train/loss":0.4123,"Train/lr":0.1}
 * Scalars of the same step are gathered into one line, in the order they
 * were logged (a repeated tag keeps its place and takes the new value); the
 * line is written when a scalar of another step arrives, or at flush/close.
 *
 * Robustness: each line is formatted in memory and written with one
 * fwrite then flushed, so a crash leaves at most one partial last line; the
 * file is opened for appending (a resumed run continues it) and a partial
 * last line left by a crash is ended with a newline before anything is
 * added, so every complete line stays valid JSON. Numbers are written with
 * the fewest digits that read back to the same double; NaN and infinities
 * (not JSON) are written as null.
 */
#include "ics_build_config.h"
#include "core/alloc.h"
#include "log/logger.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *tag;
    double value;
} entry;

typedef struct {
    char *path;
    FILE *f;
    int pending;    /* a line is being gathered */
    int64_t step;
    double epoch;
    entry *entries;
    size_t n, cap;
    char *line;     /* formatting buffer */
    size_t line_cap;
} jsonl;

/* Appends text to the line buffer, growing it. */
static int line_put(jsonl *j, size_t *len, const char *text, size_t n, ics_error *err)
{
    if (*len + n + 2 > j->line_cap) {
        size_t cap = j->line_cap ? j->line_cap : 256;
        while (cap < *len + n + 2) cap *= 2;
        char *grown = ics_realloc(j->line, cap, "metrics.jsonl line", err);
        if (!grown) return 0;
        j->line = grown;
        j->line_cap = cap;
    }
    memcpy(j->line + *len, text, n);
    *len += n;
    return 1;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static int line_put_string(jsonl *j, size_t *len, const char *s, ics_error *err)
{
    if (!line_put(j, len, "\"", 1, err)) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t n = 0;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (*p == '\n') {
            n = (size_t)snprintf(esc, sizeof esc, "\\n");
        } else if (*p == '\t') {
            n = (size_t)snprintf(esc, sizeof esc, "\\t");
        } else if (*p < 0x20) {
            n = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p);
        } else {
            esc[0] = (char)*p;
            n = 1;
        }
        if (!line_put(j, len, esc, n, err)) return 0;
    }
    return line_put(j, len, "\"", 1, err);
}

/* The shortest %.Ng (N = 15..17) that reads back to exactly v. */
static int line_put_number(jsonl *j, size_t *len, double v, ics_error *err)
{
    char num[40];
    if (!isfinite(v)) return line_put(j, len, "null", 4, err);
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(num, sizeof num, "%.*g", digits, v);
        if (strtod(num, NULL) == v) break;
    }
    return line_put(j, len, num, strlen(num), err);
}

static ics_status write_pending(jsonl *j, ics_error *err)
{
    if (!j->pending) return ICS_OK;
    size_t len = 0;
    char head[64];
    int n = snprintf(head, sizeof head, "{\"step\":%lld,\"epoch\":", (long long)j->step);
    if (!line_put(j, &len, head, (size_t)n, err) || !line_put_number(j, &len, j->epoch, err)) return ICS_ERR_NOMEM;
    for (size_t i = 0; i < j->n; i++) {
        if (!line_put(j, &len, ",", 1, err) || !line_put_string(j, &len, j->entries[i].tag, err) ||
            !line_put(j, &len, ":", 1, err) || !line_put_number(j, &len, j->entries[i].value, err))
            return ICS_ERR_NOMEM;
    }
    if (!line_put(j, &len, "}\n", 2, err)) return ICS_ERR_NOMEM;
    for (size_t i = 0; i < j->n; i++) free(j->entries[i].tag);
    j->n = 0;
    j->pending = 0;
    if (fwrite(j->line, 1, len, j->f) != len || fflush(j->f) != 0)
        return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write: %s", j->path, strerror(errno));
    return ICS_OK;
}

static void jsonl_free(jsonl *j)
{
    for (size_t i = 0; i < j->n; i++) free(j->entries[i].tag);
    free(j->entries);
    free(j->line);
    free(j->path);
    free(j);
}

static ics_status jsonl_open(void **state, const char *dir, ics_error *err)
{
    *state = NULL;
    ics_status st = ics_log_mkdirs(dir, err);
    if (st != ICS_OK) return st;
    jsonl *j = ics_calloc(1, sizeof *j, "metrics.jsonl logger", err);
    if (!j) return ICS_ERR_NOMEM;
    j->path = ics_malloc(strlen(dir) + sizeof "/metrics.jsonl", "metrics.jsonl path", err);
    if (!j->path) {
        jsonl_free(j);
        return ICS_ERR_NOMEM;
    }
    sprintf(j->path, "%s/metrics.jsonl", dir);
    /* a+: appends; reading the last byte tells whether a crash cut a line. */
    j->f = fopen(j->path, "a+");
    if (!j->f) {
        st = ICS_FAIL(err, ICS_ERR_IO, "cannot open %s: %s", j->path, strerror(errno));
        jsonl_free(j);
        return st;
    }
    if (fseek(j->f, 0, SEEK_END) == 0 && ftell(j->f) > 0 && fseek(j->f, -1, SEEK_END) == 0) {
        int last = fgetc(j->f);
        fseek(j->f, 0, SEEK_END);
        if (last != '\n' && last != EOF && (fputc('\n', j->f) == EOF || fflush(j->f) != 0)) {
            st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write: %s", j->path, strerror(errno));
            fclose(j->f);
            jsonl_free(j);
            return st;
        }
    }
    *state = j;
    return ICS_OK;
}

static ics_status jsonl_scalar(void *state, const char *tag, int64_t step, double epoch, double value, ics_error *err)
{
    jsonl *j = state;
    if (strcmp(tag, "step") == 0 || strcmp(tag, "epoch") == 0)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: the tag '%s' is reserved for the x axis", j->path, tag);
    if (j->pending && step != j->step) {
        ics_status st = write_pending(j, err);
        if (st != ICS_OK) return st;
    }
    if (!j->pending) {
        j->pending = 1;
        j->step = step;
    }
    j->epoch = epoch;
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->entries[i].tag, tag) == 0) {
            j->entries[i].value = value;
            return ICS_OK;
        }
    if (j->n == j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 16;
        entry *grown = ics_realloc(j->entries, cap * sizeof *grown, "metrics.jsonl entries", err);
        if (!grown) return ICS_ERR_NOMEM;
        j->entries = grown;
        j->cap = cap;
    }
    char *copy = ics_strdup(tag, err);
    if (!copy) return ICS_ERR_NOMEM;
    j->entries[j->n].tag = copy;
    j->entries[j->n].value = value;
    j->n++;
    return ICS_OK;
}

static ics_status jsonl_flush(void *state, ics_error *err)
{
    jsonl *j = state;
    ics_status st = write_pending(j, err);
    if (st != ICS_OK) return st;
    if (fflush(j->f) != 0 || fsync(fileno(j->f)) != 0)
        return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot flush: %s", j->path, strerror(errno));
    return ICS_OK;
}

static ics_status jsonl_close(void *state, ics_error *err)
{
    jsonl *j = state;
    if (!j) return ICS_OK;
    ics_status st = write_pending(j, err);
    if (fclose(j->f) != 0 && st == ICS_OK)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write: %s", j->path, strerror(errno));
    jsonl_free(j);
    return st;
}

const ics_logger_ops ics_logger_jsonl = {"jsonl", jsonl_open, jsonl_scalar, jsonl_flush, jsonl_close};
