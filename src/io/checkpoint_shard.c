/*
 * Sharded checkpoints: every rank writes its part of the optimizer state
 * next to the checkpoint rank 0 writes; the checkpoint holds an index of
 * the parts (layout and ownership in include/icsparse/checkpoint.h).
 *
 * Why one file per rank and not one parallel-HDF5 file: in parallel HDF5
 * every dataset and attribute is created collectively, so each rank would
 * have to walk the whole table anyway, and a damaged save could not be
 * told apart part by part. Separate parts keep the writes independent,
 * and the index (size and SHA-256 of each part) lets a reader refuse a
 * missing or damaged part by name.
 */
#include "ics_build_config.h"
#include <icsparse/checkpoint.h>

#include "core/alloc.h"
#include "data/h5attr.h"
#include "data/sha256.h"
#include "dist/dist.h"
#include "io/h5_tensor.h"
#include "train/optim.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PART_FORMAT "icsparse-checkpoint-part"
#define PART_VERSION 1
#define INDEX_MAGIC "icsparse-checkpoint-shards"
#define INDEX_VERSION 1
#define ID_CHARS 16 /* hex digits of a save's ID */

/* ---- names ------------------------------------------------------------- */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* "<path>.part-K-of-N.ID" (malloc'd). */
static char *part_path(const char *path, int k, int n, const char *id, ics_error *err)
{
    size_t len = strlen(path) + 64;
    char *p = ics_malloc(len, "a checkpoint part name", err);
    if (p) snprintf(p, len, "%s.part-%d-of-%d.%s", path, k, n, id);
    return p;
}

/* 1 if name is "<base>.part-K-of-N.ID" with ID ID_CHARS hex digits; the ID
 * goes into id. */
static int parse_part_name(const char *name, const char *base, char id[ID_CHARS + 1])
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) != 0) return 0;
    int k = -1, n = -1, used = 0;
    if (sscanf(name + bl, ".part-%d-of-%d.%n", &k, &n, &used) != 2 || used == 0 || k < 0 || n < 1 ||
        k >= n)
        return 0;
    const char *tail = name + bl + used;
    if (strlen(tail) != ID_CHARS || strspn(tail, "0123456789abcdef") != ID_CHARS) return 0;
    memcpy(id, tail, ID_CHARS + 1);
    return 1;
}

/* A fresh random ID: /dev/urandom, else the clock and the pid mixed. */
static void new_id(char id[ID_CHARS + 1])
{
    uint64_t x = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&x, sizeof x, 1, f) != 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
        /* splitmix64's finalizer spreads the bits */
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
    }
    if (f) fclose(f);
    snprintf(id, ID_CHARS + 1, "%016llx", (unsigned long long)x);
}

/* ---- HDF5 helpers -------------------------------------------------------- */

typedef struct name_list {
    char **names;
    int count, cap, failed;
} name_list;

static herr_t add_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group, (void)info;
    name_list *l = data;
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        char **grown = realloc(l->names, sizeof *grown * (size_t)cap);
        if (!grown) return (l->failed = 1, -1);
        l->names = grown;
        l->cap = cap;
    }
    if (!(l->names[l->count] = strdup(name))) return (l->failed = 1, -1);
    l->count++;
    return 0;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The links under group, sorted by name (none when the group is absent). */
static ics_status list_group(hid_t file, const char *group, const char *filename, char ***names,
                             int *count, ics_error *err)
{
    *names = NULL;
    *count = 0;
    if (!ics_h5_exists(file, group)) return ICS_OK;
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s is not a group", filename, group);
    name_list l = {NULL, 0, 0, 0};
    hsize_t idx = 0;
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, add_name, &l);
    H5Gclose(g);
    if (rc < 0 || l.failed) {
        free_names(l.names, l.count);
        return l.failed
                   ? ICS_FAIL(err, ICS_ERR_NOMEM, "out of memory listing %s of %s", group, filename)
                   : ICS_FAIL(err, ICS_ERR_FORMAT, "%s: cannot list %s", filename, group);
    }
    *names = l.names;
    *count = l.count;
    return ICS_OK;
}

