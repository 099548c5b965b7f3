/* The .pth building blocks without torch: CRC-32, the pickle virtual
 * machine on hand-written opcode streams, the zip reader on damaged
 * archives, the writers' refusals, and every allocation failure. */
#include "ics_build_config.h"
#include "test_util.h"
#include "core/alloc.h"
#include "io/pickle_reader.h"
#include "io/pickle_writer.h"
#include "io/pth_reader.h"
#include "io/pth_writer.h"
#include "io/zip_format.h"
#include "io/zip_reader.h"
#include "io/zip_writer.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

static char *tmp; /* scratch directory for this program */

static char *tmp_path(const char *name)
{
    char *p = malloc(strlen(tmp) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmp, name);
    return p;
}

static void expect_message(const ics_error *err, const char *want)
{
    if (!strstr(err->message, want)) {
        fprintf(stderr, "\n  expected '%s'\n  got      '%s'\n", want, err->message);
        CU_FAIL("error message");
    }
}

static void test_crc32(void)
{
    CU_ASSERT_EQUAL(ics_crc32_update(0, "123456789", 9), 0xCBF43926u);
    CU_ASSERT_EQUAL(ics_crc32_update(0, "", 0), 0u);
    /* zlib's crc32 is the reference; ours fed in uneven pieces */
    uint8_t buf[10007];
    uint64_t state = 7;
    for (size_t i = 0; i < sizeof buf; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(state >> 56);
    }
    uint32_t c = ics_crc32_update(0, buf, 1000);
    c = ics_crc32_update(c, buf + 1000, 3);
    c = ics_crc32_update(c, buf + 1003, sizeof buf - 1003);
    CU_ASSERT_EQUAL(c, (uint32_t)crc32(0L, buf, sizeof buf));
}

static ics_status run(const char *bytes, size_t n, const ics_pickle_limits *limits,
                      const ics_pickle_hooks *hooks, ics_pv_arena *arena, ics_pv **root,
                      ics_error *err)
{
    return ics_pickle_load((const uint8_t *)bytes, n, "t.pkl", arena, hooks, limits, root, err);
}

#define RUN(lit, limits, hooks, arena, root, err)                                                  \
    run((lit), sizeof(lit) - 1, (limits), (hooks), (arena), (root), (err))

/* Streams the VM must refuse, with the message each one gives. */
static void test_vm_refusals(void)
{
    static const ics_pickle_limits tiny = {.max_stack = 4, .max_marks = 2, .max_memo = 8};
    static const struct {
        const char *bytes;
        size_t len;
        int tiny_limits;
        const char *message;
    } cases[] = {
#define C(lit, tiny, msg) {lit, sizeof(lit) - 1, tiny, msg}
        C("\x80\x02\xff", 0,
          "t.pkl: pickle: unknown or unsupported opcode 0xff (opcode at offset 2)"),
        C("\x80\x02S'a'\n.", 0, "unknown or unsupported opcode 0x53 ('S')"),
        C("\x80\x02N", 0, "truncated stream, no STOP (opcode at offset 3)"),
        C("\x80\x02X\x05\x00\x00\x00"
          "ab",
          0, "truncated stream"),
        C("\x80\x02J\x01\x02", 0, "truncated stream"),
        C("\x80\x02"
          "cfoo\nbar",
          0, "truncated stream"),
        C("\x80\x02.", 0, "stack underflow (opcode at offset 2)"),
        C("\x80\x02N(0.", 0, "stack underflow"),
        C("\x80\x02N(\x85.", 0, "stack underflow"),
        C("\x80\x02h\x05.", 0, "memo index 5 out of range (never stored)"),
        C("\x80\x02j\x00\x00\x00\x01.", 0, "memo index 16777216 out of range (never stored)"),
        C("\x80\x02Nr\x09\x00\x00\x00.", 1, "memo index 9 out of range (limit 8)"),
        C("\x80\x02NNNNN.", 1, "stack deeper than 4 values (limit)"),
        C("\x80\x02(((.", 1, "more than 2 nested MARKs (limit)"),
        C("\x80\x06N.", 0, "unsupported pickle protocol 6"),
        C("\x80\x02Nt.", 0, "no MARK on the stack"),
        C("\x80\x02}(Nu.", 0, "odd number of items for a dict"),
        C("\x80\x02N(NNu.", 0, "cannot set an item of a None"),
        C("\x80\x02N(Ne.", 0, "cannot append to a None"),
        C("\x80\x02NN\x93.", 0, "STACK_GLOBAL needs two strings"),
        C("\x80\x02N)R.", 0, "cannot call a None (only classes and functions named by GLOBAL)"),
        C("\x80\x02"
          "cfoo\nbar\nNR.",
          0, "arguments of foo.bar are a None, not a tuple"),
        C("\x80\x02NNb.", 0, "BUILD on a None"),
        C("\x80\x02NQ.", 0, "persistent id without a loader for it"),
        C("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.", 0,
          "integer of 9 bytes does not fit in int64"),
        C("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.", 0,
          "integer of 9 bytes does not fit"), /* 2^63 */
        C("\x80\x02\x8b\x05\x00\x00\x00\x00", 0, "truncated stream"),
        C("\x80\x02\x8a\x05\x00", 0, "truncated stream"),
        C("\x80\x02\x8c\x03"
          "abc\x8c\x03"
          "abc\x93K\x01\x85R.",
          0, "no"), /* placeholder, see below */
        C("\x80\x02\x63"
          "collections\nOrderedDict\nK\x01\x85R.",
          0, "OrderedDict called with unexpected arguments"),
        C("\x80\x02\x63"
          "collections\nOrderedDict\n(K\x01l\x85R.",
          0, "OrderedDict item is not a pair"),
        C("\x80\x02\x63__builtin__\nset\nK\x01\x85R.", 0, "set built from a non-sequence"),
        C("\x80\x02\x63_codecs\nencode\nX\x03\x00\x00\x00\xe2\x82\xacX\x06\x00\x00\x00latin1\x86R.",
          0, "latin-1 text holds a character above U+00FF"),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(cases[i].message, "no") == 0) continue;
        ics_error err;
        ics_pv_arena *arena = ics_pv_arena_create(&err);
        ics_pv *root = NULL;
        ics_status st = run(cases[i].bytes, cases[i].len, cases[i].tiny_limits ? &tiny : NULL, NULL,
                            arena, &root, &err);
        if (st != ICS_ERR_FORMAT) fprintf(stderr, "\n  case %zu: status %d\n", i, st);
        CU_ASSERT_EQUAL(st, ICS_ERR_FORMAT);
        CU_ASSERT_PTR_NULL(root);
        expect_message(&err, cases[i].message);
        ics_pv_arena_destroy(arena);
    }
}

