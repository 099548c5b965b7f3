/* src/data: SHA-256, the HDF5 dataset format, the IDX reader, the
 * stratified split and statistics, and the Fashion-MNIST conversion from
 * Debian's dataset-fashion-mnist package. */
#include "ics_build_config.h"
#include "test_util.h"
#include "data/convert.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/sha256.h"
#include "data/h5attr.h"
#include "data/shard.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static char *tmp;

static char *path_in(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", tmp, name);
    return p;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ---------------------------------------------------------------- SHA-256 */

static void test_sha256_vectors(void)
{
    /* FIPS 180-2 appendix B test vectors. */
    struct { const char *text; const char *hex; } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ics_sha256 ctx;
        uint8_t d[32];
        char hex[65];
        ics_sha256_init(&ctx);
        /* Fed one byte at a time to exercise the block buffering. */
        for (const char *p = cases[i].text; *p; p++) ics_sha256_update(&ctx, p, 1);
        ics_sha256_final(&ctx, d);
        ics_sha256_hex(d, hex);
        CU_ASSERT_STRING_EQUAL(hex, cases[i].hex);
    }
    /* One million 'a' (appendix B.3), in uneven pieces. */
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    ics_sha256 ctx;
    uint8_t d[32];
    char hex[65];
    ics_sha256_init(&ctx);
    ics_sha256_update(&ctx, million, 333);
    ics_sha256_update(&ctx, million, 1000000 - 333);
    ics_sha256_final(&ctx, d);
    ics_sha256_hex(d, hex);
    CU_ASSERT_STRING_EQUAL(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* File digest agrees with sha256sum. */
    FILE *f = fopen(path_in("million"), "wb");
    fwrite(million, 1, 1000000, f);
    fclose(f);
    free(million);
    ics_error err;
    CU_ASSERT_EQUAL(ics_sha256_file(path_in("million"), hex, &err), ICS_OK);
    CU_ASSERT_STRING_EQUAL(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CU_ASSERT_EQUAL(ics_sha256_file(path_in("missing"), hex, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "missing: cannot open"));
}

/* ---------------------------------------------------------------- dataset format */

static void small_meta(ics_dataset_meta *m, int classes)
{
    memset(m, 0, sizeof *m);
    m->height = 3;
    m->width = 2;
    m->channels = 3;
    m->mean[0] = 0.25;
    m->mean[1] = 0.5;
    m->mean[2] = 0.75;
    m->std[0] = m->std[1] = m->std[2] = 0.125;
    m->source = strdup("unit test");
    strcpy(m->source_sha256, "00ff");
    const char *names[] = {"cat", "dog", "a much longer class name"};
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_dataset_meta_set_classes(m, names, classes, &err), ICS_OK);
}

/* Writes a small dataset: train 70 rows (3 chunks), val 0 rows, test 5. */
static void write_small(const char *path, int deflate)
{
    ics_dataset_meta m;
    small_meta(&m, 3);
    enum { NTR = 70, NTE = 5, IMG = 18 };
    uint8_t train[NTR * IMG], test[NTE * IMG];
    int32_t ltrain[NTR], ltest[NTE];
    for (int i = 0; i < NTR * IMG; i++) train[i] = (uint8_t)(i * 7);
    for (int i = 0; i < NTE * IMG; i++) test[i] = (uint8_t)(255 - i);
    for (int i = 0; i < NTR; i++) ltrain[i] = i % 3;
    for (int i = 0; i < NTE; i++) ltest[i] = 2 - i % 3;
    const uint8_t *const im[3] = {train, NULL, test};
    const int32_t *const lb[3] = {ltrain, NULL, ltest};
    const int64_t counts[3] = {NTR, 0, NTE};
    ics_dataset_write_options wo = {deflate, 0};
    ics_error err;
    CU_ASSERT_EQUAL(ics_dataset_write_file(path, &m, &wo, im, lb, counts, &err), ICS_OK);
    ics_dataset_meta_clear(&m);
}

static void test_dataset_round_trip(void)
{
    for (int deflate = 0; deflate <= 4; deflate += 4) {
        const char *path = path_in(deflate ? "small-deflate.h5" : "small.h5");
        write_small(path, deflate);
        CU_ASSERT_FALSE(exists(path_in(deflate ? ".small-deflate.h5.partial" : ".small.h5.partial")));
        ics_dataset_reader *r;
        ics_error err;
        CU_ASSERT_EQUAL_FATAL(ics_dataset_open(path, &r, &err), ICS_OK);
        const ics_dataset_meta *m = ics_dataset_reader_meta(r);
        CU_ASSERT_EQUAL(m->height, 3);
        CU_ASSERT_EQUAL(m->width, 2);
        CU_ASSERT_EQUAL(m->channels, 3);
        CU_ASSERT_EQUAL(m->num_classes, 3);
        CU_ASSERT_STRING_EQUAL(m->class_names[2], "a much longer class name");
        CU_ASSERT_STRING_EQUAL(m->class_names[0], "cat");
        CU_ASSERT_DOUBLE_EQUAL(m->mean[1], 0.5, 0);
        CU_ASSERT_STRING_EQUAL(m->source, "unit test");
        CU_ASSERT_STRING_EQUAL(m->source_sha256, "00ff");
        CU_ASSERT_EQUAL(m->is_shard, 0);
        CU_ASSERT_EQUAL(ics_dataset_count(r, "train"), 70);
        CU_ASSERT_EQUAL(ics_dataset_count(r, "val"), 0);
        CU_ASSERT_EQUAL(ics_dataset_count(r, "test"), 5);
        uint8_t img[4 * 18];
        int32_t lab[4];
        /* Rows 31..34 cross the chunk boundary at 32. */
        CU_ASSERT_EQUAL(ics_dataset_read(r, "train", 31, 4, img, lab, &err), ICS_OK);
        for (int i = 0; i < 4 * 18; i++) CU_ASSERT_EQUAL(img[i], (uint8_t)((31 * 18 + i) * 7));
        for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(lab[i], (31 + i) % 3);
        CU_ASSERT_EQUAL(ics_dataset_read(r, "test", 4, 1, NULL, lab, &err), ICS_OK);
        CU_ASSERT_EQUAL(lab[0], 1);
        CU_ASSERT_EQUAL(ics_dataset_read(r, "train", 68, 4, img, lab, &err), ICS_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "outside /train (70 rows)"));
        CU_ASSERT_EQUAL(ics_dataset_read(r, "val", 0, 1, img, lab, &err), ICS_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "no split 'val'"));
        ics_dataset_close(r);
    }
    /* The same content written twice gives the same bytes (no timestamps). */
    write_small(path_in("again.h5"), 0);
    size_t a_len, b_len;
    char *a = ics_test_read_file(path_in("small.h5"), &a_len);
    char *b = ics_test_read_file(path_in("again.h5"), &b_len);
    CU_ASSERT_EQUAL(a_len, b_len);
    CU_ASSERT(a && b && a_len == b_len && memcmp(a, b, a_len) == 0);
    free(a);
    free(b);
}

