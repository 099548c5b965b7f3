/* .pth reading and writing checked against the real torch.save / torch.load
 * (tests/torchref/pth_make.py, which also runs pth_check.py, with
 * $PYTHON_TORCH).
 * Exits 77 (skip) when torch is not available. */
#include "ics_build_config.h"
#include "test_util.h"
#include "io/pickle_reader.h"
#include "io/pth_reader.h"
#include "io/pth_writer.h"
#include "io/zip_writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *fixtures; /* made once by pth_make.py */

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static ics_pth *load_fixture(const char *name, ics_error *err)
{
    char *p = path_in(fixtures, name);
    ics_pth *pth = NULL;
    ics_status st = ics_pth_load(p, &pth, err);
    if (st != ICS_OK) fprintf(stderr, "%s\n", err->message);
    free(p);
    return pth;
}

/* Compares every tensor of a dict with the expectation written by
 * pth_make.py: same names in the same order, dtypes, shapes, and the same
 * bytes (bitwise, so NaN payloads, -0.0 and int64 beyond 2^53 count). */
static void check_tensors(const ics_pv *dict, const char *expect)
{
    char name[256];
    snprintf(name, sizeof name, "%s.txt", expect);
    char *txt_path = path_in(fixtures, name);
    snprintf(name, sizeof name, "%s.bin", expect);
    char *bin_path = path_in(fixtures, name);
    size_t bin_len;
    char *txt = ics_test_read_file(txt_path, NULL);
    char *bin = ics_test_read_file(bin_path, &bin_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(txt);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bin);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dict);
    size_t index = 0, offset = 0;
    char *save = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), index++) {
        char key[200], dtype[32];
        int ndim, used;
        CU_ASSERT_FATAL(sscanf(line, "%199s %31s %d%n", key, dtype, &ndim, &used) == 3);
        CU_ASSERT_FATAL(index < dict->u.dict.len);
        const ics_pv *k = dict->u.dict.keys[index], *t = dict->u.dict.values[index];
        CU_ASSERT_STRING_EQUAL(k->u.str.data, key);
        CU_ASSERT_EQUAL_FATAL(t->kind, ICS_PV_TENSOR);
        CU_ASSERT_STRING_EQUAL(ics_pv_dtype_name(t->u.tensor.dtype), dtype);
        CU_ASSERT_EQUAL(t->u.tensor.ndim, ndim);
        const char *dims = line + used;
        for (int d = 0; d < ndim; d++) {
            long long v;
            int n;
            CU_ASSERT_FATAL(sscanf(dims, "%lld%n", &v, &n) == 1);
            dims += n;
            CU_ASSERT_EQUAL(t->u.tensor.shape[d], v);
        }
        size_t bytes = t->u.tensor.numel * ics_pv_dtype_size(t->u.tensor.dtype);
        CU_ASSERT_FATAL(offset + bytes <= bin_len);
        if (memcmp(t->u.tensor.data, bin + offset, bytes) != 0) {
            fprintf(stderr, "tensor %s differs from torch's bytes\n", key);
            CU_FAIL("tensor bytes differ");
        }
        offset += bytes;
    }
    CU_ASSERT_EQUAL(index, dict->u.dict.len);
    CU_ASSERT_EQUAL(offset, bin_len);
    free(txt);
    free(bin);
    free(txt_path);
    free(bin_path);
}