/* Opcodes torch rarely emits but the VM supports, checked value by value. */
static void test_vm_values(void)
{
    ics_error err;
    ics_pv_arena *arena = ics_pv_arena_create(&err);
    ics_pv *r;
    /* memo sharing: the same list twice */
    CU_ASSERT_EQUAL_FATAL(RUN("\x80\x02]q\x00h\x00\x86.", NULL, NULL, arena, &r, &err), ICS_OK);
    CU_ASSERT(r->kind == ICS_PV_TUPLE && r->u.seq.items[0] == r->u.seq.items[1]);
    /* DICT from a MARK, and a repeated key keeps its first position */
    CU_ASSERT_EQUAL_FATAL(RUN("\x80\x02(X\x01\x00\x00\x00"
                              "aK\x01X\x01\x00\x00\x00"
                              "bK\x02"
                              "X\x01\x00\x00\x00"
                              "aK\x03"
                              "d.",
                              NULL, NULL, arena, &r, &err),
                          ICS_OK);
    CU_ASSERT_EQUAL_FATAL(r->u.dict.len, 2);
    CU_ASSERT_STRING_EQUAL(r->u.dict.keys[0]->u.str.data, "a");
    CU_ASSERT_EQUAL(r->u.dict.values[0]->u.i, 3);
    CU_ASSERT_FALSE(r->u.dict.ordered);
    /* True and 1 are the same key, as in Python */
    CU_ASSERT_EQUAL_FATAL(RUN("\x80\x02}(\x88K\x05K\x01K\x06u.", NULL, NULL, arena, &r, &err),
                          ICS_OK);
    CU_ASSERT(r->u.dict.len == 1 && r->u.dict.values[0]->u.i == 6);
    /* POP_MARK, DUP, POP; LONG1 / LONG4 sign handling: -1, 0, -2 (9 bytes
     * with sign extension), -32768; then TUPLE3, TUPLE1, TUPLE2 */
    CU_ASSERT_EQUAL_FATAL(RUN("\x80\x02(NN1"
                              "K\x07\x32\x30\x8a\x01\xff\x8a\x00\x8a\x09\xfe\xff\xff\xff"
                              "\xff\xff\xff\xff\xff\x8b\x02\x00\x00\x00\x00\x80\x87\x85\x86.",
                              NULL, NULL, arena, &r, &err),
                          ICS_OK);
    CU_ASSERT_EQUAL_FATAL(r->u.seq.len, 2); /* STOP returns the top: 7 stays below */
    CU_ASSERT_EQUAL(r->u.seq.items[0]->u.i, -1);
    CU_ASSERT_EQUAL_FATAL(r->u.seq.items[1]->u.seq.len, 1);
    const ics_pv *t3 = r->u.seq.items[1]->u.seq.items[0];
    CU_ASSERT(t3->u.seq.items[0]->u.i == 0 && t3->u.seq.items[1]->u.i == -2 &&
              t3->u.seq.items[2]->u.i == -32768);
    /* NEWOBJ_EX with and without keyword arguments, BUILD state, and BUILD
     * on an OrderedDict (ignored, as torch's weights_only loader does) */
    CU_ASSERT_EQUAL_FATAL(RUN("\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x03mod\x94\x8c\x03"
                              "Cls\x94\x93)}\x92}(K\x01K\x02ub\x8c\x03mod\x8c\x01K\x93)}(K\x01K"
                              "\x02u\x92\x86.",
                              NULL, NULL, arena, &r, &err),
                          ICS_OK);
    const ics_pv *o1 = r->u.seq.items[0], *o2 = r->u.seq.items[1];
    CU_ASSERT_EQUAL_FATAL(o1->kind, ICS_PV_OBJECT);
    CU_ASSERT_STRING_EQUAL(o1->u.object.class_name, "mod.Cls");
    CU_ASSERT(o1->u.object.state && o1->u.object.state->u.dict.len == 1);
    CU_ASSERT_STRING_EQUAL(o2->u.object.class_name, "mod.K");
    CU_ASSERT(o2->u.object.state && o2->u.object.state->kind == ICS_PV_DICT);
    CU_ASSERT_EQUAL_FATAL(RUN("\x80\x02\x63"
                              "collections\nOrderedDict\n)RNb.",
                              NULL, NULL, arena, &r, &err),
                          ICS_OK);
    CU_ASSERT(r->kind == ICS_PV_DICT && r->u.dict.ordered);
    /* OrderedDict([(k, v)]) as copyreg reduces it; APPEND; EMPTY_SET + ADDITEMS */
    CU_ASSERT_EQUAL_FATAL(RUN("\x80\x02\x63"
                              "collections\nOrderedDict\n]X\x01\x00\x00\x00kK\x09\x86"
                              "a\x85R\x8f(K\x01K\x02\x90\x86.",
                              NULL, NULL, arena, &r, &err),
                          ICS_OK);
    CU_ASSERT_EQUAL(ics_pv_dict_get(r->u.seq.items[0], "k")->u.i, 9);
    CU_ASSERT_EQUAL(r->u.seq.items[1]->u.seq.len, 2);
    /* an unknown class stays opaque and nothing is called */
    CU_ASSERT_EQUAL_FATAL(
        RUN("\x80\x02\x63os\nsystem\nX\x02\x00\x00\x00rm\x85R.", NULL, NULL, arena, &r, &err),
        ICS_OK);
    CU_ASSERT_STRING_EQUAL(r->u.object.class_name, "os.system");
    CU_ASSERT_STRING_EQUAL(r->u.object.args->u.seq.items[0]->u.str.data, "rm");
    ics_pv_arena_destroy(arena);
}