/* ---- writing ------------------------------------------------------------- */

struct ics_checkpoint_shard_writer {
    char *path;  /* the checkpoint (NAME) */
    char *part;  /* this rank's part, final name */
    char *index; /* the index text */
    char id[ID_CHARS + 1];
    int rank;
};

/* This rank's part: the slots of the parameters i with i % n == k. */
static ics_status write_part(const char *tmp, const char *main_base, const char *id, int k, int n,
                             ics_model *model, ics_optim *optim, ics_error *err)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0) H5Pset_obj_track_times(fcpl, 0);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (f < 0)
        return ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create checkpoint part (%s)", tmp,
                        errno ? strerror(errno) : "HDF5 error");
    ics_status st = ics_h5_attr_put_string(f, "format", PART_FORMAT, tmp, err);
    if (!st) st = ics_h5_attr_put_i64(f, "format_version", PART_VERSION, tmp, err);
    if (!st) st = ics_h5_attr_put_i64(f, "complete", 0, tmp, err);
    if (!st) st = ics_h5_attr_put_string(f, "shard_id", id, tmp, err);
    if (!st) st = ics_h5_attr_put_i64(f, "shard_index", k, tmp, err);
    if (!st) st = ics_h5_attr_put_i64(f, "shard_count", n, tmp, err);
    if (!st) st = ics_h5_attr_put_string(f, "checkpoint", main_base, tmp, err);
    hid_t g = st ? -1 : H5Gcreate2(f, "/optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (!st && g < 0) st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot create /optimizer", tmp);
    if (!st)
        st = ics_h5_attr_put_string(
            g, "kind", ics_optim_kind_name(ics_optim_get_hparams(optim)->kind), tmp, err);
    if (!st) st = ics_h5_attr_put_i64(g, "step_count", ics_optim_step_count(optim), tmp, err);
    double lr = ics_optim_lr(optim);
    if (!st) st = ics_h5_attr_put_f64s(g, "lr", &lr, 1, tmp, err);
    if (g >= 0) H5Gclose(g);
    char path[600];
    for (size_t p = (size_t)k; !st && p < ics_optim_param_count(optim); p += (size_t)n) {
        const ics_param_view *v = ics_optim_param(optim, p);
        int ti = ics_model_find_tensor(model, v->name);
        if (ti < 0) {
            st = ICS_FAIL(err, ICS_ERR_INVALID, "optimizer parameter %s is not in the model",
                          v->name);
            break;
        }
        const ics_tensor_info *t = ics_model_tensor(model, ti);
        for (int s = 0; !st && s < ics_optim_slot_count(optim); s++) {
            snprintf(path, sizeof path, "/optimizer/%s/%s", v->name, ics_optim_slot_name(optim, s));
            st = ics_h5_write_tensor(f, path, ICS_H5_F32, ics_optim_slot_param(optim, s, p),
                                     t->ndim, t->shape, tmp, err);
        }
    }
    if (!st) st = ics_h5_attr_put_i64(f, "complete", 1, tmp, err);
    if (!st && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
        st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot flush", tmp);
    if (H5Fclose(f) < 0 && !st) st = ICS_FAIL(err, ICS_ERR_IO, "%s: cannot close", tmp);
    return st;
}

/* Words per part exchanged after writing: the digest's 64 hex characters
 * and the size. */
#define PART_WORDS 9

static void writer_free(ics_checkpoint_shard_writer *sw)
{
    if (!sw) return;
    free(sw->path);
    free(sw->part);
    free(sw->index);
    free(sw);
}