static void test_dataset_writer_refuses_bad_labels(void)
{
    ics_dataset_meta m;
    small_meta(&m, 2);
    uint8_t img[2 * 18] = {0};
    int32_t lab[2] = {1, 2};
    const uint8_t *const im[3] = {img, NULL, NULL};
    const int32_t *const lb[3] = {lab, NULL, NULL};
    const int64_t counts[3] = {2, 0, 0};
    ics_dataset_write_options wo = {0, 0};
    ics_error err;
    CU_ASSERT_EQUAL(ics_dataset_write_file(path_in("badlabel.h5"), &m, &wo, im, lb, counts, &err),
                    ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "label 2 of row 1 outside 0..1"));
    CU_ASSERT_FALSE(exists(path_in("badlabel.h5")));
    CU_ASSERT_FALSE(exists(path_in(".badlabel.h5.partial")));
    m.channels = 7;
    CU_ASSERT_EQUAL(ics_dataset_write_file(path_in("badshape.h5"), &m, &wo, im, lb, counts, &err),
                    ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "bad dataset shape 3x2x7"));
    CU_ASSERT_EQUAL(ics_dataset_write_file(path_in("no-such-dir/x.h5"), &m, &wo, im, lb, counts, &err),
                    ICS_ERR_INVALID);
    m.channels = 3;
    CU_ASSERT_EQUAL(ics_dataset_write_file(path_in("no-such-dir/x.h5"), &m, &wo, im, lb, counts, &err),
                    ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot create temporary file"));
    ics_dataset_meta_clear(&m);
}