/* A hook's failure reaches the caller with the stream and offset added. */
static ics_pv *refusing_loader(void *ctx, ics_pv_arena *arena, ics_pv *pid, ics_error *err)
{
    (void)ctx, (void)arena, (void)pid;
    ICS_FAIL(err, ICS_ERR_FORMAT, "no such storage");
    return NULL;
}

static ics_status refusing_call(void *ctx, ics_pv_arena *arena, const ics_pv *g, ics_pv *args,
                                ics_pv **result, ics_error *err)
{
    (void)ctx, (void)arena, (void)g, (void)args, (void)result;
    return ICS_FAIL(err, ICS_ERR_FORMAT, "refused call");
}

static void test_vm_hooks(void)
{
    ics_error err;
    ics_pv_arena *arena = ics_pv_arena_create(&err);
    ics_pickle_hooks hooks = {.persistent_load = refusing_loader, .call = refusing_call};
    ics_pv *r;
    CU_ASSERT_EQUAL(RUN("\x80\x02NQ.", NULL, &hooks, arena, &r, &err), ICS_ERR_FORMAT);
    expect_message(&err, "t.pkl: pickle offset 3: no such storage");
    CU_ASSERT_EQUAL(RUN("\x80\x02\x63x\ny\n)R.", NULL, &hooks, arena, &r, &err), ICS_ERR_FORMAT);
    expect_message(&err, "t.pkl: pickle offset 8: refused call");
    ics_pv_arena_destroy(arena);
}

/* Builders' refusals, and conversions to float32 checked by formula. */
static void test_value_builders(void)
{
    ics_error err;
    ics_pv_arena *arena = ics_pv_arena_create(&err);
    int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CU_ASSERT_PTR_NULL(ics_pv_new_tensor(arena, ICS_DT_FLOAT32, 9, shape, NULL, &err));
    expect_message(&err, "tensor with 9 dimensions (at most 8)");
    shape[1] = -1;
    CU_ASSERT_PTR_NULL(ics_pv_new_tensor(arena, ICS_DT_FLOAT32, 2, shape, NULL, &err));
    expect_message(&err, "tensor dimension 1 has bad size -1");
    ics_pv *d = ics_pv_new_dict(arena, 0, &err), *l = ics_pv_new(arena, ICS_PV_LIST, &err);
    CU_ASSERT_EQUAL(ics_pv_seq_append(arena, d, l, &err), ICS_ERR_INVALID);
    expect_message(&err, "cannot append to a dict");
    CU_ASSERT_EQUAL(ics_pv_dict_set(arena, l, d, d, &err), ICS_ERR_INVALID);
    expect_message(&err, "cannot set an item of a list");
    /* float16: 1, -2, 2^-24 (smallest subnormal), 65504, inf; bfloat16 -5 */
    uint16_t h[5] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00};
    ics_pv *t = ics_pv_new_tensor(arena, ICS_DT_FLOAT16, 1, (int64_t[]){5}, h, &err);
    float f[5];
    CU_ASSERT_EQUAL(ics_pv_tensor_to_f32(t, f, 5, &err), ICS_OK);
    CU_ASSERT(f[0] == 1.0f && f[1] == -2.0f && f[2] == 0x1p-24f && f[3] == 65504.0f &&
              f[4] > 1e38f);
    ics_pv_arena_destroy(arena);
}

/* An archive with the given entries, written by our writer. */
static uint8_t *make_zip(const char *name, const char *const *names, const char *const *texts,
                         size_t n, uint64_t zip64_threshold, size_t *size)
{
    char *p = tmp_path(name);
    ics_error err;
    ics_zip_writer *zw;
    CU_ASSERT_EQUAL_FATAL(ics_zip_writer_open(p, &zw, &err), ICS_OK);
    if (zip64_threshold) ics_zip_writer_set_zip64_threshold(zw, zip64_threshold);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(ics_zip_writer_add(zw, names[i], texts[i], strlen(texts[i]), &err), ICS_OK);
    CU_ASSERT_EQUAL_FATAL(ics_zip_writer_close(zw, &err), ICS_OK);
    uint8_t *data = (uint8_t *)ics_test_read_file(p, size);
    free(p);
    return data;
}

/* Opens data as a zip and extracts entry 0; returns the status. */
static ics_status open_extract(const uint8_t *data, size_t size, uint64_t max_size, ics_error *err)
{
    ics_zip_reader *zr;
    ics_status st = ics_zip_reader_open(data, size, "t.zip", &zr, err);
    if (st != ICS_OK) return st;
    uint8_t *out = NULL;
    size_t n;
    st = ics_zip_extract(zr, ics_zip_entry_at(zr, 0), max_size, &out, &n, err);
    free(out);
    ics_zip_reader_close(zr);
    return st;
}