ics_status ics_checkpoint_shard_write_parts(const char *path, ics_model *model, ics_optim *optim,
                                            ics_checkpoint_shard_writer **out, ics_error *err)
{
    *out = NULL;
    ics_h5_quiet();
    int rank = ics_dist_rank(), n = ics_dist_size();
    /* Every rank names its part with rank 0's ID. */
    char id[ID_CHARS + 1] = "";
    if (rank == 0) new_id(id);
    ics_status st = ics_dist_bcast(id, sizeof id, 0, err);
    if (st) return st;
    id[ID_CHARS] = '\0';
    ics_checkpoint_shard_writer *sw = ics_calloc(1, sizeof *sw, "a checkpoint part writer", err);
    int64_t *words =
        ics_calloc((size_t)n * PART_WORDS, sizeof *words, "the checkpoint part index", err);
    char *tmp = NULL;
    if (!sw || !words || !(sw->path = ics_strdup(path, err)) ||
        !(sw->part = part_path(path, rank, n, id, err)))
        st = ICS_ERR_NOMEM;
    if (sw) {
        sw->rank = rank;
        memcpy(sw->id, id, sizeof id);
    }
    if (!st) {
        size_t len = strlen(sw->part) + 32;
        if ((tmp = ics_malloc(len, "a checkpoint part name", err)))
            snprintf(tmp, len, "%s.tmp-%ld", sw->part, (long)getpid());
        else
            st = ICS_ERR_NOMEM;
    }
    if (!st) st = write_part(tmp, base_name(path), sw->id, rank, n, model, optim, err);
    char hex[65] = "";
    struct stat sb;
    if (!st) st = ics_sha256_file(tmp, hex, err);
    if (!st && stat(tmp, &sb) != 0) st = ICS_FAIL(err, ICS_ERR_IO, "%s: %s", tmp, strerror(errno));
    /* The parts take their names only once every rank has written its own. */
    st = ics_dist_agree(st, err);
    if (!st && rename(tmp, sw->part) != 0)
        st =
            ICS_FAIL(err, ICS_ERR_IO, "cannot rename %s to %s: %s", tmp, sw->part, strerror(errno));
    if (!st) {
        int64_t *mine = words + (size_t)rank * PART_WORDS;
        memcpy(mine, hex, 64);
        mine[8] = (int64_t)sb.st_size;
    }
    st = ics_dist_agree(st, err);
    /* Each part's words come from its rank alone (zeros elsewhere), so the
     * sum is every rank's words. */
    if (!st) st = ics_dist_allreduce_sum_i64(words, (size_t)n * PART_WORDS, err);
    size_t cap = (size_t)n * (strlen(base_name(path)) + 200) + 128;
    if (!st && !(sw->index = ics_malloc(cap, "the checkpoint part index", err))) st = ICS_ERR_NOMEM;
    if (!st) {
        size_t used = (size_t)snprintf(sw->index, cap, "%s %d\nid %s\ncount %d\n", INDEX_MAGIC,
                                       INDEX_VERSION, sw->id, n);
        for (int k = 0; k < n; k++) {
            char digest[65];
            memcpy(digest, words + (size_t)k * PART_WORDS, 64);
            digest[64] = '\0';
            used +=
                (size_t)snprintf(sw->index + used, cap - used,
                                 "part %d %s.part-%d-of-%d.%s %lld %s\n", k, base_name(path), k, n,
                                 sw->id, (long long)words[(size_t)k * PART_WORDS + 8], digest);
        }
    }
    st = ics_dist_agree(st, err);
    free(words);
    if (tmp) unlink(tmp);
    if (st) {
        if (sw && sw->part) unlink(sw->part);
        writer_free(sw);
        return st;
    }
    *out = sw;
    return ICS_OK;
}

ics_status ics_checkpoint_put_shard_index(ics_checkpoint_writer *w,
                                          const ics_checkpoint_shard_writer *sw, ics_error *err)
{
    return ics_checkpoint_put_text(w, "shards", sw->index, err);
}

void ics_checkpoint_remove_parts(const char *path, const char *keep_id)
{
    const char *base = base_name(path);
    size_t dir_len = (size_t)(base - path);
    char dir[1200];
    if (dir_len == 0)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)dir_len, path);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char id[ID_CHARS + 1];
        if (!parse_part_name(e->d_name, base, id)) continue;
        if (keep_id && strcmp(id, keep_id) == 0) continue;
        char victim[1600];
        snprintf(victim, sizeof victim, "%s/%s", dir, e->d_name);
        unlink(victim);
    }
    closedir(d);
}

