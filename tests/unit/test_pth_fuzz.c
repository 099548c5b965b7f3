/* Deterministic mutation test of the .pth reader: real files truncated at
 * every offset and mutated a few thousand times (fixed seed), through the
 * fuzz target's entry point (tests/fuzz/fuzz_pth.c), which aborts on any
 * broken contract; the sanitizers build catches bad memory accesses. Seeds
 * are files our writer makes, plus torch.save's from $ICS_PTH_SEEDS (set
 * by test_pth, which runs this program on its fixtures). */
#include "ics_build_config.h"
#include "test_util.h"
#include "io/pth_writer.h"
#include "io/zip_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x1234567887654321ull;

static uint64_t next(void)
{
    /* splitmix64 */
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct seed {
    uint8_t *data;
    size_t size;
    char name[64];
} seed;

static seed seeds[16];
static int seed_count;

static void add_seed(const char *name, const uint8_t *data, size_t size, int pickle)
{
    seed *s = &seeds[seed_count++];
    s->size = size + (pickle ? 1 : 0);
    s->data = malloc(s->size);
    if (pickle) s->data[0] = 'P';
    memcpy(s->data + (pickle ? 1 : 0), data, size);
    snprintf(s->name, sizeof s->name, "%s%s", pickle ? "pickle of " : "", name);
}

/* The file, and its data.pkl as a 'P' seed. */
static void add_file_seeds(const char *path, const char *name)
{
    size_t size;
    char *data = ics_test_read_file(path, &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    add_seed(name, (uint8_t *)data, size, 0);
    ics_error err;
    ics_zip_reader *zr;
    CU_ASSERT_EQUAL_FATAL(ics_zip_reader_open((uint8_t *)data, size, name, &zr, &err), ICS_OK);
    for (size_t i = 0; i < ics_zip_entry_count(zr); i++) {
        const ics_zip_entry *e = ics_zip_entry_at(zr, i);
        if (strstr(e->name, "/data.pkl")) {
            uint8_t *pkl;
            size_t n;
            CU_ASSERT_EQUAL_FATAL(ics_zip_extract(zr, e, 0, &pkl, &n, &err), ICS_OK);
            add_seed(name, pkl, n, 1);
            free(pkl);
        }
    }
    ics_zip_reader_close(zr);
    free(data);
}

/* Our writer's state_dict and checkpoint, small. */
static void make_own_seeds(const char *dir)
{
    ics_error err;
    ics_pv_arena *arena = ics_pv_arena_create(&err);
    ics_pv *sd = ics_pv_new_dict(arena, 1, &err);
    float w[12];
    uint64_t state = 3;
    ics_test_fill_uniform(w, 12, -1, 1, &state);
    ics_pv_dict_set_str(arena, sd, "conv.weight",
                        ics_pv_new_tensor(arena, ICS_DT_FLOAT32, 2, (int64_t[]){3, 4}, w, &err),
                        &err);
    int64_t nbt = 7;
    ics_pv_dict_set_str(arena, sd, "bn.num_batches_tracked",
                        ics_pv_new_tensor(arena, ICS_DT_INT64, 0, NULL, &nbt, &err), &err);
    ics_pv *ck = ics_pv_new_dict(arena, 0, &err), *l = ics_pv_new(arena, ICS_PV_LIST, &err);
    ics_pv_dict_set_str(arena, ck, "state_dict", sd, &err);
    ics_pv_dict_set_str(arena, ck, "epoch", ics_pv_new_int(arena, 3, &err), &err);
    ics_pv_dict_set_str(arena, ck, "recipe", ics_pv_new_string(arena, "modifiers: []", 13, &err),
                        &err);
    ics_pv_seq_append(arena, l, ics_pv_new_float(arena, 0.25, &err), &err);
    ics_pv_seq_append(arena, l, ics_pv_new_int(arena, -(INT64_C(1) << 50), &err), &err);
    ics_pv_dict_set_str(arena, ck, "lrs", l, &err);
    char path[4096];
    snprintf(path, sizeof path, "%s/own_sd.pth", dir);
    CU_ASSERT_EQUAL_FATAL(ics_pth_save(path, sd, NULL, &err), ICS_OK);
    add_file_seeds(path, "own_sd.pth");
    snprintf(path, sizeof path, "%s/own_ckpt.pth", dir);
    CU_ASSERT_EQUAL_FATAL(ics_pth_save(path, ck, NULL, &err), ICS_OK);
    add_file_seeds(path, "own_ckpt.pth");
    ics_pv_arena_destroy(arena);
}

/* One random mutation: flip a bit, set an interesting byte or 32-bit
 * value, delete or duplicate a short range. Returns the new size. */
static size_t mutate(uint8_t *d, size_t size, size_t cap)
{
    static const uint32_t interesting[] = {0,      1,          0x7f,        0x80,        0xff,
                                           0xffff, 0x7fffffff, 0x80000000u, 0xffffffffu, 64};
    size_t at = size ? next() % size : 0;
    switch (next() % 5) {
    case 0:
        if (size) d[at] ^= (uint8_t)(1u << (next() % 8));
        break;
    case 1:
        if (size) d[at] = (uint8_t)interesting[next() % 10];
        break;
    case 2:
        if (size >= 4) {
            at = next() % (size - 3);
            uint32_t v = interesting[next() % 10];
            memcpy(d + at, &v, 4);
        }
        break;
    case 3: {
        size_t n = 1 + next() % 8;
        if (at + n <= size) {
            memmove(d + at, d + at + n, size - at - n);
            size -= n;
        }
        break;
    }
    default: {
        size_t n = 1 + next() % 8;
        if (at + n <= size && size + n <= cap) {
            memmove(d + at + n, d + at, size - at);
            size += n;
        }
        break;
    }
    }
    return size;
}

static char *dir;

static void test_truncations_and_mutations(void)
{
    make_own_seeds(dir);
    /* torch.save's files, when test_pth passes its fixtures (it runs this
     * program with ICS_PTH_SEEDS set, so torch starts only once) */
    const char *more = getenv("ICS_PTH_SEEDS");
    if (more && *more) {
        static const char *const files[] = {"sd.pth", "ckpt.pth", "sd_p4.pth", "sd_deflate.pth",
                                            "sd_zip64.pth"};
        char path[4096];
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", more, files[i]);
            add_file_seeds(path, files[i]);
        }
        snprintf(path, sizeof path, "%s/legacy.pth", more); /* not a zip: raw seed only */
        size_t size;
        char *legacy = ics_test_read_file(path, &size);
        CU_ASSERT_PTR_NOT_NULL_FATAL(legacy);
        add_seed("legacy.pth", (uint8_t *)legacy, size, 0);
        free(legacy);
    }
    clock_t start = clock();
    long runs = 0;
    for (int s = 0; s < seed_count; s++) {
        const seed *sd = &seeds[s];
        /* the seed itself loads */
        LLVMFuzzerTestOneInput(sd->data, sd->size);
        /* every truncation (or ~3000 evenly spaced ones for big files) */
        size_t step = sd->size / 3000 + 1;
        for (size_t n = 0; n < sd->size; n += step, runs++) {
            uint8_t *cut = malloc(n + 1);
            memcpy(cut, sd->data, n);
            LLVMFuzzerTestOneInput(cut, n);
            free(cut);
        }
        size_t cap = sd->size + 64;
        uint8_t *buf = malloc(cap);
        for (int m = 0; m < 1500; m++, runs++) {
            memcpy(buf, sd->data, sd->size);
            size_t size = sd->size;
            int count = 1 + (int)(next() % 4);
            for (int k = 0; k < count; k++) {
                size = mutate(buf + (sd->data[0] == 'P'), size - (sd->data[0] == 'P'), cap - 1) +
                       (sd->data[0] == 'P');
            }
            LLVMFuzzerTestOneInput(buf, size);
        }
        free(buf);
    }
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    printf("\n  %ld mutated inputs from %d seeds in %.2f s CPU\n", runs, seed_count, secs);
    CU_ASSERT(runs > 5000);
}

int main(void)
{
    dir = ics_test_tmpdir("pthfz");
    static const ics_test_case cases[] = {
        {"truncations and random mutations never crash", test_truncations_and_mutations},
        {NULL, NULL}};
    ics_test_add_suite("pth robustness", cases);
    int rc = ics_test_main("test_pth_fuzz");
    for (int s = 0; s < seed_count; s++)
        free(seeds[s].data);
    ics_test_rmtree(dir);
    free(dir);
    return rc;
}