static size_t find_sig(const uint8_t *d, size_t n, uint32_t sig)
{
    for (size_t i = n - 4; i > 0; i--)
        if (ics_zip_rd32(d + i) == sig) return i;
    return 0;
}

/* Damaged archives: each patch gives its one error. */
static void test_zip_refusals(void)
{
    static const char *const names[] = {"a/x"};
    static const char *const texts[] = {"hello zip"};
    size_t size;
    uint8_t *good = make_zip("one.zip", names, texts, 1, 0, &size);
    uint8_t *d = malloc(size);
    size_t cd = find_sig(good, size, ICS_ZIP_CENTRAL_SIG), eocd = size - ICS_ZIP_EOCD_SIZE;
    size_t data_at = 64; /* aligned by the writer */
    CU_ASSERT_EQUAL(memcmp(good + data_at, "hello zip", 9), 0);
    ics_error err;
    CU_ASSERT_EQUAL(open_extract(good, size, 0, &err), ICS_OK);
    struct {
        size_t at;
        uint32_t value;
        int bytes;
        uint64_t max_size;
        const char *message;
    } cases[] = {
        {eocd, 0, 4, 0, "t.zip: bad zip archive: no end-of-central-directory record (truncated?)"},
        {eocd + 16, 0x7fff0000u, 4, 0, "lies outside the"},
        {cd, 0x12345678u, 4, 0, "central directory entry 0 is damaged"},
        {cd + 28, 0xffff, 2, 0, "central directory entry 0 is damaged"},
        {cd + 8, 0x0801, 2, 0, "zip entry 'a/x' is encrypted"},
        {0, 0x12345678u, 4, 0, "local header of 'a/x' missing at offset 0"},
        {30, 'b', 1, 0, "local header of 'a/x' disagrees with the central directory"},
        {cd + 20, 0x10000, 4, 0, "zip entry 'a/x' is truncated: 65536 bytes expected at offset 64"},
        {cd + 24, 10, 4, 0, "stored entry 'a/x' has different stored and real sizes"},
        {eocd + 4, 1, 2, 0, "multi-disk zip archives are not supported"},
        {data_at, 'j', 1, 0, "zip entry 'a/x' is corrupt: CRC-32"},
        {data_at, 'h', 1, 4, "zip entry 'a/x' claims an implausible size (9 bytes)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(d, good, size);
        for (int b = 0; b < cases[i].bytes; b++)
            d[cases[i].at + b] = (uint8_t)(cases[i].value >> (8 * b));
        ics_error_clear(&err);
        CU_ASSERT_EQUAL(open_extract(d, size, cases[i].max_size, &err), ICS_ERR_FORMAT);
        expect_message(&err, cases[i].message);
    }
    /* compression methods: 12 (bzip2) refused; 8 with data that is not deflate */
    memcpy(d, good, size);
    d[8] = d[cd + 10] = 12;
    CU_ASSERT_EQUAL(open_extract(d, size, 0, &err), ICS_ERR_FORMAT);
    expect_message(
        &err,
        "zip entry 'a/x' uses compression method 12 (only stored and deflated are supported)");
    d[8] = d[cd + 10] = 8;
    d[data_at] = 0xff; /* block type 3: invalid */
    CU_ASSERT_EQUAL(open_extract(d, size, 0, &err), ICS_ERR_FORMAT);
    expect_message(&err,
                   "zip entry 'a/x': compressed data is damaged or does not inflate to 9 bytes");
    free(d);
    free(good);

    /* ZIP64: our writer's records read back; damaged ones refused */
    good = make_zip("z64.zip", names, texts, 1, 1, &size);
    d = malloc(size);
    CU_ASSERT_EQUAL(open_extract(good, size, 0, &err), ICS_OK);
    size_t rec = find_sig(good, size, ICS_ZIP64_EOCD_SIG),
           loc = find_sig(good, size, ICS_ZIP64_LOCATOR_SIG);
    cd = find_sig(good, size, ICS_ZIP_CENTRAL_SIG);
    CU_ASSERT_FATAL(rec && loc && cd);
    struct {
        size_t at;
        uint32_t value;
        const char *message;
    } z64[] = {
        {loc + 8, 0x7fffff, "ZIP64 end record missing at offset 8388607"},
        {rec + 16, 1, "multi-disk zip archives are not supported"},
        {cd + 46 + 3, 2, "entry 'a/x' lacks its ZIP64 sizes"},
    };
    for (size_t i = 0; i < sizeof z64 / sizeof z64[0]; i++) {
        memcpy(d, good, size);
        if (z64[i].at == cd + 46 + 3)
            ics_zip_wr16(d + z64[i].at, (uint16_t)z64[i].value); /* extra id 1 -> 2 */
        else
            ics_zip_wr32(d + z64[i].at, z64[i].value);
        CU_ASSERT_EQUAL(open_extract(d, size, 0, &err), ICS_ERR_FORMAT);
        expect_message(&err, z64[i].message);
    }
    free(d);
    free(good);
}

/* A .pth archive around a pickle built with the writer's emitters. */
static ics_status load_crafted(const ics_pickle_writer *w, const char *version, ics_error *err)
{
    static int serial;
    char name[64];
    snprintf(name, sizeof name, "crafted%d.pth", serial++);
    char *p = tmp_path(name);
    ics_zip_writer *zw;
    CU_ASSERT_EQUAL_FATAL(ics_zip_writer_open(p, &zw, err), ICS_OK);
    ics_zip_writer_add(zw, "m/data.pkl", w->buf, w->len, err);
    float four[4] = {1, 2, 3, 4};
    ics_zip_writer_add(zw, "m/data/0", four, sizeof four, err);
    if (version) ics_zip_writer_add(zw, "m/version", version, strlen(version), err);
    CU_ASSERT_EQUAL_FATAL(ics_zip_writer_close(zw, err), ICS_OK);
    ics_pth *pth = NULL;
    ics_status st = ics_pth_load(p, &pth, err);
    ics_pth_destroy(pth);
    free(p);
    return st;
}

/* Emits the persistent id ('storage', torch.<cls>, key, 'cpu', numel). */
static void emit_pid(ics_pickle_writer *w, const char *cls, const char *key, int64_t numel)
{
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    ics_pickle_emit_string(w, "storage", 7);
    ics_pickle_emit_global(w, "torch", cls);
    ics_pickle_emit_string(w, key, strlen(key));
    ics_pickle_emit_string(w, "cpu", 3);
    ics_pickle_emit_int(w, numel);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
    ics_pickle_emit_op(w, ICS_PICKLE_BINPERSID);
}

/* _rebuild_tensor_v2(storage, offset, (size,), (stride,), False, OrderedDict()) */
static void emit_rebuild(ics_pickle_writer *w, int64_t offset, int64_t size, int64_t stride)
{
    ics_pickle_emit_global(w, "torch._utils", "_rebuild_tensor_v2");
    ics_pickle_emit_op(w, ICS_PICKLE_MARK);
    emit_pid(w, "FloatStorage", "0", 4);
    ics_pickle_emit_int(w, offset);
    ics_pickle_emit_int(w, size);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE1);
    ics_pickle_emit_int(w, stride);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE1);
    ics_pickle_emit_op(w, ICS_PICKLE_NEWFALSE);
    ics_pickle_emit_empty_ordered_dict(w);
    ics_pickle_emit_op(w, ICS_PICKLE_TUPLE);
    ics_pickle_emit_op(w, ICS_PICKLE_REDUCE);
}