void ics_checkpoint_shard_finish(ics_checkpoint_shard_writer *sw, int committed)
{
    if (!sw) return;
    if (!committed)
        unlink(sw->part);
    else if (sw->rank == 0)
        ics_checkpoint_remove_parts(sw->path, sw->id);
    writer_free(sw);
}

/* ---- reading ------------------------------------------------------------- */

int ics_checkpoint_is_sharded(const ics_checkpoint_reader *r)
{
    return ics_checkpoint_has(r, "/shards");
}

typedef struct part_entry {
    char *path; /* in the checkpoint's directory */
    char *name; /* as the index gives it */
    int64_t bytes;
    char sha256[65];
} part_entry;

struct ics_checkpoint_shards {
    char *path; /* the checkpoint */
    char id[ID_CHARS + 1];
    int count;
    part_entry *parts;
    char *kind;
    int64_t step_count;
    double lr;
    char **slots; /* the slots every parameter has */
    int nslots;
};

void ics_checkpoint_shards_close(ics_checkpoint_shards *s)
{
    if (!s) return;
    for (int k = 0; s->parts && k < s->count; k++) {
        free(s->parts[k].path);
        free(s->parts[k].name);
    }
    free(s->parts);
    free(s->kind);
    free_names(s->slots, s->nslots);
    free(s->path);
    free(s);
}

int ics_checkpoint_shards_count(const ics_checkpoint_shards *s)
{
    return s->count;
}

/* "part K of N (FILE)" for errors. */
static const char *part_label(const ics_checkpoint_shards *s, int k, char *buf, size_t size)
{
    snprintf(buf, size, "part %d of %d (%s)", k, s->count, s->parts[k].name);
    return buf;
}

static ics_status parse_index(ics_checkpoint_shards *s, const char *text, ics_error *err)
{
    const char *bad = "the index /shards is malformed";
    int version = 0, used = 0;
    char magic[64];
    if (sscanf(text, "%63s %d\nid %16s\ncount %d\n%n", magic, &version, s->id, &s->count, &used) !=
            4 ||
        used == 0 || strcmp(magic, INDEX_MAGIC) != 0)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s", s->path, bad);
    if (version != INDEX_VERSION)
        return ICS_FAIL(
            err, ICS_ERR_FORMAT,
            "%s: shard index version %d is not supported (this icsparse reads version %d)", s->path,
            version, INDEX_VERSION);
    if (s->count < 1 || s->count > 1 << 20)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s", s->path, bad);
    s->parts = ics_calloc((size_t)s->count, sizeof *s->parts, "the checkpoint part index", err);
    if (!s->parts) return ICS_ERR_NOMEM;
    const char *base = base_name(s->path);
    size_t dir_len = (size_t)(base - s->path);
    const char *p = text + used;
    for (int k = 0; k < s->count; k++) {
        int got_k = -1, n = 0;
        long long bytes = -1;
        char name[512], sha[65];
        if (sscanf(p, "part %d %511s %lld %64s\n%n", &got_k, name, &bytes, sha, &n) != 4 ||
            n == 0 || got_k != k || strlen(sha) != 64 || strchr(name, '/'))
            return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s (entry of part %d)", s->path, bad, k);
        p += n;
        part_entry *e = &s->parts[k];
        e->bytes = bytes;
        memcpy(e->sha256, sha, sizeof e->sha256);
        size_t len = dir_len + strlen(name) + 1;
        if (!(e->name = ics_strdup(name, err)) ||
            !(e->path = ics_malloc(len, "a checkpoint part name", err)))
            return ICS_ERR_NOMEM;
        snprintf(e->path, len, "%.*s%s", (int)dir_len, s->path, name);
    }
    return ICS_OK;
}