static void test_state_dict_variants(void)
{
    /* torch.save default, protocol 4, ZIP64 and DEFLATED repacks */
    static const char *const files[] = {"sd.pth", "sd_p4.pth", "sd_zip64.pth", "sd_deflate.pth"};
    /* torch 1.13 names the archive's folder after the file's stem; the
     * repacks keep sd.pth's folder */
    static const char *const folders[] = {"sd", "sd_p4", "sd", "sd"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        ics_error err;
        ics_pth *pth = load_fixture(files[i], &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pth);
        CU_ASSERT_STRING_EQUAL(ics_pth_archive_name(pth), folders[i]);
        const ics_pv *sd = ics_pth_state_dict(pth);
        CU_ASSERT_PTR_EQUAL(sd, ics_pth_root(pth));
        CU_ASSERT_TRUE(sd->u.dict.ordered);
        check_tensors(sd, "expect_sd");
        const ics_pv *nbt = ics_pv_dict_get(sd, "bn1.num_batches_tracked");
        CU_ASSERT_EQUAL(nbt->u.tensor.dtype, ICS_DT_INT64);
        CU_ASSERT_EQUAL(nbt->u.tensor.ndim, 0);
        CU_ASSERT_EQUAL(*(int64_t *)nbt->u.tensor.data, INT64_C(123456789012));
        /* conversion to float32: half and bfloat16 widen exactly */
        const ics_pv *h = ics_pv_dict_get(sd, "half");
        float f[7];
        CU_ASSERT_EQUAL(ics_pv_tensor_to_f32(h, f, 7, &err), ICS_OK);
        ics_pth_destroy(pth);
    }
}

/* The float32 values torch itself computes from the half, bfloat16 and
 * int tensors (written by pth_make.py as .npy) equal ours exactly. */
/* The legacy (pre-1.6) format of the same state_dict gives the same bytes. */
static void test_legacy_format(void)
{
    ics_error err;
    ics_pth *pth = load_fixture("legacy.pth", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pth);
    CU_ASSERT_STRING_EQUAL(ics_pth_archive_name(pth), "");
    check_tensors(ics_pth_state_dict(pth), "expect_sd");
    ics_pth_destroy(pth);
}

