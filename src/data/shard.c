/* Sharding with parallel HDF5 and the manifest: see shard.h. */
#include "ics_build_config.h"
#include "data/shard.h"
#include "data/dataset.h"
#include "data/rng.h"
#include "data/sha256.h"
#include "core/alloc.h"
#include "core/log.h"
#include "dist/dist.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MANIFEST_FORMAT "icsparse-shard-manifest"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
#define MANIFEST_VERSION 1

void ics_shard_path(char *buf, size_t size, const char *dir, int index, int count)
{
    snprintf(buf, size, "%s/part-%05d-of-%05d.h5", dir, index, count);
}

/* ---------------------------------------------------------------- manifest */

typedef struct text {
    char *data;
    size_t len, cap;
    int failed;
} text;

static void append(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->data && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *grown = realloc(t->data, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->data = grown;
        t->cap = cap;
    }
}

static void append_json_string(text *t, const char *s)
{
    append(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') append(t, "\\%c", *p);
        else if (*p < 0x20) append(t, "\\u%04x", *p);
        else append(t, "%c", *p);
    }
    append(t, "\"");
}

/* What the manifest says of one shard, as int64 so that ranks can sum
 * their parts with one all-reduce: the SHA-256 (32 bytes in 4 slots),
 * rows per split, then rows per split and class. */
static size_t record_stride(int num_classes)
{
    return 4 + 3 + 3 * (size_t)num_classes;
}

/* Fills the record of shard s (opened, checked, labels counted, hashed). */
static ics_status shard_record(const char *dir, int s, int count, uint64_t seed, int num_classes, int64_t *rec,
                               ics_error *err)
{
    char path[4096];
    ics_shard_path(path, sizeof path, dir, s, count);
    ics_dataset_reader *r;
    ics_status st = ics_dataset_open(path, &r, err);
    if (st) return st;
    const ics_dataset_meta *m = ics_dataset_reader_meta(r);
    if (!m->is_shard || m->shard_index != s || m->shard_count != count || m->seed != seed)
        st = ICS_FAIL(err, ICS_ERR_FORMAT,
                      "%s: shard attributes (index %d of %d, seed %llu) do not match its name and manifest (%d of %d, seed %llu)",
                      path, m->shard_index, m->shard_count, (unsigned long long)m->seed, s, count,
                      (unsigned long long)seed);
    else if (m->num_classes != num_classes)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %d classes, shard 0 has %d", path, m->num_classes, num_classes);
    for (int sp = 0; sp < 3 && !st; sp++) {
        int64_t n = ics_dataset_count(r, ics_dataset_splits[sp]);
        int32_t *labels = ics_malloc((size_t)(n > 0 ? n : 1) * sizeof *labels, "shard labels", err);
        if (!labels) {
            st = ICS_ERR_NOMEM;
            break;
        }
        if (n > 0) st = ics_dataset_read(r, ics_dataset_splits[sp], 0, n, NULL, labels, err);
        rec[4 + sp] = n;
        int64_t *per = rec + 7 + (size_t)sp * num_classes;
        for (int64_t i = 0; !st && i < n; i++) per[labels[i]]++;
        free(labels);
    }
    ics_dataset_close(r);
    char hex[65];
    uint8_t digest[32];
    if (!st) st = ics_sha256_file(path, hex, err);
    for (int i = 0; !st && i < 32; i++) {
        unsigned byte;
        sscanf(hex + 2 * i, "%2x", &byte);
        digest[i] = (uint8_t)byte;
    }
    if (!st) memcpy(rec, digest, 32);
    return st;
}

/* Builds the manifest text from the shard files in dir; collective when
 * MPI runs (shard s is read and hashed by rank s mod size), the text is
 * returned on every rank. dataset_path is recorded; when it can be opened,
 * totals are checked against it. */