/* Opens part k after checking its attributes; *f < 0 on failure. */
static ics_status open_part(ics_checkpoint_shards *s, int k, hid_t *f, ics_error *err)
{
    char label[700];
    part_label(s, k, label, sizeof label);
    const char *pp = s->parts[k].path;
    *f = H5Fis_hdf5(pp) > 0 ? H5Fopen(pp, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (*f < 0)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s is not a readable HDF5 file", s->path, label);
    char *format = NULL, *id = NULL;
    int64_t version = 0, index = -1, count = -1, complete = 0;
    ics_status st = ICS_OK;
    if (!ics_h5_attr_exists(*f, "format"))
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s has no format attribute", s->path, label);
    if (!st) st = ics_h5_attr_get_string(*f, "format", &format, pp, err);
    if (!st && strcmp(format, PART_FORMAT) != 0)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s: format is '%s', expected '%s'", s->path, label,
                      format, PART_FORMAT);
    if (!st) st = ics_h5_attr_get_i64(*f, "format_version", &version, pp, err);
    if (!st && version != PART_VERSION)
        st = ICS_FAIL(err, ICS_ERR_FORMAT,
                      "%s: %s: %s version %lld is not supported (this icsparse reads version %d)",
                      s->path, label, PART_FORMAT, (long long)version, PART_VERSION);
    if (!st) st = ics_h5_attr_get_i64(*f, "complete", &complete, pp, err);
    if (!st && complete != 1)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s is incomplete", s->path, label);
    if (!st) st = ics_h5_attr_get_string(*f, "shard_id", &id, pp, err);
    if (!st) st = ics_h5_attr_get_i64(*f, "shard_index", &index, pp, err);
    if (!st) st = ics_h5_attr_get_i64(*f, "shard_count", &count, pp, err);
    if (!st && (strcmp(id, s->id) != 0 || index != k || count != s->count))
        st = ICS_FAIL(err, ICS_ERR_FORMAT,
                      "%s: %s is part %lld of %lld of save %s, not of this checkpoint (save %s)",
                      s->path, label, (long long)index, (long long)count, id, s->id);
    free(format);
    free(id);
    if (st) {
        H5Fclose(*f);
        *f = -1;
    }
    return st;
}

/* Part k's optimizer attributes and slot names, checked against part 0's. */
static ics_status read_part_header(ics_checkpoint_shards *s, int k, hid_t f, ics_error *err)
{
    char label[700];
    part_label(s, k, label, sizeof label);
    const char *pp = s->parts[k].path;
    hid_t g = H5Gopen2(f, "/optimizer", H5P_DEFAULT);
    if (g < 0) return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s has no /optimizer", s->path, label);
    char *kind = NULL;
    int64_t steps = 0;
    double lr = 0;
    ics_status st = ics_h5_attr_get_string(g, "kind", &kind, pp, err);
    if (!st) st = ics_h5_attr_get_i64(g, "step_count", &steps, pp, err);
    if (!st) st = ics_h5_attr_get_f64s(g, "lr", &lr, 1, pp, err);
    H5Gclose(g);
    if (!st && k == 0) {
        s->kind = kind;
        kind = NULL;
        s->step_count = steps;
        s->lr = lr;
    } else if (!st && (strcmp(kind, s->kind) != 0 || steps != s->step_count || lr != s->lr)) {
        st =
            ICS_FAIL(err, ICS_ERR_FORMAT,
                     "%s: %s disagrees with part 0 (optimizer %s at step %lld, part 0: %s at %lld)",
                     s->path, label, kind, (long long)steps, s->kind, (long long)s->step_count);
    }
    free(kind);
    /* The slots of the part's first parameter (a part may own none). */
    char **names = NULL, **slots = NULL;
    int n = 0, nslots = 0;
    if (!st) st = list_group(f, "/optimizer", pp, &names, &n, err);
    if (!st && n > 0) {
        char group[600];
        snprintf(group, sizeof group, "/optimizer/%s", names[0]);
        st = list_group(f, group, pp, &slots, &nslots, err);
    }
    free_names(names, n);
    if (!st && n > 0) {
        if (s->slots == NULL && s->nslots == 0) {
            s->slots = slots;
            s->nslots = nslots;
            slots = NULL;
            nslots = 0;
        } else {
            int same = nslots == s->nslots;
            for (int i = 0; same && i < nslots; i++)
                same = strcmp(slots[i], s->slots[i]) == 0;
            if (!same)
                st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s holds other optimizer slots than part 0",
                              s->path, label);
        }
    }
    free_names(slots, nslots);
    return st;
}

