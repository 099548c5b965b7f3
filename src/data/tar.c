/* Minimal tar reader and safe extractor: see tar.h. The header layout is
 * POSIX ustar (IEEE 1003.1-1988): 512-byte blocks, octal sizes, the
 * checksum computed with its own field read as spaces. */
#include "ics_build_config.h"
#include "data/tar.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

struct ics_tar {
    char *path;
    gzFile file;
    uint64_t left;    /* data bytes left in the current entry */
    uint64_t padding; /* bytes to the next 512 boundary after the data */
};

ics_status ics_tar_open(const char *path, ics_tar **out, ics_error *err)
{
    *out = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    ics_tar *t = ics_calloc(1, sizeof *t, "tar reader", err);
    if (!t) return ICS_ERR_NOMEM;
    t->path = ics_strdup(path, err);
    t->file = t->path ? gzopen(path, "rb") : NULL;
    if (!t->file) {
        ics_status st = t->path ? ICS_FAIL(err, ICS_ERR_IO, "%s: cannot open", path) : ICS_ERR_NOMEM;
        free(t->path);
        free(t);
        return st;
    }
    gzbuffer(t->file, 1 << 17);
    *out = t;
    return ICS_OK;
}

void ics_tar_close(ics_tar *t)
{
    if (!t) return;
    gzclose(t->file);
    free(t->path);
    free(t);
}

static ics_status raw_read(ics_tar *t, void *buf, uint64_t n, const char *what, ics_error *err)
{
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(t->file, p, chunk);
        if (got < 0) {
            int code;
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: corrupt gzip data in %s: %s", t->path, what,
                            gzerror(t->file, &code));
        }
        if (got == 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: truncated archive (in %s)", t->path, what);
        p += got;
        n -= (uint64_t)got;
    }
    return ICS_OK;
}

static ics_status skip(ics_tar *t, uint64_t n, ics_error *err)
{
    unsigned char buf[8192];
    while (n > 0) {
        uint64_t k = n < sizeof buf ? n : sizeof buf;
        ics_status st = raw_read(t, buf, k, "entry data", err);
        if (st) return st;
        n -= k;
    }
    return ICS_OK;
}

/* Octal field (may end with NUL or space); GNU base-256 for big sizes. */
static int parse_number(const unsigned char *field, int len, uint64_t *value)
{
    uint64_t v = 0;
    if (field[0] & 0x80) {
        for (int i = 1; i < len; i++) v = v << 8 | field[i];
        *value = v;
        return 1;
    }
    int i = 0, digits = 0;
    while (i < len && field[i] == ' ') i++;
    for (; i < len && field[i] >= '0' && field[i] <= '7'; i++, digits++) v = v * 8 + (uint64_t)(field[i] - '0');
    if (i < len && field[i] != ' ' && field[i] != '\0') return 0;
    *value = v;
    return digits > 0;
}

/* Reads a data payload (long name or pax record) into a string. */
static ics_status read_text(ics_tar *t, uint64_t size, char *out, size_t cap, ics_error *err)
{
    if (size >= (1u << 20)) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: implausible %llu-byte name record", t->path, (unsigned long long)size);
    char *buf = ics_malloc((size_t)size + 1, "tar name record", err);
    if (!buf) return ICS_ERR_NOMEM;
    ics_status st = raw_read(t, buf, size, "a name record", err);
    if (!st) st = skip(t, (512 - size % 512) % 512, err);
    if (!st) {
        buf[size] = '\0';
        snprintf(out, cap, "%s", buf);
    }
    free(buf);
    return st;
}

/* The "path=" value of a pax extended header, if any. */
static void pax_path(const char *records, char *out, size_t cap)
{
    const char *p = records;
    while (*p) {
        char *end;
        long len = strtol(p, &end, 10);
        if (len <= 0 || *end != ' ') return;
        const char *kv = end + 1;
        if (strncmp(kv, "path=", 5) == 0) {
            size_t n = (size_t)(p + len - 1 - (kv + 5));
            if (n >= cap) n = cap - 1;
            memcpy(out, kv + 5, n);
            out[n] = '\0';
            return;
        }
        if ((size_t)len > strlen(p)) return;
        p += len;
    }
}

