/* The logger: see log.h. */
#include "ics_build_config.h"
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int log_rank = -1;
static ics_log_level log_level = ICS_LOG_INFO;
static int log_verbose;
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void ics_log_set_rank(int rank) { log_rank = rank; }
int ics_log_rank(void) { return log_rank; }
void ics_log_set_level(ics_log_level level) { log_level = level; }
ics_log_level ics_log_get_level(void) { return log_level; }
void ics_log_set_verbose(int verbose) { log_verbose = verbose; }
int ics_log_verbose(void) { return log_verbose; }
void ics_log_set_stream(FILE *stream) { log_stream = stream; }

int ics_log_level_parse(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error", "quiet"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

static void vlog(ics_log_level level, const char *fmt, va_list ap)
{
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (level < log_level || level >= ICS_LOG_QUIET) return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    char rank[16];
    if (log_rank >= 0)
        snprintf(rank, sizeof rank, "%d", log_rank);
    else
        snprintf(rank, sizeof rank, "-");
    FILE *out = log_stream ? log_stream : stderr;
    pthread_mutex_lock(&log_lock);
    fprintf(out, "%s.%03d [rank %s] %s ", stamp, (int)(tv.tv_usec / 1000), rank, tags[level]);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
}

void ics_log(ics_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void ics_log_step(const char *fmt, ...)
{
    if (log_rank > 0 && !log_verbose) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(ICS_LOG_INFO, fmt, ap);
    va_end(ap);
}