ics_status ics_checkpoint_shards_open(ics_checkpoint_reader *r, ics_checkpoint_shards **out,
                                      ics_error *err)
{
    *out = NULL;
    ics_h5_quiet();
    ics_checkpoint_shards *s = ics_calloc(1, sizeof *s, "a checkpoint part index", err);
    if (!s) return ICS_ERR_NOMEM;
    char *text = NULL;
    ics_status st = (s->path = ics_strdup(ics_checkpoint_path(r), err)) ? ICS_OK : ICS_ERR_NOMEM;
    if (!st) st = ics_checkpoint_get_text(r, "shards", &text, err);
    if (!st && !text)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: not a sharded checkpoint (no /shards)", s->path);
    if (!st) st = parse_index(s, text, err);
    free(text);
    for (int k = 0; !st && k < s->count; k++) {
        char label[700];
        part_label(s, k, label, sizeof label);
        const part_entry *e = &s->parts[k];
        struct stat sb;
        if (stat(e->path, &sb) != 0) {
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s is missing: %s", s->path, label,
                          strerror(errno));
            break;
        }
        if ((int64_t)sb.st_size != e->bytes) {
            st = ICS_FAIL(err, ICS_ERR_FORMAT,
                          "%s: %s is truncated or damaged: %lld bytes, the index says %lld",
                          s->path, label, (long long)sb.st_size, (long long)e->bytes);
            break;
        }
        char hex[65];
        st = ics_sha256_file(e->path, hex, err);
        if (!st && strcmp(hex, e->sha256) != 0)
            st = ICS_FAIL(err, ICS_ERR_FORMAT,
                          "%s: %s is damaged: SHA-256 %.16s..., the index says %.16s...", s->path,
                          label, hex, e->sha256);
        hid_t f = -1;
        if (!st) st = open_part(s, k, &f, err);
        if (!st) st = read_part_header(s, k, f, err);
        if (f >= 0) H5Fclose(f);
    }
    if (st) {
        ics_checkpoint_shards_close(s);
        return st;
    }
    *out = s;
    return ICS_OK;
}

/* Calls fn for every parameter name in every part (in part order), with the
 * part's file open; a name twice is an error. */
typedef ics_status (*param_fn)(void *ctx, ics_checkpoint_shards *s, int k, hid_t f,
                               const char *name, ics_error *err);

static ics_status each_param(ics_checkpoint_shards *s, param_fn fn, void *ctx, ics_error *err)
{
    ics_status st = ICS_OK;
    for (int k = 0; !st && k < s->count; k++) {
        hid_t f = -1;
        st = open_part(s, k, &f, err);
        char **names = NULL;
        int n = 0;
        if (!st) st = list_group(f, "/optimizer", s->parts[k].path, &names, &n, err);
        for (int i = 0; !st && i < n; i++)
            st = fn(ctx, s, k, f, names[i], err);
        free_names(names, n);
        if (f >= 0) H5Fclose(f);
    }
    return st;
}

/* Verification: every trainable tensor of the model once, every slot of
 * its size. */
typedef struct verify_ctx {
    ics_model *model;
    char *seen; /* per model tensor */
    int tensors;
} verify_ctx;