ics_status ics_tar_next(ics_tar *t, ics_tar_entry *e, int *done, ics_error *err)
{
    *done = 0;
    ics_status st = skip(t, t->left + t->padding, err);
    if (st) return st;
    t->left = t->padding = 0;
    char long_name[4096] = "";
    for (;;) {
        unsigned char h[512];
        int got = gzread(t->file, h, sizeof h);
        if (got == 0) {
            /* Archives end with two zero blocks, but a clean end of the
             * stream right after an entry is accepted too (GNU tar does). */
            *done = 1;
            return ICS_OK;
        }
        if (got < 0) {
            int code;
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: corrupt gzip data: %s", t->path, gzerror(t->file, &code));
        }
        if (got != 512) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: truncated archive (in a header)", t->path);
        int zero = 1;
        for (int i = 0; i < 512 && zero; i++) zero = h[i] == 0;
        if (zero) {
            *done = 1;
            return ICS_OK;
        }
        uint64_t want_sum, size;
        uint64_t sum = 0;
        for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
        if (!parse_number(h + 148, 8, &want_sum) || want_sum != sum)
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not a tar archive or damaged (header checksum mismatch)", t->path);
        if (!parse_number(h + 124, 12, &size))
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: bad size field in a tar header", t->path);
        char type = h[156] ? (char)h[156] : '0';
        if (type == 'L') {
            st = read_text(t, size, long_name, sizeof long_name, err);
            if (st) return st;
            continue;
        }
        if (type == 'x' || type == 'g') {
            char records[8192] = "";
            st = read_text(t, size, records, sizeof records, err);
            if (st) return st;
            if (type == 'x') pax_path(records, long_name, sizeof long_name);
            continue;
        }
        if (long_name[0]) {
            snprintf(e->name, sizeof e->name, "%s", long_name);
        } else {
            char name[101], prefix[156];
            memcpy(name, h, 100);
            name[100] = '\0';
            memcpy(prefix, h + 345, 155);
            prefix[155] = '\0';
            if (memcmp(h + 257, "ustar", 5) == 0 && prefix[0])
                snprintf(e->name, sizeof e->name, "%s/%s", prefix, name);
            else
                snprintf(e->name, sizeof e->name, "%s", name);
        }
        e->size = (type == '0' || type == '7') ? size : 0;
        e->type = type == '7' ? '0' : type;
        /* Only regular files carry data we expose; others' payloads are skipped. */
        t->left = size;
        t->padding = (512 - size % 512) % 512;
        if (e->type != '0') {
            st = skip(t, t->left + t->padding, err);
            t->left = t->padding = 0;
            if (st) return st;
        }
        return ICS_OK;
    }
}

ics_status ics_tar_read(ics_tar *t, void *buf, uint64_t n, ics_error *err)
{
    if (n > t->left) return ICS_FAIL(err, ICS_ERR_INVALID, "%s: read past the end of an entry", t->path);
    ics_status st = raw_read(t, buf, n, "entry data", err);
    if (!st) t->left -= n;
    return st;
}

/* A path is safe when relative and free of ".." components. */
static int safe_path(const char *name)
{
    if (name[0] == '/' || name[0] == '\0') return 0;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return 1;
}

/* mkdir -p of every directory along path (up to the last slash when
 * leaf_is_file). */
static ics_status make_dirs(const char *path, int leaf_is_file, ics_error *err)
{
    char buf[4096 + 512];
    snprintf(buf, sizeof buf, "%s", path);
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (buf[i] == '\0' && leaf_is_file) break;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        buf[i] = saved;
    }
    return ICS_OK;
}

ics_status ics_tar_extract(const char *archive, const char *dest_dir, ics_error *err)
{
    ics_tar *t;
    ics_status st = make_dirs(dest_dir, 0, err);
    if (!st) st = ics_tar_open(archive, &t, err);
    if (st) return st;
    ics_tar_entry *e = ics_malloc(sizeof *e, "tar entry", err);
    char *target = e ? ics_malloc(8192, "path", err) : NULL;
    unsigned char *buf = target ? ics_malloc(1 << 16, "copy buffer", err) : NULL;
    if (!buf) st = ICS_ERR_NOMEM;
    int done = 0;
    while (!st && !done) {
        st = ics_tar_next(t, e, &done, err);
        if (st || done) break;
        if (!safe_path(e->name)) {
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: entry '%s' would escape the target directory; refused", archive, e->name);
            break;
        }
        if (e->type == '1' || e->type == '2') {
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: entry '%s' is a link; links are not extracted", archive, e->name);
            break;
        }
        snprintf(target, 8192, "%s/%s", dest_dir, e->name);
        if (e->type == '5') {
            st = make_dirs(target, 0, err);
            continue;
        }
        if (e->type != '0') continue; /* devices, fifos: nothing to extract */
        st = make_dirs(target, 1, err);
        FILE *out = st ? NULL : fopen(target, "wb");
        if (!st && !out) st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create: %s", target, strerror(errno));
        for (uint64_t left = e->size; !st && left > 0;) {
            uint64_t k = left < (1 << 16) ? left : (1 << 16);
            st = ics_tar_read(t, buf, k, err);
            if (!st && fwrite(buf, 1, (size_t)k, out) != k)
                st = ICS_FAIL(err, ICS_ERR_IO, "%s: write failed: %s", target, strerror(errno));
            left -= k;
        }
        if (out && fclose(out) != 0 && !st) st = ICS_FAIL(err, ICS_ERR_IO, "%s: write failed", target);
    }
    free(buf);
    free(target);
    free(e);
    ics_tar_close(t);
    return st;
}