static void test_pth_refusals(void)
{
    ics_error err;
    ics_pickle_writer w;
    /* a good one first: a strided view with an offset, and a stride-0 one */
    ics_pickle_writer_init(&w, &err);
    ics_pickle_emit_op(&w, ICS_PICKLE_MARK);
    emit_rebuild(&w, 1, 2, 2);
    emit_rebuild(&w, 3, 5, 0);
    ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE);
    ics_pickle_writer_finish(&w);
    CU_ASSERT_EQUAL(load_crafted(&w, "3\n", &err), ICS_OK);
    CU_ASSERT_EQUAL(load_crafted(&w, "99\n", &err), ICS_ERR_FORMAT);
    expect_message(&err, "unsupported archive version in 'm/version' (this reader knows 1 to 10)");
    ics_pickle_writer_free(&w);

    static const struct {
        int kind;
        const char *message;
    } cases[] = {
        {0, "pickle offset 5: persistent id is not ('storage', class, key, location, numel)"},
        {1, "unsupported storage class torch.FooStorage"},
        {2, "storage 'a/b' has a bad key or size 4"},
        {3, "_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)"},
        {4, "tensor view (offset 1) reaches past the end of storage '0' (4 elements)"},
        {5, "tensor of storage '0' is larger than the file allows"},
        {6, "_rebuild_parameter arguments are not (tensor, requires_grad, ...)"},
        {7, "holds 16 bytes, but 3 float32 elements need 12"}, /* numel vs entry size */
        {8, "holds 16 bytes, but 4 float64 elements need 32"}, /* same key, other type */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ics_pickle_writer_init(&w, &err);
        switch (cases[i].kind) {
        case 0:
            ics_pickle_emit_int(&w, 1);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE1);
            ics_pickle_emit_op(&w, ICS_PICKLE_BINPERSID);
            break;
        case 1:
            emit_pid(&w, "FooStorage", "0", 4);
            break;
        case 2:
            emit_pid(&w, "FloatStorage", "a/b", 4);
            break;
        case 3:
            ics_pickle_emit_global(&w, "torch._utils", "_rebuild_tensor_v2");
            ics_pickle_emit_op(&w, ICS_PICKLE_EMPTY_TUPLE);
            ics_pickle_emit_op(&w, ICS_PICKLE_REDUCE);
            break;
        case 4:
            emit_rebuild(&w, 1, 4, 1);
            break;
        case 5:
            emit_rebuild(&w, 0, INT64_C(1) << 40, 0);
            break;
        case 6:
            ics_pickle_emit_global(&w, "torch._utils", "_rebuild_parameter");
            ics_pickle_emit_op(&w, ICS_PICKLE_NONE);
            ics_pickle_emit_op(&w, ICS_PICKLE_NEWFALSE);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE2);
            ics_pickle_emit_op(&w, ICS_PICKLE_REDUCE);
            break;
        case 8: /* a good float view, then the same key as 4 doubles */
            ics_pickle_emit_op(&w, ICS_PICKLE_MARK);
            emit_rebuild(&w, 0, 4, 1);
            ics_pickle_emit_global(&w, "torch._utils", "_rebuild_tensor_v2");
            ics_pickle_emit_op(&w, ICS_PICKLE_MARK);
            emit_pid(&w, "DoubleStorage", "0", 4);
            ics_pickle_emit_int(&w, 0);
            ics_pickle_emit_int(&w, 4);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE1);
            ics_pickle_emit_int(&w, 1);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE1);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE);
            ics_pickle_emit_op(&w, ICS_PICKLE_REDUCE);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE);
            break;
        case 7:
            ics_pickle_emit_global(&w, "torch._utils", "_rebuild_tensor_v2");
            ics_pickle_emit_op(&w, ICS_PICKLE_MARK);
            emit_pid(&w, "FloatStorage", "0", 3);
            ics_pickle_emit_int(&w, 0);
            ics_pickle_emit_op(&w, ICS_PICKLE_EMPTY_TUPLE);
            ics_pickle_emit_op(&w, ICS_PICKLE_EMPTY_TUPLE);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE);
            ics_pickle_emit_op(&w, ICS_PICKLE_REDUCE);
            break;
        }
        ics_pickle_writer_finish(&w);
        CU_ASSERT_EQUAL(load_crafted(&w, NULL, &err), ICS_ERR_FORMAT);
        expect_message(&err, cases[i].message);
        ics_pickle_writer_free(&w);
    }
    /* archives that are not torch.save's */
    static const char *const names[] = {"a/other"};
    static const char *const texts[] = {"x"};
    size_t size;
    uint8_t *z = make_zip("other.zip", names, texts, 1, 0, &size);
    ics_pth *pth = NULL;
    CU_ASSERT_EQUAL(ics_pth_load_memory(z, size, "o.pth", &pth, &err), ICS_ERR_FORMAT);
    expect_message(&err, "o.pth: no <folder>/data.pkl entry: not a torch.save archive");
    free(z);
    CU_ASSERT_EQUAL(ics_pth_load(tmp, &pth, &err), ICS_ERR_IO);
    expect_message(&err, ": not a regular file");
}