static ics_status verify_param(void *ctx, ics_checkpoint_shards *s, int k, hid_t f,
                               const char *name, ics_error *err)
{
    verify_ctx *vc = ctx;
    char label[700];
    part_label(s, k, label, sizeof label);
    int ti = ics_model_find_tensor(vc->model, name);
    const ics_tensor_info *t = ti >= 0 ? ics_model_tensor(vc->model, ti) : NULL;
    if (!t || t->kind == ICS_TENSOR_BUFFER || t->kind == ICS_TENSOR_COUNTER)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: %s holds optimizer state for %s, which is no parameter of the model",
                        s->path, label, name);
    if (vc->seen[ti])
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: optimizer state of %s is in two parts", s->path,
                        name);
    vc->seen[ti] = 1;
    char group[600];
    snprintf(group, sizeof group, "/optimizer/%s", name);
    char **slots = NULL;
    int n = 0;
    ics_status st = list_group(f, group, s->parts[k].path, &slots, &n, err);
    int same = !st && n == s->nslots;
    for (int i = 0; same && i < n; i++)
        same = strcmp(slots[i], s->slots[i]) == 0;
    if (!st && !same)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: optimizer state of %s is incomplete (%s)", s->path,
                      name, label);
    for (int i = 0; !st && i < n; i++) {
        char sp[700];
        int ndim = 0;
        int64_t shape[8];
        snprintf(sp, sizeof sp, "%s/%s", group, slots[i]);
        st = ics_h5_tensor_shape(f, sp, &ndim, shape, s->parts[k].path, err);
        int ok = !st && ndim == t->ndim;
        for (int d = 0; ok && d < ndim; d++)
            ok = shape[d] == t->shape[d];
        if (!st && !ok)
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: %s in %s does not have its parameter's shape",
                          s->path, sp, label);
        if (!st) vc->tensors++;
    }
    free_names(slots, n);
    return st;
}

ics_status ics_checkpoint_shards_verify(ics_checkpoint_shards *s, ics_model *model, int *tensors,
                                        ics_error *err)
{
    *tensors = 0;
    int nt = ics_model_num_tensors(model);
    verify_ctx vc = {model, ics_calloc((size_t)nt + 1, 1, "a tensor table", err), 0};
    if (!vc.seen) return ICS_ERR_NOMEM;
    ics_status st = each_param(s, verify_param, &vc, err);
    for (int i = 0; !st && i < nt; i++) {
        const ics_tensor_info *t = ics_model_tensor(model, i);
        if (t->kind != ICS_TENSOR_BUFFER && t->kind != ICS_TENSOR_COUNTER && !vc.seen[i])
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: optimizer state of %s is in no part", s->path,
                          t->name);
    }
    free(vc.seen);
    if (!st) *tensors = vc.tensors;
    return st;
}

/* Restoring: each part's parameters into the optimizer's slots. */
typedef struct restore_ctx {
    ics_model *model;
    ics_optim *optim;
    char *seen; /* per optimizer parameter */
} restore_ctx;

static ics_status restore_param(void *ctx, ics_checkpoint_shards *s, int k, hid_t f,
                                const char *name, ics_error *err)
{
    restore_ctx *rc = ctx;
    size_t np = ics_optim_param_count(rc->optim), p = 0;
    while (p < np && strcmp(ics_optim_param(rc->optim, p)->name, name) != 0)
        p++;
    char label[700];
    if (p == np)
        return ICS_FAIL(err, ICS_ERR_FORMAT,
                        "%s: %s holds optimizer state for %s, which is no parameter of the model",
                        s->path, part_label(s, k, label, sizeof label), name);
    if (rc->seen[p])
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: optimizer state of %s is in two parts", s->path,
                        name);
    rc->seen[p] = 1;
    const ics_tensor_info *t = ics_model_tensor(rc->model, ics_model_find_tensor(rc->model, name));
    ics_status st = ICS_OK;
    for (int slot = 0; !st && slot < ics_optim_slot_count(rc->optim); slot++) {
        char sp[700];
        snprintf(sp, sizeof sp, "/optimizer/%s/%s", name, ics_optim_slot_name(rc->optim, slot));
        st = ics_h5_read_tensor(f, sp, ICS_H5_F32, ics_optim_slot_param(rc->optim, slot, p),
                                t->ndim, t->shape, s->parts[k].path, err);
    }
    return st;
}

