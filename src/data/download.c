/* Downloads with libcurl, verified by SHA-256: see download.h. */
#include "ics_build_config.h"
#include "data/download.h"
#include "data/sha256.h"
#include "data/source.h"
#include "core/alloc.h"
#include "core/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DOWNLOAD_ATTEMPTS 4

typedef struct transfer {
    FILE *out;
    const ics_download_options *options;
    curl_off_t resumed_from;
} transfer;

static size_t write_body(char *data, size_t size, size_t count, void *ctx)
{
    transfer *t = ctx;
    return fwrite(data, size, count, t->out);
}

static int report_progress(void *ctx, curl_off_t total, curl_off_t now, curl_off_t up_total, curl_off_t up_now)
{
    (void)up_total;
    (void)up_now;
    transfer *t = ctx;
    if (t->options && t->options->progress && total > 0)
        t->options->progress(t->options->progress_ctx, "download", (int64_t)(t->resumed_from + now),
                             (int64_t)(t->resumed_from + total));
    return 0;
}

static int valid_hex(const char *s)
{
    if (!s || strlen(s) != 64) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))) return 0;
    return 1;
}

/* One attempt: appends to part from its current size. Returns ICS_OK,
 * or an error; *retry says whether another attempt may help. */
static ics_status attempt(const char *url, const char *part, const ics_download_options *options, int *retry,
                          ics_error *err)
{
    *retry = 0;
    struct stat sb;
    curl_off_t have = stat(part, &sb) == 0 ? (curl_off_t)sb.st_size : 0;
    FILE *out = fopen(part, have ? "ab" : "wb");
    if (!out) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write: %s", part, strerror(errno));
    CURL *curl = curl_easy_init();
    if (!curl) {
        fclose(out);
        return ICS_FAIL(err, ICS_ERR_RUNTIME, "libcurl cannot start");
    }
    transfer t = {out, options, have};
    char curl_error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, report_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled transfer (under 1 KiB/s for 60 s) is abandoned and retried. */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "icsparse-convert/" PACKAGE_VERSION);
    if (have) curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, have);
    CURLcode rc = curl_easy_perform(curl);
    long http = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(curl);
    int closed = fclose(out);
    if (rc == CURLE_OK && closed != 0) return ICS_FAIL(err, ICS_ERR_IO, "%s: write failed", part);
    if (rc == CURLE_OK) return ICS_OK;
    if (have && (http == 416 || rc == CURLE_RANGE_ERROR)) {
        /* The server cannot resume (or the part is already whole): start over. */
        remove(part);
        *retry = 1;
        return ICS_FAIL(err, ICS_ERR_IO, "%s: resume refused (HTTP %ld)", url, http);
    }
    /* Client errors (404, 403) will not get better by retrying. */
    *retry = !(http >= 400 && http < 500);
    return ICS_FAIL(err, ICS_ERR_IO, "%s: download failed: %s%s", url,
                    curl_error[0] ? curl_error : curl_easy_strerror(rc), *retry ? "" : " (not retried)");
}

ics_status ics_download_file(const char *url, const char *dest, const char *sha256,
                             const ics_download_options *options, ics_error *err)
{
    if (!valid_hex(sha256))
        return ICS_FAIL(err, ICS_ERR_CONFIG,
                        "%s: no SHA-256 to verify it against; pass --sha256 with the digest you trust", url);
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
            return ICS_FAIL(err, ICS_ERR_RUNTIME, "libcurl cannot initialize");
        curl_ready = 1;
    }
    size_t n = strlen(dest) + 8;
    char *part = ics_malloc(n, "path", err);
    if (!part) return ICS_ERR_NOMEM;
    snprintf(part, n, "%s.part", dest);
    ics_status st = ICS_OK;
    for (int i = 0; i < DOWNLOAD_ATTEMPTS; i++) {
        int retry;
        st = attempt(url, part, options, &retry, err);
        if (!st || !retry) break;
        if (i + 1 < DOWNLOAD_ATTEMPTS) {
            /* Backoff 1, 2, 4 s: short enough for tests, long enough for a blip. */
            ICS_WARN("%s; retrying in %d s", err ? err->message : url, 1 << i);
            struct timespec ts = {1 << i, 0};
            nanosleep(&ts, NULL);
        }
    }
    char hex[65];
    if (!st) st = ics_sha256_file(part, hex, err);
    if (!st && strcasecmp(hex, sha256) != 0) {
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: SHA-256 mismatch: got %s, expected %s; refused and removed", url,
                      hex, sha256);
        remove(part);
    }
    if (!st && rename(part, dest) != 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot rename from %s: %s", dest, part, strerror(errno));
    free(part);
    return st;
}

static ics_status mkdirs(const char *path, ics_error *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    return ICS_OK;
}

ics_status ics_download_entry(const ics_catalog_entry *entry, const char *data_dir,
                              const ics_download_options *options, ics_error *err)
{
    char *dir = ics_source_download_dir(entry, data_dir, err);
    if (!dir) return ICS_ERR_NOMEM;
    ics_status st = mkdirs(dir, err);
    const char *base = getenv("ICSPARSE_DOWNLOAD_BASE");
    for (int i = 0; !st && i < entry->file_count; i++) {
        const ics_catalog_file *f = &entry->files[i];
        char dest[4096], url[4096];
        snprintf(dest, sizeof dest, "%s/%s", dir, f->name);
        struct stat sb;
        if (stat(dest, &sb) == 0) continue; /* verified when it was downloaded */
        if (base && *base) {
            const char *slash = strrchr(f->url, '/');
            snprintf(url, sizeof url, "%s/%s", base, slash ? slash + 1 : f->url);
        } else {
            snprintf(url, sizeof url, "%s", f->url);
        }
        const char *digest = f->sha256;
        if (!digest && entry->file_count > 1) {
            st = ICS_FAIL(err, ICS_ERR_CONFIG,
                          "%s: no SHA-256 is pinned for its %d files, so they are not downloaded; fetch them yourself and give --source",
                          entry->name, entry->file_count);
            break;
        }
        if (!digest && options && options->sha256) digest = options->sha256;
        ICS_INFO("downloading %s", url);
        st = ics_download_file(url, dest, digest, options, err);
    }
    free(dir);
    return st;
}