/* Rewrites one root attribute of an existing file. */
static void set_attr(const char *path, const char *name, const char *text, int64_t number)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    ics_error err;
    ics_status st = text ? ics_h5_attr_put_string(f, name, text, path, &err)
                         : ics_h5_attr_put_i64(f, name, number, path, &err);
    CU_ASSERT_EQUAL(st, ICS_OK);
    H5Fclose(f);
}

static void expect_open_error(const char *path, ics_status want, const char *message)
{
    ics_dataset_reader *r = NULL;
    ics_error err;
    ics_error_clear(&err);
    CU_ASSERT_EQUAL(ics_dataset_open(path, &r, &err), want);
    CU_ASSERT_PTR_NULL(r);
    if (!strstr(err.message, message)) printf("\n  got '%s', want '%s'\n", err.message, message);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, message));
}

static void test_dataset_reader_refuses_other_files(void)
{
    expect_open_error(path_in("absent.h5"), ICS_ERR_IO, "absent.h5: cannot open");
    free(ics_test_write_file(tmp, "text.h5", "this is not HDF5\n"));
    expect_open_error(path_in("text.h5"), ICS_ERR_FORMAT, "text.h5: not an HDF5 file");
    /* An HDF5 file of another kind. */
    hid_t f = H5Fcreate(path_in("plain.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_open_error(path_in("plain.h5"), ICS_ERR_FORMAT, "not an icsparse dataset (no 'format' attribute)");
    write_small(path_in("ckpt.h5"), 0);
    set_attr(path_in("ckpt.h5"), "format", "icsparse-checkpoint", 0);
    expect_open_error(path_in("ckpt.h5"), ICS_ERR_FORMAT, "format 'icsparse-checkpoint' is not an icsparse dataset");
    write_small(path_in("v2.h5"), 0);
    set_attr(path_in("v2.h5"), "format_version", NULL, 2);
    expect_open_error(path_in("v2.h5"), ICS_ERR_FORMAT, "format_version 2 is not supported (this icsparse reads 1)");
    write_small(path_in("shape.h5"), 0);
    set_attr(path_in("shape.h5"), "width", NULL, 5);
    expect_open_error(path_in("shape.h5"), ICS_ERR_FORMAT, "/train/images has the wrong type or shape");
    write_small(path_in("noattr.h5"), 0);
    f = H5Fopen(path_in("noattr.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "mean");
    H5Fclose(f);
    expect_open_error(path_in("noattr.h5"), ICS_ERR_FORMAT, "missing attribute 'mean'");
    /* A truncated file. */
    size_t len;
    char *bytes = ics_test_read_file(path_in("small.h5"), &len);
    FILE *out = fopen(path_in("cut.h5"), "wb");
    fwrite(bytes, 1, len / 2, out);
    fclose(out);
    free(bytes);
    ics_dataset_reader *r = NULL;
    ics_error err;
    ics_status st = ics_dataset_open(path_in("cut.h5"), &r, &err);
    if (st == ICS_OK) {
        /* HDF5 may open a file cut after its metadata; the data read fails. */
        uint8_t img[70 * 18];
        st = ics_dataset_read(r, "train", 0, 70, img, NULL, &err);
        ics_dataset_close(r);
    }
    CU_ASSERT_NOT_EQUAL(st, ICS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cut.h5"));
    /* An out-of-range label stored in the file is caught on read. */
    write_small(path_in("labels.h5"), 0);
    f = H5Fopen(path_in("labels.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "test/labels", H5P_DEFAULT);
    int32_t bad[5] = {0, 1, 2, 9, 0};
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, bad);
    H5Dclose(d);
    H5Fclose(f);
    CU_ASSERT_EQUAL_FATAL(ics_dataset_open(path_in("labels.h5"), &r, &err), ICS_OK);
    int32_t lab[5];
    CU_ASSERT_EQUAL(ics_dataset_read(r, "test", 0, 5, NULL, lab, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "/test/labels[3] = 9 is outside 0..2"));
    ics_dataset_close(r);
}

/* ---------------------------------------------------------------- shards (one process) */

static void test_shards_without_mpi(void)
{
    write_small(path_in("to-shard.h5"), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/shards", tmp);
    ics_shard_options o = {4, 9, 0};
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_shard_write(path_in("to-shard.h5"), dir, &o, &err), ICS_OK);
    /* Balanced slices of one permutation: train 70 -> 17, 18, 17, 18; test 5 -> 1, 1, 1, 2. */
    int want_train[4] = {17, 18, 17, 18}, want_test[4] = {1, 1, 1, 2};
    int seen[70] = {0};
    for (int s = 0; s < 4; s++) {
        char path[600];
        ics_shard_path(path, sizeof path, dir, s, 4);
        ics_dataset_reader *r;
        CU_ASSERT_EQUAL_FATAL(ics_dataset_open(path, &r, &err), ICS_OK);
        const ics_dataset_meta *m = ics_dataset_reader_meta(r);
        CU_ASSERT(m->is_shard && m->shard_index == s && m->shard_count == 4 && m->seed == 9);
        CU_ASSERT_EQUAL(ics_dataset_count(r, "train"), want_train[s]);
        CU_ASSERT_EQUAL(ics_dataset_count(r, "test"), want_test[s]);
        uint8_t img[18 * 18];
        int32_t lab[18];
        CU_ASSERT_EQUAL(ics_dataset_read(r, "train", 0, want_train[s], img, lab, &err), ICS_OK);
        for (int i = 0; i < want_train[s]; i++) {
            /* Row k's first byte is k*126 mod 256, unique for k < 128. */
            int row = -1;
            for (int k = 0; k < 70; k++)
                if ((uint8_t)(k * 18 * 7) == img[i * 18]) row = k;
            CU_ASSERT_FATAL(row >= 0);
            seen[row]++;
            CU_ASSERT_EQUAL(lab[i], row % 3);
            CU_ASSERT_EQUAL(img[i * 18 + 17], (uint8_t)((row * 18 + 17) * 7));
        }
        ics_dataset_close(r);
    }
    int once = 1;
    for (int k = 0; k < 70; k++) once &= seen[k] == 1;
    CU_ASSERT(once); /* every row in exactly one shard */
    CU_ASSERT_EQUAL(ics_shard_verify(dir, &err), ICS_OK);
    char *manifest = ics_test_read_file(path_in("shards/manifest.json"), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(manifest);
    CU_ASSERT_PTR_NOT_NULL(strstr(manifest, "\"totals\": {\"train\": 70, \"val\": 0, \"test\": 5}"));
    free(manifest);
    /* A shard's label changed: verify names the line. */
    hid_t f = H5Fopen(path_in("shards/part-00002-of-00004.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "test/labels", H5P_DEFAULT);
    int32_t flipped = 0;
    hsize_t start[1] = {0}, count[1] = {1};
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    H5Dread(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, &flipped);
    flipped = (flipped + 1) % 3;
    H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, &flipped);
    H5Sclose(fs);
    H5Sclose(ms);
    H5Dclose(d);
    H5Fclose(f);
    /* Against the source dataset, the class totals disagree... */
    CU_ASSERT_EQUAL(ics_shard_verify(dir, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "shards: shards hold 2 test rows of class 0, the dataset has 1"));
    /* ...and without it, the manifest names the shard's line. */
    CU_ASSERT_EQUAL(rename(path_in("to-shard.h5"), path_in("moved.h5")), 0);
    CU_ASSERT_EQUAL(ics_shard_verify(dir, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "manifest.json: line 13 does not match the shards"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "part-00002-of-00004.h5"));
    /* Refusals. */
    CU_ASSERT_EQUAL(rename(path_in("moved.h5"), path_in("to-shard.h5")), 0);
    CU_ASSERT_EQUAL(ics_shard_write(path_in("shards/part-00000-of-00004.h5"), dir, &o, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "is already a shard"));
    o.num_shards = 0;
    CU_ASSERT_EQUAL(ics_shard_write(path_in("to-shard.h5"), dir, &o, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "shard count 0 must be at least 1"));
    o.num_shards = 2;
    o.max_memory_bytes = 100;
    CU_ASSERT_EQUAL(ics_shard_write(path_in("to-shard.h5"), dir, &o, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "over the 0.0 GiB each rank may hold while sharding"));
    CU_ASSERT_EQUAL(ics_shard_verify(path_in("none"), &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "none/manifest.json: cannot open"));
    mkdir(path_in("fake"), 0755);
    free(ics_test_write_file(tmp, "fake/manifest.json", "{\"format\": \"other\"}\n"));
    CU_ASSERT_EQUAL(ics_shard_verify(path_in("fake"), &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "not an icsparse shard manifest"));
}

/* ---------------------------------------------------------------- IDX */

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* Writes an IDX file (gzip when gz) with the given header words and
 * payload. */
static void write_idx(const char *path, int gz, const uint32_t *words, int nwords,
                      const unsigned char *payload, size_t bytes)
{
    unsigned char header[16];
    for (int i = 0; i < nwords; i++) put_be32(header + 4 * i, words[i]);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, header, (unsigned)(4 * nwords));
        if (bytes) gzwrite(f, payload, (unsigned)bytes);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(header, 1, (size_t)(4 * nwords), f);
        fwrite(payload, 1, bytes, f);
        fclose(f);
    }
}

/* A 4-image 3x2 MNIST-like directory; gz selects compression. */
static void write_idx_dir(const char *dir, int gz, int n_train, int n_test)
{
    char p[512];
    unsigned char pixels[64 * 6], labels[64];
    for (int i = 0; i < 64 * 6; i++) pixels[i] = (unsigned char)(i * 3);
    for (int i = 0; i < 64; i++) labels[i] = (unsigned char)(i % 10);
    const char *ext = gz ? ".gz" : "";
    uint32_t w[4] = {0x803, (uint32_t)n_train, 3, 2};
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte%s", dir, ext);
    write_idx(p, gz, w, 4, pixels, (size_t)n_train * 6);
    uint32_t l[2] = {0x801, (uint32_t)n_train};
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte%s", dir, ext);
    write_idx(p, gz, l, 2, labels, (size_t)n_train);
    w[1] = l[1] = (uint32_t)n_test;
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte%s", dir, ext);
    write_idx(p, gz, w, 4, pixels + 6, (size_t)n_test * 6);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte%s", dir, ext);
    write_idx(p, gz, l, 2, labels + 1, (size_t)n_test);
}

static const char *const digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

static void test_idx_reads_gzip_and_raw(void)
{
    for (int gz = 0; gz < 2; gz++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/idx%d", tmp, gz);
        mkdir(dir, 0755);
        write_idx_dir(dir, gz, 20, 7);
        ics_raw_dataset raw;
        ics_error err;
        CU_ASSERT_EQUAL_FATAL(ics_idx_load_dir(dir, digits, &raw, &err), ICS_OK);
        CU_ASSERT_EQUAL(raw.train.count, 20);
        CU_ASSERT_EQUAL(raw.test.count, 7);
        CU_ASSERT_EQUAL(raw.meta.height, 3);
        CU_ASSERT_EQUAL(raw.meta.width, 2);
        CU_ASSERT_EQUAL(raw.meta.channels, 1);
        CU_ASSERT_EQUAL(raw.train.images[13], (uint8_t)39);
        CU_ASSERT_EQUAL(raw.test.images[0], (uint8_t)18);
        CU_ASSERT_EQUAL(raw.train.labels[13], 3);
        CU_ASSERT_EQUAL(raw.test.labels[6], 7);
        CU_ASSERT_EQUAL(strlen(raw.meta.source_sha256), 64);
        ics_raw_dataset_clear(&raw);
    }
}

static void expect_idx_error(const char *name, const char *message)
{
    ics_error err;
    ics_error_clear(&err);
    uint8_t *images = NULL;
    int32_t *labels = NULL;
    int64_t n;
    int h, w;
    ics_status st = strstr(name, "labels") ? ics_idx_read_labels(path_in(name), 10, &labels, &n, &err)
                                           : ics_idx_read_images(path_in(name), &images, &n, &h, &w, &err);
    CU_ASSERT_EQUAL(st, ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(images);
    CU_ASSERT_PTR_NULL(labels);
    if (!strstr(err.message, message)) printf("\n  got '%s', want '%s'\n", err.message, message);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, message));
}

static void test_idx_bad_input(void)
{
    unsigned char payload[200] = {0};
    uint32_t magic_labels_as_images[4] = {0x801, 2, 3, 2};
    write_idx(path_in("wrong-magic-images"), 1, magic_labels_as_images, 4, payload, 12);
    expect_idx_error("wrong-magic-images", "bad magic number 0x00000801 (want 0x00000803: idx3-ubyte)");
    uint32_t short_images[4] = {0x803, 10, 3, 2};
    write_idx(path_in("short-images.gz"), 1, short_images, 4, payload, 30);
    expect_idx_error("short-images.gz", "truncated while reading the images");
    write_idx(path_in("short-images-raw"), 0, short_images, 4, payload, 59);
    expect_idx_error("short-images-raw", "truncated while reading the images");
    uint32_t header_only[2] = {0x803, 10};
    write_idx(path_in("short-header"), 0, header_only, 2, payload, 0);
    expect_idx_error("short-header", "truncated while reading the header");
    uint32_t extra[4] = {0x803, 2, 3, 2};
    write_idx(path_in("extra-images"), 0, extra, 4, payload, 13);
    expect_idx_error("extra-images", "extra bytes after the data the header announces");
    uint32_t huge[4] = {0x803, 2, 100000, 2};
    write_idx(path_in("huge-images"), 0, huge, 4, payload, 13);
    expect_idx_error("huge-images", "implausible image dimensions");
    unsigned char bad_label[3] = {1, 10, 2};
    uint32_t lab[2] = {0x801, 3};
    write_idx(path_in("range-labels"), 1, lab, 2, bad_label, 3);
    expect_idx_error("range-labels", "label 10 at index 1 is out of range 0..9");
    /* A gzip stream with damaged deflate data. */
    write_idx(path_in("corrupt-images.gz"), 1, short_images, 4, payload, 60);
    size_t len;
    char *bytes = ics_test_read_file(path_in("corrupt-images.gz"), &len);
    /* Damage the CRC-32 trailer: zlib reports it at the end of the stream. */
    for (size_t i = len - 8; i < len - 4; i++) bytes[i] = (char)(bytes[i] ^ 0x5a);
    FILE *f = fopen(path_in("corrupt-images.gz"), "wb");
    fwrite(bytes, 1, len, f);
    fclose(f);
    free(bytes);
    expect_idx_error("corrupt-images.gz", "corrupt gzip data");
    /* Mismatched counts across the pair of files. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/idx-mismatch", tmp);
    mkdir(dir, 0755);
    write_idx_dir(dir, 0, 20, 7);
    char p[600];
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    uint32_t l[2] = {0x801, 19};
    unsigned char labels[19] = {0};
    write_idx(p, 0, l, 2, labels, 19);
    ics_raw_dataset raw;
    ics_error err;
    CU_ASSERT_EQUAL(ics_idx_load_dir(dir, digits, &raw, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "has 20 images but"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "has 19 labels"));
}

/* ---------------------------------------------------------------- split and stats */

static void test_split_is_stratified_and_seeded(void)
{
    enum { N = 1000 };
    int32_t labels[N];
    for (int i = 0; i < N; i++) labels[i] = (i * 7 + i / 3) % 4 == 0 ? 0 : (i % 3) + 1;
    int64_t per_class[4] = {0};
    for (int i = 0; i < N; i++) per_class[labels[i]]++;
    int64_t *tr, *va, nt, nv, *tr2, *va2, nt2, nv2;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_split_stratified(labels, N, 4, 0.1, 7, &tr, &nt, &va, &nv, &err), ICS_OK);
    CU_ASSERT_EQUAL(nt + nv, N);
    int64_t val_per_class[4] = {0}, want_val = 0;
    for (int64_t i = 0; i < nv; i++) val_per_class[labels[va[i]]]++;
    for (int c = 0; c < 4; c++) {
        int64_t want = (int64_t)floor(per_class[c] * 0.1 + 0.5);
        CU_ASSERT_EQUAL(val_per_class[c], want);
        want_val += want;
    }
    CU_ASSERT_EQUAL(nv, want_val);
    /* Disjoint, covering, ascending. */
    char *seen = calloc(N, 1);
    for (int64_t i = 0; i < nt; i++) seen[tr[i]]++;
    for (int64_t i = 0; i < nv; i++) seen[va[i]]++;
    int all_once = 1;
    for (int i = 0; i < N; i++) all_once &= seen[i] == 1;
    CU_ASSERT(all_once);
    free(seen);
    for (int64_t i = 1; i < nv; i++) CU_ASSERT(va[i - 1] < va[i]);
    /* Same seed: same split; another seed: another one. */
    CU_ASSERT_EQUAL(ics_split_stratified(labels, N, 4, 0.1, 7, &tr2, &nt2, &va2, &nv2, &err), ICS_OK);
    CU_ASSERT(nv2 == nv && memcmp(va, va2, (size_t)nv * sizeof *va) == 0);
    free(tr2);
    free(va2);
    CU_ASSERT_EQUAL(ics_split_stratified(labels, N, 4, 0.1, 8, &tr2, &nt2, &va2, &nv2, &err), ICS_OK);
    CU_ASSERT(nv2 == nv && memcmp(va, va2, (size_t)nv * sizeof *va) != 0);
    free(tr2);
    free(va2);
    free(tr);
    free(va);
    CU_ASSERT_EQUAL(ics_split_stratified(labels, N, 4, 1.0, 7, &tr, &nt, &va, &nv, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "val fraction 1 is outside [0, 1)"));
    labels[5] = 4;
    CU_ASSERT_EQUAL(ics_split_stratified(labels, N, 4, 0.1, 7, &tr, &nt, &va, &nv, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "label 4 of row 5 is outside 0..3"));
}

static void test_stats_match_formula(void)
{
    /* Two 2x1 RGB images: channel values {0,255,10,20}, {1,2,3,4}, {9,9,9,9}. */
    uint8_t img[12] = {0, 1, 9, 255, 2, 9, 10, 3, 9, 20, 4, 9};
    double mean[3], std[3];
    ics_image_stats(img, 2, 2, 3, mean, std);
    double want_mean0 = (0 + 255 + 10 + 20) / 4.0 / 255.0;
    double var0 = ((0 - 71.25) * (0 - 71.25) + (255 - 71.25) * (255 - 71.25) +
                   (10 - 71.25) * (10 - 71.25) + (20 - 71.25) * (20 - 71.25)) / 4.0;
    CU_ASSERT_DOUBLE_EQUAL(mean[0], want_mean0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(std[0], sqrt(var0) / 255.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mean[1], 2.5 / 255.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(std[1], sqrt(1.25) / 255.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(mean[2], 9 / 255.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(std[2], 1.0, 0); /* constant channel */
}

/* ---------------------------------------------------------------- Fashion-MNIST */

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static void test_convert_fashion_mnist(void)
{
    if (!exists(FASHION_DIR "/train-images-idx3-ubyte.gz")) {
        printf("\n  skipped: %s not installed (Debian package dataset-fashion-mnist)\n", FASHION_DIR);
        return;
    }
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    ics_raw_dataset raw;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_idx_load_dir(FASHION_DIR, names, &raw, &err), ICS_OK);
    CU_ASSERT_EQUAL(raw.train.count, 60000);
    CU_ASSERT_EQUAL(raw.test.count, 10000);
    ics_convert_options opt = {0.1, 1234, 0, NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(ics_convert_write(&raw, path_in("fashion.h5"), &opt, &err), ICS_OK);
    ics_dataset_reader *r;
    CU_ASSERT_EQUAL_FATAL(ics_dataset_open(path_in("fashion.h5"), &r, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_dataset_count(r, "train"), 54000);
    CU_ASSERT_EQUAL(ics_dataset_count(r, "val"), 6000);
    CU_ASSERT_EQUAL(ics_dataset_count(r, "test"), 10000);
    const ics_dataset_meta *m = ics_dataset_reader_meta(r);
    /* The well-known Fashion-MNIST statistics over its full train set are
     * mean 0.2860, std 0.3530; our train is 90% of it. */
    CU_ASSERT_DOUBLE_EQUAL(m->mean[0], 0.2860, 0.002);
    CU_ASSERT_DOUBLE_EQUAL(m->std[0], 0.3530, 0.002);
    CU_ASSERT_STRING_EQUAL(m->class_names[9], "Ankle boot");
    /* Val is 600 per class (Fashion-MNIST has 6000 of each). */
    int32_t *labels = malloc(6000 * sizeof *labels);
    CU_ASSERT_EQUAL(ics_dataset_read(r, "val", 0, 6000, NULL, labels, &err), ICS_OK);
    int count[10] = {0};
    for (int i = 0; i < 6000; i++) count[labels[i]]++;
    for (int c = 0; c < 10; c++) CU_ASSERT_EQUAL(count[c], 600);
    /* Test keeps the source order: compare test row 1234 with the source. */
    uint8_t img[784];
    CU_ASSERT_EQUAL(ics_dataset_read(r, "test", 1234, 1, img, labels, &err), ICS_OK);
    CU_ASSERT_EQUAL(memcmp(img, raw.test.images + 1234 * 784, 784), 0);
    CU_ASSERT_EQUAL(labels[0], raw.test.labels[1234]);
    free(labels);
    ics_dataset_close(r);
    ics_raw_dataset_clear(&raw);
}

int main(void)
{
    tmp = ics_test_tmpdir("data");
    static const ics_test_case format[] = {
        {"sha256 FIPS vectors and files", test_sha256_vectors},
        {"dataset round trip, deterministic bytes", test_dataset_round_trip},
        {"writer refuses bad labels and shapes", test_dataset_writer_refuses_bad_labels},
        {"reader refuses other files", test_dataset_reader_refuses_other_files},
        {"shards and verify without MPI", test_shards_without_mpi},
        {NULL, NULL}};
    static const ics_test_case idx[] = {
        {"IDX gzip and raw", test_idx_reads_gzip_and_raw},
        {"IDX bad input", test_idx_bad_input},
        {"stratified seeded split", test_split_is_stratified_and_seeded},
        {"mean and std formula", test_stats_match_formula},
        {"Fashion-MNIST from the Debian package", test_convert_fashion_mnist},
        {NULL, NULL}};
    ics_test_add_suite("dataset format", format);
    ics_test_add_suite("idx conversion", idx);
    int rc = ics_test_main("test_data");
    ics_test_rmtree(tmp);
    free(tmp);
    return rc;
}