ics_status ics_checkpoint_shards_get_optim(ics_checkpoint_shards *s, ics_model *model,
                                           ics_optim *optim, ics_error *err)
{
    const char *want = ics_optim_kind_name(ics_optim_get_hparams(optim)->kind);
    if (strcmp(s->kind, want) != 0)
        return ICS_FAIL(err, ICS_ERR_CONFIG, "%s: optimizer state is for %s, the run uses %s",
                        s->path, s->kind, want);
    size_t np = ics_optim_param_count(optim);
    for (size_t p = 0; p < np; p++)
        if (ics_model_find_tensor(model, ics_optim_param(optim, p)->name) < 0)
            return ICS_FAIL(err, ICS_ERR_INVALID, "optimizer parameter %s is not in the model",
                            ics_optim_param(optim, p)->name);
    restore_ctx rc = {model, optim, ics_calloc(np + 1, 1, "a parameter table", err)};
    if (!rc.seen) return ICS_ERR_NOMEM;
    ics_status st = each_param(s, restore_param, &rc, err);
    for (size_t p = 0; !st && p < np; p++)
        if (!rc.seen[p])
            st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: optimizer state of %s is in no part", s->path,
                          ics_optim_param(optim, p)->name);
    free(rc.seen);
    if (!st) ics_optim_set_step_count(optim, s->step_count);
    return st;
}

ics_status ics_checkpoint_shards_put_optim(ics_checkpoint_shards *s, ics_checkpoint_writer *w,
                                           ics_model *model, ics_error *err)
{
    /* An optimizer over the model's trainable tensors, as the trainer
     * builds it, holding the parts' state: ics_checkpoint_put_optim then
     * writes exactly what an unsharded save writes. Only the kind, slots,
     * step count and lr are stored in a checkpoint, so the other
     * hyper-parameters are placeholders (SGD's momentum decides whether a
     * momentum_buffer slot exists). */
    int kind = ics_optim_kind_parse(s->kind);
    if (kind < 0)
        return ICS_FAIL(err, ICS_ERR_FORMAT, "%s: unknown optimizer kind '%s'", s->path, s->kind);
    ics_optim_hparams hp;
    ics_optim_hparams_default(&hp, (ics_optim_kind)kind);
    if (kind == ICS_OPTIM_SGD) hp.momentum = s->nslots > 0 ? 0.9 : 0.0;
    int nt = ics_model_num_tensors(model);
    ics_param_view *views = ics_calloc((size_t)nt + 1, sizeof *views, "parameter views", err);
    if (!views) return ICS_ERR_NOMEM;
    size_t nviews = 0;
    for (int i = 0; i < nt; i++) {
        const ics_tensor_info *t = ics_model_tensor(model, i);
        if (t->kind == ICS_TENSOR_BUFFER || t->kind == ICS_TENSOR_COUNTER) continue;
        ics_param_view *v = &views[nviews++];
        v->name = t->name;
        v->data = ics_model_tensor_data(model, i);
        v->grad = ics_model_tensor_grad(model, i);
        v->numel = (size_t)t->numel;
        v->ndim = t->ndim;
    }
    ics_optim_group group = {1.0, 0.0};
    ics_optim *optim = NULL;
    ics_status st = ics_optim_create(&optim, &hp, &group, 1, views, nviews, err);
    int same = !st && ics_optim_slot_count(optim) == s->nslots;
    for (int i = 0; same && i < s->nslots; i++)
        same = ics_optim_slot_find(optim, s->slots[i]) >= 0;
    if (!st && !same)
        st = ICS_FAIL(err, ICS_ERR_FORMAT, "%s: optimizer slots do not match a %s optimizer",
                      s->path, s->kind);
    if (!st) st = ics_checkpoint_shards_get_optim(s, model, optim, err);
    if (!st) {
        ics_optim_set_lr(optim, s->lr);
        st = ics_checkpoint_put_optim(w, model, optim, err);
    }
    ics_optim_destroy(optim);
    free(views);
    return st;
}

ics_status ics_checkpoint_get_optim_sharded(ics_checkpoint_reader *r, ics_model *model,
                                            ics_optim *optim, ics_error *err)
{
    ics_checkpoint_shards *s = NULL;
    ics_status st = ics_checkpoint_shards_open(r, &s, err);
    if (!st) st = ics_checkpoint_shards_get_optim(s, model, optim, err);
    ics_checkpoint_shards_close(s);
    return st;
}