static ics_status build_manifest(const char *dir, const char *dataset_path, int count, uint64_t seed,
                                 char **out, ics_error *err)
{
    *out = NULL;
    int rank = ics_dist_rank(), size = ics_dist_size();
    char path[4096];
    ics_shard_path(path, sizeof path, dir, 0, count);
    ics_dataset_reader *first = NULL;
    ics_status st = ics_dataset_open(path, &first, err);
    st = ics_dist_agree(st, err);
    if (st) {
        ics_dataset_close(first);
        return st;
    }
    const ics_dataset_meta *m = ics_dataset_reader_meta(first);
    int num_classes = m->num_classes;
    size_t stride = record_stride(num_classes);
    int64_t *records = ics_calloc((size_t)count * stride, sizeof *records, "manifest records", err);
    if (!records) st = ICS_ERR_NOMEM;
    for (int s = rank; s < count && !st; s += size)
        st = shard_record(dir, s, count, seed, num_classes, records + (size_t)s * stride, err);
    st = ics_dist_agree(st, err);
    if (!st) st = ics_dist_allreduce_sum_i64(records, (size_t)count * stride, err);
    text t = {0};
    int64_t totals[3] = {0, 0, 0};
    if (!st) {
        append(&t, "{\n  \"format\": \"%s\",\n  \"format_version\": %d,\n  \"dataset\": ", MANIFEST_FORMAT, MANIFEST_VERSION);
        append_json_string(&t, dataset_path);
        append(&t, ",\n  \"source\": ");
        append_json_string(&t, m->source ? m->source : "");
        append(&t, ",\n  \"source_sha256\": \"%s\",\n  \"seed\": %llu,\n  \"shard_count\": %d,\n  \"classes\": [",
               m->source_sha256, (unsigned long long)seed, count);
        for (int c = 0; c < num_classes; c++) {
            append(&t, c ? ", " : "");
            append_json_string(&t, m->class_names[c]);
        }
        append(&t, "],\n  \"shards\": [\n");
        for (int s = 0; s < count; s++) {
            const int64_t *rec = records + (size_t)s * stride;
            uint8_t digest[32];
            char hex[65];
            memcpy(digest, rec, 32);
            ics_sha256_hex(digest, hex);
            ics_shard_path(path, sizeof path, "", s, count);
            append(&t, "    {\"file\": \"%s\", \"sha256\": \"%s\"", path + 1, hex);
            for (int sp = 0; sp < 3; sp++) {
                append(&t, ", \"%s\": [", ics_dataset_splits[sp]);
                for (int c = 0; c < num_classes; c++)
                    append(&t, c ? ", %lld" : "%lld", (long long)rec[7 + (size_t)sp * num_classes + c]);
                append(&t, "]");
                totals[sp] += rec[4 + sp];
            }
            append(&t, "}%s\n", s + 1 < count ? "," : "");
        }
        append(&t, "  ],\n  \"totals\": {\"train\": %lld, \"val\": %lld, \"test\": %lld}\n}\n",
               (long long)totals[0], (long long)totals[1], (long long)totals[2]);
        if (t.failed) st = ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory building the manifest");
    }
    ics_dataset_close(first);
    /* Against the source dataset, when it is still there (rank 0 checks). */
    ics_dataset_reader *src = NULL;
    ics_error ignored;
    if (!st && rank == 0 && ics_dataset_open(dataset_path, &src, &ignored) == ICS_OK) {
        for (int sp = 0; sp < 3 && !st; sp++) {
            int64_t n = ics_dataset_count(src, ics_dataset_splits[sp]);
            if (n != totals[sp]) {
                st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: shards hold %lld %s rows, the dataset %s has %lld", dir,
                              (long long)totals[sp], ics_dataset_splits[sp], dataset_path, (long long)n);
                break;
            }
            int32_t *labels = ics_malloc((size_t)(n > 0 ? n : 1) * sizeof *labels, "labels", err);
            int64_t *counts = labels ? ics_calloc((size_t)num_classes, sizeof *counts, "counts", err) : NULL;
            if (!counts) st = ICS_ERR_NOMEM;
            if (!st && n > 0) st = ics_dataset_read(src, ics_dataset_splits[sp], 0, n, NULL, labels, err);
            for (int64_t i = 0; !st && i < n; i++)
                if (labels[i] < num_classes) counts[labels[i]]++;
            for (int c = 0; !st && c < num_classes; c++) {
                int64_t in_shards = 0;
                for (int s = 0; s < count; s++) in_shards += records[(size_t)s * stride + 7 + (size_t)sp * num_classes + c];
                if (counts[c] != in_shards)
                    st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: shards hold %lld %s rows of class %d, the dataset has %lld",
                                  dir, (long long)in_shards, ics_dataset_splits[sp], c, (long long)counts[c]);
            }
            free(labels);
            free(counts);
        }
        ics_dataset_close(src);
    }
    st = ics_dist_agree(st, err);
    free(records);
    if (st) {
        free(t.data);
        return st;
    }
    *out = t.data;
    return ICS_OK;
}