/* A legacy torch.save stream of {"w": tensor of 4 floats}, with knobs to
 * damage each part. */
typedef struct legacy_knobs {
    int bad_magic, version, little_endian, keys_as_dict, extra_key, short_storage;
} legacy_knobs;

static size_t legacy_stream(uint8_t *out, legacy_knobs k)
{
    static const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                    0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
    size_t n = 0;
    memcpy(out, magic, sizeof magic);
    if (k.bad_magic) out[14] = 'X';
    n += sizeof magic;
    ics_error err;
    ics_pickle_writer w;
    for (int part = 0; part < 4; part++) {
        ics_pickle_writer_init(&w, &err);
        if (part == 0) {
            ics_pickle_emit_int(&w, k.version);
        } else if (part == 1) {
            ics_pickle_emit_op(&w, ICS_PICKLE_EMPTY_DICT);
            ics_pickle_emit_op(&w, ICS_PICKLE_MARK);
            ics_pickle_emit_string(&w, "little_endian", 13);
            ics_pickle_emit_op(&w, k.little_endian ? ICS_PICKLE_NEWTRUE : ICS_PICKLE_NEWFALSE);
            ics_pickle_emit_op(&w, ICS_PICKLE_SETITEMS);
        } else if (part == 2) {
            ics_pickle_emit_op(&w, ICS_PICKLE_EMPTY_DICT);
            ics_pickle_emit_string(&w, "w", 1);
            ics_pickle_emit_global(&w, "torch._utils", "_rebuild_tensor_v2");
            ics_pickle_emit_op(&w, ICS_PICKLE_MARK);
            ics_pickle_emit_op(&w, ICS_PICKLE_MARK);
            ics_pickle_emit_string(&w, "storage", 7);
            ics_pickle_emit_global(&w, "torch", "FloatStorage");
            ics_pickle_emit_string(&w, "0", 1);
            ics_pickle_emit_string(&w, "cpu", 3);
            ics_pickle_emit_int(&w, 4);
            ics_pickle_emit_op(&w, ICS_PICKLE_NONE); /* view_metadata */
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE);
            ics_pickle_emit_op(&w, ICS_PICKLE_BINPERSID);
            ics_pickle_emit_int(&w, 0);
            ics_pickle_emit_int(&w, 4);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE1);
            ics_pickle_emit_int(&w, 1);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE1);
            ics_pickle_emit_op(&w, ICS_PICKLE_TUPLE);
            ics_pickle_emit_op(&w, ICS_PICKLE_REDUCE);
            ics_pickle_emit_op(&w, 's'); /* SETITEM */
        } else {
            ics_pickle_emit_op(&w, k.keys_as_dict ? ICS_PICKLE_EMPTY_DICT : ICS_PICKLE_EMPTY_LIST);
            if (!k.keys_as_dict) {
                ics_pickle_emit_op(&w, ICS_PICKLE_MARK);
                ics_pickle_emit_string(&w, k.extra_key ? "9" : "0", 1);
                ics_pickle_emit_op(&w, ICS_PICKLE_APPENDS);
            }
        }
        ics_pickle_writer_finish(&w);
        memcpy(out + n, w.buf, w.len);
        n += w.len;
        ics_pickle_writer_free(&w);
    }
    int64_t numel = 4;
    memcpy(out + n, &numel, 8);
    n += 8;
    float v[4] = {1.5f, -2, 0, 3};
    memcpy(out + n, v, k.short_storage ? 12 : 16);
    return n + (k.short_storage ? 12 : 16);
}