static void test_conversion_to_f32(void)
{
    ics_error err;
    ics_pth *pth = load_fixture("sd.pth", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pth);
    static const char *const names[] = {"half", "bfloat", "double", "int32",
                                        "int8", "uint8",  "mask",   "int64"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const ics_pv *t = ics_pv_dict_get(ics_pth_root(pth), names[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        int64_t shape[8];
        int ndim;
        char npy[64];
        snprintf(npy, sizeof npy, "f32_%s", names[i]);
        float *want = ics_test_npy_read_f32(fixtures, npy, shape, &ndim);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        float *got = malloc(t->u.tensor.numel * sizeof *got + 1);
        CU_ASSERT_EQUAL(ics_pv_tensor_to_f32(t, got, t->u.tensor.numel, &err), ICS_OK);
        CU_ASSERT(memcmp(got, want, t->u.tensor.numel * sizeof *got) == 0);
        free(got);
        free(want);
    }
    float one;
    CU_ASSERT_EQUAL(ics_pv_tensor_to_f32(ics_pv_dict_get(ics_pth_root(pth), "half"), &one, 1, &err),
                    ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "tensor has 7 elements, buffer 1"));
    CU_ASSERT_EQUAL(ics_pv_tensor_to_f32(ics_pth_root(pth), &one, 1, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "expected a tensor, got a dict"));
    ics_pth_destroy(pth);
}

static void test_training_checkpoint(void)
{
    ics_error err;
    ics_pth *pth = load_fixture("ckpt.pth", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pth);
    const ics_pv *root = ics_pth_root(pth);
    CU_ASSERT_FALSE(root->u.dict.ordered);
    const ics_pv *sd = ics_pth_state_dict(pth);
    CU_ASSERT_PTR_EQUAL(sd, ics_pv_dict_get(root, "state_dict"));
    check_tensors(sd, "expect_ckpt");
    CU_ASSERT_STRING_EQUAL(ics_pth_strip_module_prefix(sd->u.dict.keys[0]->u.str.data),
                           "conv1.weight");
    CU_ASSERT_STRING_EQUAL(ics_pth_strip_module_prefix("fc.bias"), "fc.bias");
    int64_t i;
    double f;
    CU_ASSERT(ics_pv_get_int(root, "epoch", &i) == 0 && i == 7);
    CU_ASSERT(ics_pv_get_int(root, "big", &i) == 0 && i == INT64_C(1) << 40);
    CU_ASSERT(ics_pv_get_int(root, "negbig", &i) == 0 && i == -(INT64_C(1) << 62));
    CU_ASSERT(ics_pv_get_int(root, "neg", &i) == 0 && i == -5);
    CU_ASSERT(ics_pv_get_int(root, "recipe", &i) != 0);
    CU_ASSERT(ics_pv_get_float(root, "epoch", &f) == 0 && f == 7.0);
    CU_ASSERT_EQUAL(ics_pv_dict_get(root, "nothing")->kind, ICS_PV_NONE);
    CU_ASSERT_STRING_EQUAL(ics_pv_get_string(root, "arch_key"), "resnet18");
    char *recipe_path = path_in(fixtures, "recipe.txt");
    char *recipe = ics_test_read_file(recipe_path, NULL);
    CU_ASSERT_STRING_EQUAL(ics_pv_get_string(root, "recipe"), recipe);
    free(recipe);
    free(recipe_path);
    CU_ASSERT_EQUAL(strlen(ics_pv_get_string(root, "long_text")), 300);
    const ics_pv *pair = ics_pv_dict_get(root, "pair");
    CU_ASSERT(pair->kind == ICS_PV_TUPLE && pair->u.seq.len == 2 && pair->u.seq.items[0]->u.i == 1);
    /* optimizer: {"state": {0: {...}}, "param_groups": [{...}]} */
    const ics_pv *opt = ics_pv_dict_get(root, "optimizer");
    const ics_pv *groups = ics_pv_dict_get(opt, "param_groups");
    CU_ASSERT_FATAL(groups && groups->kind == ICS_PV_LIST && groups->u.seq.len == 1);
    const ics_pv *g0 = groups->u.seq.items[0];
    CU_ASSERT(ics_pv_get_float(g0, "lr", &f) == 0 && f == 0.1);
    CU_ASSERT(ics_pv_get_float(g0, "weight_decay", &f) == 0 && f == 1e-4);
    CU_ASSERT(ics_pv_get_int(g0, "nesterov", &i) == 0 && i == 0);
    const ics_pv *params = ics_pv_dict_get(g0, "params");
    CU_ASSERT(params->u.seq.len == 2 && params->u.seq.items[1]->u.i == 1);
    const ics_pv *state = ics_pv_dict_get(opt, "state");
    CU_ASSERT_FATAL(state->u.dict.len == 1 && state->u.dict.keys[0]->kind == ICS_PV_INT);
    const ics_pv *mb = ics_pv_dict_get(state->u.dict.values[0], "momentum_buffer");
    CU_ASSERT(mb && mb->kind == ICS_PV_TENSOR && mb->u.tensor.numel == 18);
    /* argparse.Namespace: an opaque object with its __dict__ as state */
    const ics_pv *args = ics_pv_dict_get(root, "args");
    CU_ASSERT_EQUAL_FATAL(args->kind, ICS_PV_OBJECT);
    CU_ASSERT_STRING_EQUAL(args->u.object.class_name, "argparse.Namespace");
    CU_ASSERT_STRING_EQUAL(ics_pv_get_string(args->u.object.state, "arch_key"), "resnet18");
    const ics_pv *param = ics_pv_dict_get(root, "param");
    CU_ASSERT(param->kind == ICS_PV_TENSOR && param->u.tensor.is_parameter &&
              param->u.tensor.requires_grad);
    ics_pth_destroy(pth);
}

/* Each damaged fixture gives its one clear error. */
static void test_refusals(void)
{
    static const struct {
        const char *file, *message;
    } cases[] = {
        {"sd_nostorage.pth", "storage entry 'sd/data/0' is missing"},
        {"sd_short.pth", "storage 'sd/data/1' holds 60 bytes, but 30 float32 elements need 120"},
        {"recipe.txt", "not a PyTorch file (no zip signature)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = path_in(fixtures, cases[i].file);
        ics_pth *pth = NULL;
        ics_error err;
        ics_error_clear(&err);
        CU_ASSERT_EQUAL(ics_pth_load(p, &pth, &err), ICS_ERR_FORMAT);
        CU_ASSERT_PTR_NULL(pth);
        if (!strstr(err.message, cases[i].message)) {
            fprintf(stderr, "%s: got '%s'\n", cases[i].file, err.message);
            CU_FAIL("unexpected message");
        }
        free(p);
    }
    ics_pth *pth = NULL;
    ics_error err;
    CU_ASSERT_EQUAL(ics_pth_load("/nonexistent/x.pth", &pth, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "/nonexistent/x.pth: cannot open"));
}

/* A canonical text for a value tree, the same as dump() in pth_make.py:
 * floats as their bit patterns, strings and bytes in hex. */
static void dump(const ics_pv *v, char **buf, size_t *len, size_t *cap)
{
    char tmp[64];
    const char *text = tmp;
    switch (v->kind) {
    case ICS_PV_NONE:
        text = "N";
        break;
    case ICS_PV_BOOL:
        text = v->u.boolean ? "T" : "F";
        break;
    case ICS_PV_INT:
        snprintf(tmp, sizeof tmp, "i%" PRId64, v->u.i);
        break;
    case ICS_PV_FLOAT: {
        int64_t bits;
        memcpy(&bits, &v->u.f, 8);
        snprintf(tmp, sizeof tmp, "f%" PRId64, bits);
        break;
    }
    default:
        tmp[0] = '\0';
        break;
    }
    size_t need = strlen(text) + 3 +
                  (v->kind == ICS_PV_STRING || v->kind == ICS_PV_BYTES ? 2 * v->u.str.len : 0);
    if (*len + need + 1 > *cap) {
        *cap = (*len + need + 1) * 2;
        *buf = realloc(*buf, *cap);
    }
#define PUT(s) (*len += (size_t)sprintf(*buf + *len, "%s", (s)))
    switch (v->kind) {
    case ICS_PV_STRING:
    case ICS_PV_BYTES:
        *len += (size_t)sprintf(*buf + *len, "%c'", v->kind == ICS_PV_STRING ? 's' : 'b');
        for (size_t i = 0; i < v->u.str.len; i++)
            *len += (size_t)sprintf(*buf + *len, "%02x", (uint8_t)v->u.str.data[i]);
        PUT("'");
        break;
    case ICS_PV_TUPLE:
    case ICS_PV_LIST:
        PUT(v->kind == ICS_PV_TUPLE ? "(" : "[");
        for (size_t i = 0; i < v->u.seq.len; i++) {
            if (i) PUT(",");
            dump(v->u.seq.items[i], buf, len, cap);
        }
        PUT(v->kind == ICS_PV_TUPLE ? ")" : "]");
        break;
    case ICS_PV_DICT:
        PUT(v->u.dict.ordered ? "o{" : "{");
        for (size_t i = 0; i < v->u.dict.len; i++) {
            if (i) PUT(",");
            dump(v->u.dict.keys[i], buf, len, cap);
            PUT(":");
            dump(v->u.dict.values[i], buf, len, cap);
        }
        PUT("}");
        break;
    case ICS_PV_NONE:
    case ICS_PV_BOOL:
    case ICS_PV_INT:
    case ICS_PV_FLOAT:
        PUT(text);
        break;
    default:
        PUT("?");
        break;
    }
#undef PUT
}

static void test_plain_pickles(void)
{
    for (int proto = 2; proto <= 5; proto++) {
        char name[64];
        snprintf(name, sizeof name, "plain_p%d.pkl", proto);
        char *p = path_in(fixtures, name);
        size_t size;
        char *data = ics_test_read_file(p, &size);
        free(p);
        snprintf(name, sizeof name, "plain_p%d.txt", proto);
        p = path_in(fixtures, name);
        char *want = ics_test_read_file(p, NULL);
        free(p);
        CU_ASSERT_PTR_NOT_NULL_FATAL(data);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        ics_error err;
        ics_pv_arena *arena = ics_pv_arena_create(&err);
        ics_pv *root;
        ics_status st =
            ics_pickle_load((const uint8_t *)data, size, name, arena, NULL, NULL, &root, &err);
        if (st != ICS_OK) fprintf(stderr, "%s\n", err.message);
        CU_ASSERT_EQUAL_FATAL(st, ICS_OK);
        char *got = NULL;
        size_t len = 0, cap = 0;
        dump(root, &got, &len, &cap);
        if (strcmp(got, want) != 0)
            fprintf(stderr, "protocol %d:\n got  %s\n want %s\n", proto, got, want);
        CU_ASSERT_STRING_EQUAL(got, want);
        free(got);
        free(want);
        free(data);
        ics_pv_arena_destroy(arena);
    }
}

/* Adds a tensor to dict and its line and bytes to the expectation files,
 * in the format pth_make.py uses. */
static ics_pv *add_tensor(ics_pv_arena *arena, ics_pv *dict, const char *name, ics_pv_dtype dtype,
                          int ndim, const int64_t *shape, const void *data, FILE *txt, FILE *bin)
{
    ics_error err;
    ics_pv *t = ics_pv_new_tensor(arena, dtype, ndim, shape, data, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(ics_pv_dict_set_str(arena, dict, name, t, &err), ICS_OK);
    if (txt) {
        fprintf(txt, "%s %s %d", name, ics_pv_dtype_name(dtype), ndim);
        for (int d = 0; d < ndim; d++)
            fprintf(txt, " %lld", (long long)shape[d]);
        fprintf(txt, "\n");
        fwrite(t->u.tensor.data, ics_pv_dtype_size(dtype), t->u.tensor.numel, bin);
    }
    return t;
}

static ics_pv *str_value(ics_pv_arena *arena, const char *s)
{
    ics_error err;
    return ics_pv_new_string(arena, s, strlen(s), &err);
}

/* The state_dict, the checkpoints and a ZIP64 zip that pth_check.py loads
 * with torch.load(weights_only=True) and zipfile; the checkpoint values
 * here are spelled out again there. */
static void test_writer_read_by_torch(void)
{
    const char *dir = fixtures;
    ics_error err;
    ics_pv_arena *arena = ics_pv_arena_create(&err);
    char *p = path_in(dir, "expect_c.txt");
    FILE *txt = fopen(p, "w");
    free(p);
    p = path_in(dir, "expect_c.bin");
    FILE *bin = fopen(p, "wb");
    free(p);
    CU_ASSERT_FATAL(txt && bin);

    ics_pv *sd = ics_pv_new_dict(arena, 1, &err);
    uint64_t rng = 42;
    float w[54];
    ics_test_fill_uniform(w, 54, -1.0f, 1.0f, &rng);
    uint32_t nan_bits = 0x7fc01234u; /* a NaN with a payload: bitwise copy */
    memcpy(&w[0], &nan_bits, 4);
    w[1] = -0.0f;
    w[2] = 1e-42f; /* subnormal */
    add_tensor(arena, sd, "conv1.weight", ICS_DT_FLOAT32, 4, (int64_t[]){2, 3, 3, 3}, w, txt, bin);
    int64_t nbt = (INT64_C(1) << 40) + 3;
    add_tensor(arena, sd, "bn1.num_batches_tracked", ICS_DT_INT64, 0, NULL, &nbt, txt, bin);
    double d64[3] = {0.1, -1e300, 3.0};
    add_tensor(arena, sd, "double", ICS_DT_FLOAT64, 1, (int64_t[]){3}, d64, txt, bin);
    uint16_t half[4] = {0x3c00, 0xc000, 0x0001, 0x7bff}; /* 1, -2, smallest subnormal, max */
    add_tensor(arena, sd, "half", ICS_DT_FLOAT16, 2, (int64_t[]){2, 2}, half, txt, bin);
    uint16_t bf[2] = {0x3f80, 0xc0a0}; /* 1, -5 */
    add_tensor(arena, sd, "bfloat", ICS_DT_BFLOAT16, 1, (int64_t[]){2}, bf, txt, bin);
    int32_t i32[3] = {-7, 0, INT32_MAX};
    add_tensor(arena, sd, "int32", ICS_DT_INT32, 1, (int64_t[]){3}, i32, txt, bin);
    int16_t i16[2] = {-300, 300};
    add_tensor(arena, sd, "int16", ICS_DT_INT16, 1, (int64_t[]){2}, i16, txt, bin);
    int8_t i8[3] = {-128, 0, 127};
    add_tensor(arena, sd, "int8", ICS_DT_INT8, 1, (int64_t[]){3}, i8, txt, bin);
    uint8_t u8[2] = {0, 255}, mask[3] = {1, 0, 1};
    add_tensor(arena, sd, "uint8", ICS_DT_UINT8, 1, (int64_t[]){2}, u8, txt, bin);
    add_tensor(arena, sd, "mask", ICS_DT_BOOL, 1, (int64_t[]){3}, mask, txt, bin);
    int64_t i64[2] = {INT64_MIN, (INT64_C(1) << 53) + 1};
    add_tensor(arena, sd, "int64", ICS_DT_INT64, 1, (int64_t[]){2}, i64, txt, bin);
    add_tensor(arena, sd, "empty", ICS_DT_FLOAT32, 2, (int64_t[]){0, 3}, NULL, txt, bin);
    fclose(txt);
    fclose(bin);
    p = path_in(dir, "sd_c.pth");
    CU_ASSERT_EQUAL(ics_pth_save(p, sd, NULL, &err), ICS_OK);
    /* and our own reader gives the same tree back */
    ics_pth *back = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_pth_load(p, &back, &err), ICS_OK);
    CU_ASSERT_STRING_EQUAL(ics_pth_archive_name(back), "archive");
    const ics_pv *sd2 = ics_pth_state_dict(back);
    CU_ASSERT_EQUAL_FATAL(sd2->u.dict.len, sd->u.dict.len);
    for (size_t i = 0; i < sd->u.dict.len; i++) {
        const ics_pv *a = sd->u.dict.values[i], *b = sd2->u.dict.values[i];
        CU_ASSERT_STRING_EQUAL(sd->u.dict.keys[i]->u.str.data, sd2->u.dict.keys[i]->u.str.data);
        CU_ASSERT(a->u.tensor.dtype == b->u.tensor.dtype && a->u.tensor.numel == b->u.tensor.numel);
        CU_ASSERT(memcmp(a->u.tensor.data, b->u.tensor.data,
                         a->u.tensor.numel * ics_pv_dtype_size(a->u.tensor.dtype)) == 0);
    }
    ics_pth_destroy(back);
    free(p);

    /* checkpoint without floats */
    ics_pv *ck = ics_pv_new_dict(arena, 0, &err);
    ics_pv *msd = ics_pv_new_dict(arena, 1, &err);
    add_tensor(arena, msd, "module.conv1.weight", ICS_DT_FLOAT32, 4, (int64_t[]){2, 3, 3, 3}, w,
               NULL, NULL);
    add_tensor(arena, msd, "module.bn1.num_batches_tracked", ICS_DT_INT64, 0, NULL, &nbt, NULL,
               NULL);
    ics_pv_dict_set_str(arena, ck, "state_dict", msd, &err);
    ics_pv_dict_set_str(arena, ck, "epoch", ics_pv_new_int(arena, -1, &err), &err);
    ics_pv_dict_set_str(arena, ck, "recipe",
                        str_value(arena, "version: 1.1.0\nmodifiers: []\n# \xc2\xb5 recipe\n"),
                        &err);
    ics_pv_dict_set_str(arena, ck, "arch_key", str_value(arena, "resnet50"), &err);
    ics_pv *opt = ics_pv_new_dict(arena, 0, &err), *state = ics_pv_new_dict(arena, 0, &err);
    ics_pv *s0 = ics_pv_new_dict(arena, 0, &err);
    ics_pv_dict_set_str(arena, s0, "step", ics_pv_new_int(arena, 10, &err), &err);
    ics_pv_dict_set(arena, state, ics_pv_new_int(arena, 0, &err), s0, &err);
    ics_pv_dict_set_str(arena, opt, "state", state, &err);
    ics_pv *groups = ics_pv_new(arena, ICS_PV_LIST, &err), *g0 = ics_pv_new_dict(arena, 0, &err);
    ics_pv *params = ics_pv_new(arena, ICS_PV_LIST, &err);
    ics_pv_seq_append(arena, params, ics_pv_new_int(arena, 0, &err), &err);
    ics_pv_seq_append(arena, params, ics_pv_new_int(arena, 1, &err), &err);
    ics_pv_dict_set_str(arena, g0, "params", params, &err);
    ics_pv_dict_set_str(arena, g0, "nesterov", ics_pv_new_bool(arena, 1, &err), &err);
    ics_pv_dict_set_str(arena, g0, "dampening", ics_pv_new(arena, ICS_PV_NONE, &err), &err);
    ics_pv_seq_append(arena, groups, g0, &err);
    ics_pv_dict_set_str(arena, opt, "param_groups", groups, &err);
    ics_pv_dict_set_str(arena, ck, "optimizer", opt, &err);
    ics_pv_dict_set_str(arena, ck, "big", ics_pv_new_int(arena, INT64_C(1) << 40, &err), &err);
    ics_pv_dict_set_str(arena, ck, "neg", ics_pv_new_int(arena, -(INT64_C(1) << 62), &err), &err);
    ics_pv_dict_set_str(arena, ck, "small", ics_pv_new_int(arena, -5, &err), &err);
    ics_pv *tup = ics_pv_new(arena, ICS_PV_TUPLE, &err);
    ics_pv_seq_append(arena, tup, ics_pv_new_int(arena, 1, &err), &err);
    ics_pv_seq_append(arena, tup, str_value(arena, "two"), &err);
    ics_pv_seq_append(arena, tup, ics_pv_new(arena, ICS_PV_NONE, &err), &err);
    ics_pv_seq_append(arena, tup, ics_pv_new_bool(arena, 0, &err), &err);
    ics_pv_dict_set_str(arena, ck, "tuple", tup, &err);
    float pv[3] = {1, 2, 3};
    ics_pv *param =
        add_tensor(arena, ck, "param", ICS_DT_FLOAT32, 1, (int64_t[]){3}, pv, NULL, NULL);
    param->u.tensor.is_parameter = 1;
    param->u.tensor.requires_grad = 1;
    /* the state_dict with torch's _metadata attribute (module versions;
     * pth_check.py expects these) */
    static const char *const mods[] = {"", "module", "module.conv1", "module.bn1"};
    static const int versions[] = {1, 1, 1, 2};
    ics_pv *meta = ics_pv_new_dict(arena, 1, &err), *attrs = ics_pv_new_dict(arena, 0, &err);
    for (int i = 0; i < 4; i++) {
        ics_pv *e = ics_pv_new_dict(arena, 0, &err);
        ics_pv_dict_set_str(arena, e, "version", ics_pv_new_int(arena, versions[i], &err), &err);
        ics_pv_dict_set_str(arena, meta, mods[i], e, &err);
    }
    ics_pv_dict_set_str(arena, attrs, "_metadata", meta, &err);
    p = path_in(dir, "ckpt_c.pth");
    CU_ASSERT_EQUAL(ics_pth_save_attrs(p, ck, "ckpt", msd, attrs, &err), ICS_OK);
    /* our reader passes over the attribute: the same state_dict */
    CU_ASSERT_EQUAL_FATAL(ics_pth_load(p, &back, &err), ICS_OK);
    sd2 = ics_pth_state_dict(back);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sd2);
    CU_ASSERT_EQUAL_FATAL(sd2->u.dict.len, 2);
    CU_ASSERT_STRING_EQUAL(sd2->u.dict.keys[0]->u.str.data, "module.conv1.weight");
    CU_ASSERT_STRING_EQUAL(sd2->u.dict.keys[1]->u.str.data, "module.bn1.num_batches_tracked");
    CU_ASSERT(memcmp(sd2->u.dict.values[0]->u.tensor.data, w, sizeof w) == 0);
    CU_ASSERT(*(const int64_t *)sd2->u.dict.values[1]->u.tensor.data == nbt);
    ics_pth_destroy(back);
    free(p);

    ics_pv *ckf = ics_pv_new_dict(arena, 0, &err), *vals = ics_pv_new(arena, ICS_PV_LIST, &err);
    ics_pv_dict_set_str(arena, ckf, "lr", ics_pv_new_float(arena, 0.1, &err), &err);
    ics_pv_dict_set_str(arena, ckf, "epoch", ics_pv_new_float(arena, 2.5, &err), &err);
    ics_pv_seq_append(arena, vals, ics_pv_new_float(arena, 1e-4, &err), &err);
    ics_pv_seq_append(arena, vals, ics_pv_new_float(arena, -0.0, &err), &err);
    ics_pv_seq_append(arena, vals, ics_pv_new_float(arena, 1.0 / 0.0, &err), &err);
    ics_pv_dict_set_str(arena, ckf, "values", vals, &err);
    p = path_in(dir, "ckpt_c_float.pth");
    CU_ASSERT_EQUAL(ics_pth_save(p, ckf, NULL, &err), ICS_OK);
    free(p);

    /* ZIP64 records, forced on small entries */
    p = path_in(dir, "zip64_c.zip");
    ics_zip_writer *zw;
    CU_ASSERT_EQUAL_FATAL(ics_zip_writer_open(p, &zw, &err), ICS_OK);
    ics_zip_writer_set_zip64_threshold(zw, 0);
    uint8_t bytes[100];
    for (int i = 0; i < 100; i++)
        bytes[i] = (uint8_t)i;
    CU_ASSERT_EQUAL(ics_zip_writer_add(zw, "a/x", bytes, 100, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_zip_writer_add(zw, "a/y", "hello", 5, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_zip_writer_close(zw, &err), ICS_OK);
    free(p);
    ics_pv_arena_destroy(arena);

    /* one torch start: pth_make.py makes the reader's fixtures and, seeing
     * sd_c.pth, runs pth_check.py on these files */
    CU_ASSERT_EQUAL(ics_test_run_torch("tests/torchref/pth_make.py", dir), 0);
}

/* The mutation test (test_pth_fuzz) over torch's own files. */
static void test_mutations_of_torch_files(void)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "ICS_PTH_SEEDS='%s' '%s/tests/unit/test_pth_fuzz'", fixtures,
             ics_test_builddir());
    char *out = NULL;
    int rc = ics_test_run(cmd, &out);
    if (rc != 0) fprintf(stderr, "%s failed (%d):\n%s\n", cmd, rc, out ? out : "");
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "from 15 seeds"));
    free(out);
}

int main(void)
{
    if (!ics_test_have_torch()) {
        fprintf(stderr, "test_pth: $PYTHON_TORCH cannot import torch: skipped\n");
        return 77;
    }
    fixtures = ics_test_tmpdir("pth");
    /* first: the writer's files, then one torch run that checks them and
     * makes the reader's fixtures */
    static const ics_test_case writer[] = {
        {"C-written files read by torch.load(weights_only=True)", test_writer_read_by_torch},
        {NULL, NULL}};
    ics_test_add_suite("pth writer", writer);
    static const ics_test_case reader[] = {
        {"state_dict: default, protocol 4, zip64, deflate", test_state_dict_variants},
        {"legacy pre-1.6 format", test_legacy_format},
        {"conversion to float32 matches torch", test_conversion_to_f32},
        {"training checkpoint values", test_training_checkpoint},
        {"refusals of damaged files", test_refusals},
        {"plain pickles, protocols 2-5", test_plain_pickles},
        {"mutations of torch's files never crash", test_mutations_of_torch_files},
        {NULL, NULL}};
    ics_test_add_suite("pth reader", reader);
    int rc = ics_test_main("test_pth");
    ics_test_rmtree(fixtures);
    free(fixtures);
    return rc;
}