static ics_status write_text_file(const char *path, const char *content, ics_error *err)
{
    char temp[4096];
    snprintf(temp, sizeof temp, "%s.partial", path);
    FILE *f = fopen(temp, "w");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot write: %s", temp, strerror(errno));
    size_t n = strlen(content);
    int ok = fwrite(content, 1, n, f) == n;
    ok = (fflush(f) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(temp, path) != 0) {
        remove(temp);
        return ICS_FAIL(err, ICS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return ICS_OK;
}

/* ---------------------------------------------------------------- writer */

/* The rank's slice [lo, hi) of n items over size ranks (balanced). */
static void slice(int64_t n, int index, int parts, int64_t *lo, int64_t *hi)
{
    *lo = n * index / parts;
    *hi = n * (index + 1) / parts;
}

/* One split of the source, in memory, and its global permutation. */
typedef struct split_data {
    int64_t count;
    uint8_t *images;
    int32_t *labels;
    int64_t *perm;
} split_data;

static ics_status load_split(ics_dataset_reader *r, int sp, uint64_t seed, size_t image_bytes, int64_t max_bytes,
                             split_data *d, ics_error *err)
{
    const char *name = ics_dataset_splits[sp];
    d->count = ics_dataset_count(r, name);
    if ((double)d->count * (double)image_bytes > (double)max_bytes)
        return ICS_FAIL(err, ICS_ERR_INVALID, "%s: /%s is %.1f GiB, over the %.1f GiB each rank may hold while sharding",
                        ics_dataset_reader_path(r), name, (double)d->count * (double)image_bytes / (1 << 30),
                        (double)max_bytes / (1 << 30));
    size_t n = (size_t)(d->count > 0 ? d->count : 1);
    d->images = ics_malloc(n * image_bytes, "split images", err);
    d->labels = d->images ? ics_malloc(n * sizeof *d->labels, "split labels", err) : NULL;
    d->perm = d->labels ? ics_malloc(n * sizeof *d->perm, "permutation", err) : NULL;
    if (!d->perm) return ICS_ERR_NOMEM;
    ics_status st = d->count ? ics_dataset_read(r, name, 0, d->count, d->images, d->labels, err) : ICS_OK;
    for (int64_t i = 0; i < d->count; i++) d->perm[i] = i;
    ics_data_rng rng;
    ics_data_rng_seed(&rng, seed, 0x5a4du, (uint64_t)sp);
    ics_data_rng_shuffle(&rng, d->perm, d->count);
    return st;
}

static ics_status mkdir_p(const char *path, ics_error *err)
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

/* Writes shard s: every rank its slice of each split. */
static ics_status write_shard(const char *out_dir, int s, const ics_shard_options *o, const ics_dataset_meta *src_meta,
                              const split_data *data, size_t image_bytes, int parallel, ics_error *err)
{
    int rank = ics_dist_rank(), size = ics_dist_size();
    char path[4096];
    ics_shard_path(path, sizeof path, out_dir, s, o->num_shards);
    ics_dataset_meta meta;
    ics_status st = ics_dataset_meta_copy(&meta, src_meta, err);
    st = parallel ? ics_dist_agree(st, err) : st;
    if (st) return st;
    meta.is_shard = 1;
    meta.shard_index = s;
    meta.shard_count = o->num_shards;
    meta.seed = o->seed;
    ics_dataset_write_options wo = {0, parallel};
    ics_dataset_writer *w;
    st = ics_dataset_writer_create(path, &meta, &wo, &w, err);
    ics_dataset_meta_clear(&meta);
    if (st) return st;
    uint8_t *images = NULL;
    int32_t *labels = NULL;
    for (int sp = 0; sp < 3 && !st; sp++) {
        const split_data *d = &data[sp];
        if (d->count == 0) continue;
        int64_t first, last, lo, hi;
        slice(d->count, s, o->num_shards, &first, &last);
        if (last == first) continue; /* more shards than rows: this shard lacks the split */
        st = ics_dataset_writer_create_split(w, ics_dataset_splits[sp], last - first, err);
        if (st) break;
        slice(last - first, rank, size, &lo, &hi);
        int64_t n = hi - lo;
        images = ics_malloc((size_t)(n > 0 ? n : 1) * image_bytes, "shard images", err);
        labels = images ? ics_malloc((size_t)(n > 0 ? n : 1) * sizeof *labels, "shard labels", err) : NULL;
        if (!labels) st = ICS_ERR_NOMEM;
        for (int64_t i = 0; !st && i < n; i++) {
            int64_t row = d->perm[first + lo + i];
            memcpy(images + (size_t)i * image_bytes, d->images + (size_t)row * image_bytes, image_bytes);
            labels[i] = d->labels[row];
        }
        if (!st) st = ics_dataset_writer_write(w, ics_dataset_splits[sp], lo, n, images, labels, err);
        if (parallel) st = ics_dist_agree(st, err);
        free(images);
        free(labels);
        images = NULL;
        labels = NULL;
    }
    if (st) {
        ics_dataset_writer_abort(w);
        return st;
    }
    return ics_dataset_writer_commit(w, err);
}

ics_status ics_shard_write(const char *dataset_path, const char *out_dir, const ics_shard_options *o, ics_error *err)
{
    int parallel = ics_dist_initialized();
    if (o->num_shards < 1) return ICS_FAIL(err, ICS_ERR_INVALID, "shard count %d must be at least 1", o->num_shards);
    ics_dataset_reader *r;
    ics_status st = ics_dataset_open(dataset_path, &r, err);
    if (!st && ics_dataset_reader_meta(r)->is_shard) {
        st = ICS_FAIL(err, ICS_ERR_INVALID, "%s is already a shard; shard the dataset it came from", dataset_path);
        ics_dataset_close(r);
    }
    if (parallel) st = ics_dist_agree(st, err);
    if (st) return st;
    const ics_dataset_meta *meta = ics_dataset_reader_meta(r);
    size_t image_bytes = (size_t)meta->height * meta->width * meta->channels;
    int64_t max_bytes = o->max_memory_bytes > 0 ? o->max_memory_bytes : ((int64_t)8 << 30);
    split_data data[3];
    memset(data, 0, sizeof data);
    double t0 = now_s();
    for (int sp = 0; sp < 3 && !st; sp++) st = load_split(r, sp, o->seed, image_bytes, max_bytes, &data[sp], err);
    double t1 = now_s();
    if (!st && ics_dist_rank() == 0) st = mkdir_p(out_dir, err);
    if (parallel) st = ics_dist_agree(st, err);
    for (int s = 0; s < o->num_shards && !st; s++)
        st = write_shard(out_dir, s, o, meta, data, image_bytes, parallel, err);
    for (int sp = 0; sp < 3; sp++) {
        free(data[sp].images);
        free(data[sp].labels);
        free(data[sp].perm);
    }
    ics_dataset_close(r);
    if (st) return st;
    double t2 = now_s();
    /* The manifest: every rank reads back and hashes its share of the
     * shards; rank 0 writes the file. */
    char *manifest = NULL;
    st = build_manifest(out_dir, dataset_path, o->num_shards, o->seed, &manifest, err);
    if (!st && ics_dist_rank() == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/manifest.json", out_dir);
        st = write_text_file(path, manifest, err);
        ICS_DEBUG("shard: read and permute %.2f s, write %.2f s, manifest %.2f s", t1 - t0, t2 - t1, now_s() - t2);
    }
    free(manifest);
    return parallel ? ics_dist_agree(st, err) : st;
}

/* ---------------------------------------------------------------- verify */

/* The value after "key": in the stored manifest (a number or a string). */
static int manifest_field(const char *manifest, const char *key, char *value, size_t cap)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *p = strstr(manifest, pattern);
    if (!p) return 0;
    p += strlen(pattern);
    size_t n = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"' && n + 1 < cap; p++) {
            if (*p == '\\' && p[1]) p++;
            value[n++] = *p;
        }
    } else {
        while (*p && *p != ',' && *p != '\n' && n + 1 < cap) value[n++] = *p++;
    }
    value[n] = '\0';
    return 1;
}

