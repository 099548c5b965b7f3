/*
 * src/log/logger.c: the logger table and the calls that dispatch through it.
 */
#include "ics_build_config.h"
#include "log/logger.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ics_logger {
    const ics_logger_ops *ops;
    void *state;
};

static const ics_logger_ops *const loggers[] = {&ics_logger_jsonl, &ics_logger_tensorboard};

const ics_logger_ops *ics_logger_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof loggers / sizeof *loggers; i++)
        if (strcmp(loggers[i]->name, name) == 0) return loggers[i];
    return NULL;
}

ics_status ics_logger_open(ics_logger **out, const char *kind, const char *dir, ics_error *err)
{
    *out = NULL;
    const ics_logger_ops *ops = ics_logger_find(kind);
    if (!ops) return ICS_FAIL(err, ICS_ERR_INVALID, "unknown logger '%s' (known: jsonl, tensorboard)", kind ? kind : "(null)");
    ics_logger *lg = ics_malloc(sizeof *lg, "logger", err);
    if (!lg) return ICS_ERR_NOMEM;
    lg->ops = ops;
    ics_status st = ops->open(&lg->state, dir, err);
    if (st != ICS_OK) {
        free(lg);
        return st;
    }
    *out = lg;
    return ICS_OK;
}

ics_status ics_logger_scalar(ics_logger *lg, const char *tag, int64_t step, double epoch, double value,
                             ics_error *err)
{
    return lg->ops->scalar(lg->state, tag, step, epoch, value, err);
}

ics_status ics_logger_flush(ics_logger *lg, ics_error *err) { return lg->ops->flush(lg->state, err); }

ics_status ics_logger_close(ics_logger *lg, ics_error *err)
{
    if (!lg) return ICS_OK;
    ics_status st = lg->ops->close(lg->state, err);
    free(lg);
    return st;
}

ics_status ics_log_mkdirs(const char *dir, ics_error *err)
{
    if (!dir || !*dir) return ICS_FAIL(err, ICS_ERR_INVALID, "logger: empty directory name");
    char *path = ics_strdup(dir, err);
    if (!path) return ICS_ERR_NOMEM;
    ics_status st = ICS_OK;
    /* Create each prefix ending before a '/', then the whole path. */
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            st = ICS_FAIL(err, ICS_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
            break;
        }
        *p = saved;
        if (saved == '\0') break;
    }
    if (st == ICS_OK) {
        struct stat sb;
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = ICS_FAIL(err, ICS_ERR_IO, "%s exists and is not a directory", dir);
    }
    free(path);
    return st;
}