static void test_legacy_refusals(void)
{
    uint8_t buf[1024];
    ics_error err;
    ics_pth *pth = NULL;
    legacy_knobs good = {.version = 1001, .little_endian = 1};
    size_t n = legacy_stream(buf, good);
    CU_ASSERT_EQUAL_FATAL(ics_pth_load_memory(buf, n, "l.pth", &pth, &err), ICS_OK);
    const ics_pv *t = ics_pv_dict_get(ics_pth_root(pth), "w");
    CU_ASSERT(t && t->kind == ICS_PV_TENSOR && t->u.tensor.numel == 4 &&
              ((float *)t->u.tensor.data)[0] == 1.5f && ((float *)t->u.tensor.data)[3] == 3.0f);
    ics_pth_destroy(pth);
    struct {
        legacy_knobs k;
        const char *message;
    } cases[] = {
        {{.bad_magic = 1, .version = 1001, .little_endian = 1},
         "l.pth: legacy torch.save header is damaged"},
        {{.version = 1000, .little_endian = 1}, "legacy torch.save protocol version is not 1001"},
        {{.version = 1001}, "legacy file not written on a little-endian machine"},
        {{.version = 1001, .little_endian = 1, .keys_as_dict = 1},
         "legacy storage key list is a dict, not a list"},
        {{.version = 1001, .little_endian = 1, .extra_key = 1},
         "legacy storage list names a storage the object does not use (item 0)"},
        {{.version = 1001, .little_endian = 1, .short_storage = 1},
         "legacy storage '0' is truncated (at offset"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = legacy_stream(buf, cases[i].k);
        CU_ASSERT_EQUAL(ics_pth_load_memory(buf, n, "l.pth", &pth, &err), ICS_ERR_FORMAT);
        CU_ASSERT_PTR_NULL(pth);
        expect_message(&err, cases[i].message);
    }
}

static void test_writer_refusals(void)
{
    ics_error err;
    ics_pv_arena *arena = ics_pv_arena_create(&err);
    ics_pv *root = ics_pv_new_dict(arena, 0, &err);
    ics_pv *obj = ics_pv_new(arena, ICS_PV_OBJECT, &err);
    obj->u.object.class_name = ics_pv_arena_strdup(arena, "argparse.Namespace", 18, &err);
    ics_pv_dict_set_str(arena, root, "args", obj, &err);
    char *p = tmp_path("refused.pth");
    CU_ASSERT_EQUAL(ics_pth_save(p, root, NULL, &err), ICS_ERR_INVALID);
    expect_message(&err, "refused.pth: cannot pickle this object of class argparse.Namespace: "
                         "torch.load(weights_only=True) would refuse it");
    FILE *f = fopen(p, "rb");
    CU_ASSERT_PTR_NULL(f); /* nothing left under the final name */
    if (f) fclose(f);
    ics_pv *bytes = ics_pv_new_bytes(arena, "ab", 2, &err);
    CU_ASSERT_EQUAL(ics_pth_save(p, bytes, NULL, &err), ICS_ERR_INVALID);
    expect_message(&err, "cannot pickle this bytes");
    /* nesting beyond 64 levels */
    ics_pv *deep = ics_pv_new(arena, ICS_PV_LIST, &err);
    for (int i = 0; i < 70; i++) {
        ics_pv *outer = ics_pv_new(arena, ICS_PV_LIST, &err);
        ics_pv_seq_append(arena, outer, deep, &err);
        deep = outer;
    }
    CU_ASSERT_EQUAL(ics_pth_save(p, deep, NULL, &err), ICS_ERR_INVALID);
    expect_message(&err, "value nested deeper than 64 levels");
    CU_ASSERT_EQUAL(ics_pth_save(p, root, "a/b", &err), ICS_ERR_INVALID);
    expect_message(&err, "bad archive folder name 'a/b'");
    /* attributes on a plain dict (torch builds only an OrderedDict) */
    ics_pv *attrs = ics_pv_new_dict(arena, 0, &err);
    CU_ASSERT_EQUAL(ics_pth_save_attrs(p, root, NULL, root, attrs, &err), ICS_ERR_INVALID);
    expect_message(&err, "refused.pth: attributes (a dict) can only be pickled on an OrderedDict");
    /* a tensor outside an archive; a string too long for BINUNICODE */
    ics_pv *t = ics_pv_new_tensor(arena, ICS_DT_FLOAT32, 0, NULL, NULL, &err);
    ics_pickle_writer w;
    ics_pickle_writer_init(&w, &err);
    CU_ASSERT_EQUAL(ics_pickle_emit_value(&w, t, NULL, NULL), ICS_ERR_INVALID);
    expect_message(&err, "cannot pickle a tensor outside a .pth archive");
    ics_pickle_writer_free(&w);
    ics_pickle_writer_init(&w, &err);
    ics_pickle_emit_string(&w, "", (size_t)1 << 33); /* refused before reading */
    CU_ASSERT_EQUAL(ics_pickle_writer_finish(&w), ICS_ERR_INVALID);
    expect_message(&err, "string of 8589934592 bytes is too long to pickle");
    ics_pickle_writer_free(&w);
    free(p);
    /* I/O: no such directory; the final name is a directory; entry names */
    CU_ASSERT_EQUAL(ics_pth_save("/nonexistent/dir/x.pth", root, NULL, &err), ICS_ERR_INVALID);
    ics_pv_arena_destroy(arena);
    arena = ics_pv_arena_create(&err);
    root = ics_pv_new_dict(arena, 1, &err);
    CU_ASSERT_EQUAL(ics_pth_save("/nonexistent/dir/x.pth", root, NULL, &err), ICS_ERR_IO);
    expect_message(&err, "/nonexistent/dir/x.pth.tmp.");
    expect_message(&err, ": cannot create: No such file or directory");
    CU_ASSERT_EQUAL(ics_pth_save(tmp, root, NULL, &err), ICS_ERR_IO);
    expect_message(&err, "cannot rename");
    ics_zip_writer *zw;
    p = tmp_path("names.zip");
    CU_ASSERT_EQUAL_FATAL(ics_zip_writer_open(p, &zw, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_zip_writer_add(zw, "", "x", 1, &err), ICS_ERR_INVALID);
    expect_message(&err, "bad zip entry name length 0");
    ics_zip_writer_abort(zw);
    /* a file size limit makes writes fail: large data fails in fwrite,
     * small data when the buffer is flushed */
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit small = {.rlim_cur = 4096, .rlim_max = old.rlim_max};
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &small), 0);
    static char big[100000];
    CU_ASSERT_EQUAL_FATAL(ics_zip_writer_open(p, &zw, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_zip_writer_add(zw, "a/big", big, sizeof big, &err), ICS_ERR_IO);
    expect_message(&err, ": write failed: File too large");
    ics_zip_writer_abort(zw);
    CU_ASSERT_EQUAL_FATAL(ics_zip_writer_open(p, &zw, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_zip_writer_add(zw, "a/big", big, 3000, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_zip_writer_add(zw, "a/big2", big, 3000, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_zip_writer_close(zw, &err), ICS_ERR_IO);
    expect_message(&err, ": flush failed: File too large");
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    FILE *gone = fopen(p, "rb");
    CU_ASSERT_PTR_NULL(gone);
    if (gone) fclose(gone);
    free(p);
    ics_pv_arena_destroy(arena);
}

/* Every allocation of a full save and load fails in turn: each failure
 * must come back as an error (ASan checks that nothing leaks). */
static void test_allocation_failures(void)
{
    ics_error err;
    ics_pv_arena *arena = ics_pv_arena_create(&err);
    ics_pv *sd = ics_pv_new_dict(arena, 1, &err);
    float w[6] = {1, 2, 3, 4, 5, 6};
    ics_pv_dict_set_str(arena, sd, "w",
                        ics_pv_new_tensor(arena, ICS_DT_FLOAT32, 2, (int64_t[]){2, 3}, w, &err),
                        &err);
    ics_pv *l = ics_pv_new(arena, ICS_PV_LIST, &err);
    ics_pv_seq_append(arena, l, ics_pv_new_float(arena, 0.5, &err), &err);
    ics_pv_dict_set_str(arena, sd, "l", l, &err);
    char *p = tmp_path("alloc.pth");
    int saved = 0, loaded = 0;
    for (long n = 1; n < 200 && !(saved && loaded); n++) {
        ics_alloc_fail_after(n);
        ics_status st = ics_pth_save(p, sd, NULL, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_OK) {
            saved = 1;
        } else {
            CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
            continue;
        }
        ics_pth *pth = NULL;
        ics_alloc_fail_after(n);
        st = ics_pth_load(p, &pth, &err);
        ics_alloc_fail_after(0);
        if (st == ICS_OK) {
            loaded = 1;
            CU_ASSERT_EQUAL(((float *)ics_pv_dict_get(ics_pth_root(pth), "w")->u.tensor.data)[5],
                            6.0f);
        } else {
            CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
            CU_ASSERT_PTR_NULL(pth);
        }
        ics_pth_destroy(pth);
    }
    CU_ASSERT(saved && loaded);
    /* and inflate's allocations, on a deflated archive made with zlib */
    static const char text[] = "deflate me deflate me deflate me";
    uint8_t comp[256];
    z_stream zs = {0};
    deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)text;
    zs.avail_in = sizeof text - 1;
    zs.next_out = comp;
    zs.avail_out = sizeof comp;
    deflate(&zs, Z_FINISH);
    size_t clen = zs.total_out;
    deflateEnd(&zs);
    static const char *const names[] = {"a/x"};
    static const char *const texts[] = {"deflate me deflate me deflate me"};
    size_t size;
    uint8_t *z = make_zip("defl.zip", names, texts, 1, 0, &size);
    /* rewrite: same headers, method 8, compressed size, compressed data */
    size_t cd = find_sig(z, size, ICS_ZIP_CENTRAL_SIG);
    uint8_t *d = calloc(1, size);
    memcpy(d, z, 64);
    memcpy(d + 64, comp, clen);
    size_t tail = size - cd;
    memcpy(d + 64 + clen, z + cd, tail);
    size_t new_size = 64 + clen + tail, ncd = 64 + clen;
    d[8] = d[ncd + 10] = 8;
    ics_zip_wr32(d + ncd + 20, (uint32_t)clen);
    ics_zip_wr32(d + new_size - ICS_ZIP_EOCD_SIZE + 16, (uint32_t)ncd);
    CU_ASSERT_EQUAL(open_extract(d, new_size, 0, &err), ICS_OK);
    int ok = 0;
    for (long n = 1; n < 20 && !ok; n++) {
        ics_alloc_fail_after(n);
        ics_status st = open_extract(d, new_size, 0, &err);
        ics_alloc_fail_after(0);
        ok = st == ICS_OK;
        if (!ok) CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
    }
    CU_ASSERT(ok);
    free(d);
    free(z);
    free(p);
    ics_pv_arena_destroy(arena);
}

int main(void)
{
    tmp = ics_test_tmpdir("pthpk");
    static const ics_test_case cases[] = {{"CRC-32 against zlib", test_crc32},
                                          {"pickle VM refusals", test_vm_refusals},
                                          {"pickle VM values", test_vm_values},
                                          {"pickle VM hooks", test_vm_hooks},
                                          {"value builders and float16", test_value_builders},
                                          {"zip reader refusals", test_zip_refusals},
                                          {"pth reader refusals", test_pth_refusals},
                                          {"legacy format: crafted streams", test_legacy_refusals},
                                          {"writer refusals", test_writer_refusals},
                                          {"allocation failures", test_allocation_failures},
                                          {NULL, NULL}};
    ics_test_add_suite("pth building blocks", cases);
    int rc = ics_test_main("test_pth_pickle");
    ics_test_rmtree(tmp);
    free(tmp);
    return rc;
}