ics_status ics_shard_verify(const char *out_dir, ics_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", out_dir);
    FILE *f = fopen(path, "rb");
    if (!f) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *stored = NULL;
    size_t len = 0, cap = 0;
    ics_status st = ICS_OK;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            char *grown = ics_realloc(stored, cap, "manifest", err);
            if (!grown) {
                st = ICS_ERR_NOMEM;
                break;
            }
            stored = grown;
        }
        size_t got = fread(stored + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    fclose(f);
    if (st) {
        free(stored);
        return st;
    }
    stored[len] = '\0';
    char format[64], version[16], dataset[4096], count_text[32], seed_text[32];
    if (!manifest_field(stored, "format", format, sizeof format) || strcmp(format, MANIFEST_FORMAT) != 0) {
        free(stored);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not an icsparse shard manifest", path);
    }
    if (!manifest_field(stored, "format_version", version, sizeof version) || atoi(version) != MANIFEST_VERSION) {
        free(stored);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: manifest format_version %s is not supported (this icsparse reads %d)",
                        path, version, MANIFEST_VERSION);
    }
    if (!manifest_field(stored, "dataset", dataset, sizeof dataset) ||
        !manifest_field(stored, "shard_count", count_text, sizeof count_text) ||
        !manifest_field(stored, "seed", seed_text, sizeof seed_text) || atoi(count_text) < 1) {
        free(stored);
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: manifest lacks dataset, shard_count or seed", path);
    }
    char *fresh = NULL;
    st = build_manifest(out_dir, dataset, atoi(count_text), strtoull(seed_text, NULL, 10), &fresh, err);
    if (!st && strcmp(fresh, stored) != 0) {
        /* Name the first line that differs: usually one shard's checksum. */
        const char *a = stored, *b = fresh;
        int line = 1;
        while (*a && *a == *b) {
            if (*a == '\n') line++;
            a++;
            b++;
        }
        const char *start = a;
        while (start > stored && start[-1] != '\n') start--;
        const char *end = strchr(start, '\n');
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: line %d does not match the shards: %.*s", path, line,
                      (int)(end ? end - start : (long)strlen(start)) > 200 ? 200 : (int)(end ? end - start : (long)strlen(start)),
                      start);
    }
    free(fresh);
    free(stored);
    return st;
}
