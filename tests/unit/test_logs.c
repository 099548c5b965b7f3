/*
 * Training loggers: CRC-32C, TFRecord framing, the Event protobuf, the
 * TensorBoard writer read back by our checking reader, metrics.jsonl
 * (exact text, and parsed back by Python's json), and every error path.
 * tests/unit/test_logs_tensorboard.c reads the event files with
 * TensorBoard's own reader.
 */
#include "ics_build_config.h"
#include "test_util.h"
#include "log/crc32c.h"
#include "log/logger.h"
#include "log/tb_event.h"
#include "log/tb_reader.h"
#include "log/tfrecord.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bit-at-a-time CRC-32C straight from the definition, to check the table. */
static uint32_t crc32c_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void test_crc32c(void)
{
    CU_ASSERT_EQUAL(ics_crc32c("123456789", 9), 0xE3069283u);
    CU_ASSERT_EQUAL(ics_crc32c("", 0), 0u);
    unsigned char data[1000];
    uint64_t rng = 3;
    for (size_t i = 0; i < sizeof data; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        data[i] = (unsigned char)(rng >> 56);
    }
    for (size_t n = 0; n <= sizeof data; n += 37) CU_ASSERT_EQUAL(ics_crc32c(data, n), crc32c_bitwise(data, n));
    CU_ASSERT_EQUAL(ics_crc32c_extend(ics_crc32c(data, 400), data + 400, 600), ics_crc32c(data, 1000));
    /* mask: rotate right by 15, add the constant */
    CU_ASSERT_EQUAL(ics_crc32c_mask(0), 0xA282EAD8u);
    CU_ASSERT_EQUAL(ics_crc32c_mask(0x00008000u), 0x00000001u + 0xA282EAD8u);
    CU_ASSERT_EQUAL(ics_crc32c_mask(1), 0x00020000u + 0xA282EAD8u);
}

static void test_event_encoding(void)
{
    unsigned char buf[ICS_TB_EVENT_MAX];
    /* Field by field: 09 <double> 10 <varint> 1a 0d "brain.Event:2" */
    size_t n = ics_tb_encode_file_version(buf, 1.5, 0, ICS_TB_FILE_VERSION);
    static const unsigned char want_fv[] = {0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 0x00, 0x1A, 13,
                                            'b', 'r', 'a', 'i', 'n', '.', 'E', 'v', 'e', 'n', 't', ':', '2'};
    CU_ASSERT_EQUAL(n, sizeof want_fv);
    CU_ASSERT_EQUAL(memcmp(buf, want_fv, sizeof want_fv), 0);
    /* 09 <double 2.0> 10 96 01 (150) 2a 0b [0a 09 [0a 02 "lr" 15 <float 0.25>]] */
    n = ics_tb_encode_scalar(buf, 2.0, 150, "lr", 0.25f);
    static const unsigned char want_s[] = {0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x10, 0x96, 0x01, 0x2A, 0x0B, 0x0A, 0x09,
                                           0x0A, 0x02, 'l', 'r', 0x15, 0x00, 0x00, 0x80, 0x3E};
    CU_ASSERT_EQUAL(n, sizeof want_s);
    CU_ASSERT_EQUAL(memcmp(buf, want_s, sizeof want_s), 0);

    ics_tb_event ev;
    ics_error err;
    CU_ASSERT_EQUAL(ics_tb_decode(buf, n, &ev, &err), ICS_OK);
    CU_ASSERT_EQUAL(ev.step, 150);
    CU_ASSERT_EQUAL(ev.wall_time, 2.0);
    CU_ASSERT_EQUAL(ev.n_values, 1);
    CU_ASSERT_EQUAL(ev.tag_len, 2);
    CU_ASSERT_EQUAL(memcmp(ev.tag, "lr", 2), 0);
    CU_ASSERT_EQUAL(ev.simple_value, 0.25f);

    /* a negative step is a ten-byte varint and decodes back */
    n = ics_tb_encode_scalar(buf, 0.0, -3, "x", 1.0f);
    CU_ASSERT_EQUAL(ics_tb_decode(buf, n, &ev, &err), ICS_OK);
    CU_ASSERT_EQUAL(ev.step, -3);

    /* a long tag: two-byte lengths; over the limit: refused */
    char tag[ICS_TB_TAG_MAX + 2];
    memset(tag, 'a', ICS_TB_TAG_MAX);
    tag[ICS_TB_TAG_MAX] = '\0';
    n = ics_tb_encode_scalar(buf, 0.0, 1, tag, 3.0f);
    CU_ASSERT(n > ICS_TB_TAG_MAX && n <= ICS_TB_EVENT_MAX);
    CU_ASSERT_EQUAL(ics_tb_decode(buf, n, &ev, &err), ICS_OK);
    CU_ASSERT_EQUAL(ev.tag_len, ICS_TB_TAG_MAX);
    CU_ASSERT_EQUAL(ev.simple_value, 3.0f);
    tag[ICS_TB_TAG_MAX] = 'a';
    tag[ICS_TB_TAG_MAX + 1] = '\0';
    CU_ASSERT_EQUAL(ics_tb_encode_scalar(buf, 0.0, 1, tag, 3.0f), 0);

    /* malformed messages */
    static const unsigned char bad_field[] = {0x0B}; /* wire type 3 (group) */
    CU_ASSERT_EQUAL(ics_tb_decode(bad_field, sizeof bad_field, &ev, &err), ICS_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(err.message, "event: malformed protobuf field");
    static const unsigned char bad_summary[] = {0x2A, 0x02, 0x0A, 0x05};
    CU_ASSERT_EQUAL(ics_tb_decode(bad_summary, sizeof bad_summary, &ev, &err), ICS_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(err.message, "event: malformed summary");
    static const unsigned char bad_value[] = {0x2A, 0x03, 0x0A, 0x01, 0x15};
    CU_ASSERT_EQUAL(ics_tb_decode(bad_value, sizeof bad_value, &ev, &err), ICS_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(err.message, "event: malformed summary value");
}

/* Lists dir's event files (malloc'd names, sorted); returns the count. */
static int event_files(const char *dir, char names[][512], int max)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max)
        if (strncmp(e->d_name, "events.out.tfevents.", 20) == 0) snprintf(names[n++], 512, "%s/%s", dir, e->d_name);
    closedir(d);
    qsort(names, (size_t)n, 512, (int (*)(const void *, const void *))strcmp);
    return n;
}

typedef struct {
    int n;
    int64_t steps[64];
    char tags[64][32];
    float values[64];
} collected;

static ics_status collect(void *ctx, int64_t step, double wall_time, const char *tag, float value, ics_error *err)
{
    collected *c = ctx;
    if (c->n >= 64) return ICS_FAIL(err, ICS_ERR_RUNTIME, "too many scalars");
    CU_ASSERT(wall_time > 1.6e9); /* a real clock, seconds since 1970 */
    c->steps[c->n] = step;
    snprintf(c->tags[c->n], sizeof c->tags[0], "%s", tag);
    c->values[c->n] = value;
    c->n++;
    return ICS_OK;
}

static ics_status stop_at_first(void *ctx, int64_t step, double wall_time, const char *tag, float value,
                                ics_error *err)
{
    return ICS_FAIL(err, ICS_ERR_INTERRUPTED, "stopped at %s", tag);
}

static void test_tensorboard_writer_and_reader(void)
{
    char *tmp = ics_test_tmpdir("tb");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/run/tensorboard", tmp); /* parents created */
    ics_error err;
    ics_logger *lg = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "tensorboard", dir, &err), ICS_OK);
    for (int step = 1; step <= 10; step++) {
        CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Train/loss", step, step / 5.0, 1.0 / step, &err), ICS_OK);
        if (step % 5 == 0) CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Test/acc1", step, step / 5.0, 0.5 + step * 0.01, &err), ICS_OK);
    }
    CU_ASSERT_EQUAL(ics_logger_flush(lg, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_close(lg, &err), ICS_OK);
    /* a resumed run: a new file, even within the same second */
    CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "tensorboard", dir, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Train/loss", 11, 2.2, 0.05, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_close(lg, &err), ICS_OK);

    static char files[4][512];
    CU_ASSERT_EQUAL_FATAL(event_files(dir, files, 4), 2);
    /* events.out.tfevents.<10 digits>.<host>.<pid>.<n> */
    const char *base = strrchr(files[0], '/') + 1;
    for (int i = 20; i < 30; i++) CU_ASSERT(base[i] >= '0' && base[i] <= '9');
    CU_ASSERT_EQUAL(base[30], '.');
    char pid_part[64];
    snprintf(pid_part, sizeof pid_part, ".%ld.", (long)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(base, pid_part));

    collected c = {0};
    long count = 0;
    CU_ASSERT_EQUAL(ics_tb_read_scalars(files[0], collect, &c, &count, &err), ICS_OK);
    CU_ASSERT_EQUAL(count, 12);
    CU_ASSERT_EQUAL(c.n, 12);
    CU_ASSERT_STRING_EQUAL(c.tags[0], "Train/loss");
    CU_ASSERT_EQUAL(c.steps[0], 1);
    CU_ASSERT_EQUAL(c.values[0], 1.0f);
    CU_ASSERT_STRING_EQUAL(c.tags[5], "Test/acc1");
    CU_ASSERT_EQUAL(c.steps[5], 5);
    CU_ASSERT_EQUAL(c.values[5], (float)(0.5 + 5 * 0.01));
    CU_ASSERT_EQUAL(c.values[11], (float)(0.5 + 10 * 0.01));
    CU_ASSERT_EQUAL(c.values[10], (float)(1.0 / 10));
    collected c2 = {0};
    CU_ASSERT_EQUAL(ics_tb_read_scalars(files[1], collect, &c2, NULL, &err), ICS_OK);
    CU_ASSERT_EQUAL(c2.n, 1);
    CU_ASSERT_EQUAL(c2.steps[0], 11);
    /* the callback can stop the reading */
    CU_ASSERT_EQUAL(ics_tb_read_scalars(files[0], stop_at_first, NULL, NULL, &err), ICS_ERR_INTERRUPTED);
    CU_ASSERT_STRING_EQUAL(err.message, "stopped at Train/loss");

    /* tag too long */
    CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "tensorboard", dir, &err), ICS_OK);
    char tag[ICS_TB_TAG_MAX + 2];
    memset(tag, 'x', sizeof tag - 1);
    tag[sizeof tag - 1] = '\0';
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, tag, 1, 0, 1, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "tag is longer than 1024 bytes: xxxx"));
    CU_ASSERT_EQUAL(ics_logger_close(lg, &err), ICS_OK);
    ics_test_rmtree(tmp);
    free(tmp);
}

/* Writes bytes to a new file. */
static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(data, 1, n, f), n);
    fclose(f);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    return (unsigned char *)ics_test_read_file(path, n);
}

/* Damaged files are reported, with the record and byte offset. */
static void test_corruption_detected(void)
{
    char *tmp = ics_test_tmpdir("tbbad");
    ics_error err;
    ics_logger *lg = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "tensorboard", tmp, &err), ICS_OK);
    for (int s = 1; s <= 3; s++) ics_logger_scalar(lg, "loss", s, 0, s, &err);
    CU_ASSERT_EQUAL(ics_logger_close(lg, &err), ICS_OK);
    static char files[2][512];
    CU_ASSERT_EQUAL_FATAL(event_files(tmp, files, 2), 1);
    size_t n;
    unsigned char *good = slurp(files[0], &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(good);
    /* record 0: 12 + 26 + 4 = 42 bytes; record 1 starts at 42 */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad", tmp);
    unsigned char *copy = malloc(n);

    memcpy(copy, good, n);
    copy[42 + 12 + 20] ^= 0x01; /* a payload byte of record 1 */
    write_bytes(bad, copy, n);
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "record 1 at byte 42: payload CRC mismatch"));

    memcpy(copy, good, n);
    copy[42] ^= 0x01; /* record 1's length */
    write_bytes(bad, copy, n);
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "record 1 at byte 42: length CRC mismatch"));

    write_bytes(bad, good, n - 3); /* cut inside the last record's footer */
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "truncated payload"));

    write_bytes(bad, good, 42 + 5); /* cut inside record 1's header */
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "record 1 at byte 42: truncated header (5 of 12 bytes)"));

    write_bytes(bad, good, 0);
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "empty event file (no file_version record)"));

    /* valid framing, but the first record is a scalar */
    write_bytes(bad, good + 42, n - 42);
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "the first record is not a file_version event"));

    /* valid framing around a payload that is not a protobuf message */
    FILE *f = fopen(bad, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(good, 1, 42, f), 42);
    static const unsigned char junk[] = {0x0B, 0x0B};
    CU_ASSERT_EQUAL(ics_tfrecord_write(f, bad, junk, sizeof junk, &err), ICS_OK);
    fclose(f);
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "record 1: event: malformed protobuf field"));

    /* a length with a right CRC but absurdly large */
    unsigned char header[12] = {0, 0, 0, 0, 0, 1, 0, 0};
    uint32_t crc = ics_crc32c_mask(ics_crc32c(header, 8));
    for (int i = 0; i < 4; i++) header[8 + i] = (unsigned char)(crc >> (8 * i));
    write_bytes(bad, header, sizeof header);
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "record 0 at byte 0: length 1099511627776 exceeds 67108864 bytes"));

    snprintf(bad, sizeof bad, "%s/missing", tmp);
    CU_ASSERT_EQUAL(ics_tb_read_scalars(bad, NULL, NULL, NULL, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot open"));

    /* a record write to a full device fails at once when unbuffered */
    f = fopen("/dev/full", "wb");
    if (f) {
        setvbuf(f, NULL, _IONBF, 0);
        CU_ASSERT_EQUAL(ics_tfrecord_write(f, "/dev/full", junk, sizeof junk, &err), ICS_ERR_IO);
        CU_ASSERT_STRING_EQUAL(err.message, "/dev/full: cannot write a record: No space left on device");
        fclose(f);
    }
    free(copy);
    free(good);
    ics_test_rmtree(tmp);
    free(tmp);
}

static void test_jsonl_lines(void)
{
    char *tmp = ics_test_tmpdir("jsonl");
    ics_error err;
    ics_logger *lg = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "jsonl", tmp, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Train/loss", 10, 0.5, 2.25, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Train/lr", 10, 0.5, 0.1, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Train/loss", 10, 0.5, 2.0, &err), ICS_OK); /* replaced */
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Test/acc \"top\"\\1\n", 20, 1.0, 1.0 / 3.0, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Train/loss", 20, 1.0, NAN, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_flush(lg, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Train/loss", 30, 1.5, 1e-300, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "ctrl\x01", 30, 1.5, -INFINITY, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "step", 30, 1.5, 1, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "the tag 'step' is reserved for the x axis"));
    CU_ASSERT_EQUAL(ics_logger_close(lg, &err), ICS_OK);

    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", tmp);
    char *text = ics_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_STRING_EQUAL(text,
                           "{\"step\":10,\"epoch\":0.5,\"Train/loss\":2,\"Train/lr\":0.1}\n"
                           "{\"step\":20,\"epoch\":1,\"Test/acc \\\"top\\\"\\\\1\\n\":0.3333333333333333,"
                           "\"Train/loss\":null}\n"
                           "{\"step\":30,\"epoch\":1.5,\"Train/loss\":1e-300,\"ctrl\\u0001\":null}\n");
    free(text);

    /* Python's json reads every line back to the same values. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s -c 'import json,sys\n"
             "rows=[json.loads(l) for l in open(sys.argv[1])]\n"
             "assert rows[0]==dict(step=10,epoch=0.5,**{\"Train/lr\":0.1,\"Train/loss\":2.0}), rows[0]\n"
             "assert rows[1][\"Test/acc \\\"top\\\"\\\\1\\n\"]==1/3 and rows[1][\"Train/loss\"] is None, rows[1]\n"
             "assert rows[2][\"Train/loss\"]==1e-300 and rows[2][\"ctrl\\x01\"] is None, rows[2]\n"
             "print(\"ok\", len(rows))' '%s'",
             getenv("PYTHON_TORCH") ? getenv("PYTHON_TORCH") : "/usr/bin/python3", path);
    char *out = NULL;
    int rc = ics_test_run(cmd, &out);
    if (rc != 0) printf("\n%s\n%s\n", cmd, out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ok 3"));
    free(out);

    /* Resume after a crash that cut a line: the partial line is closed
     * off and new lines append after it. */
    FILE *f = fopen(path, "a");
    fputs("{\"step\":40,\"epo", f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "jsonl", tmp, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_scalar(lg, "Train/loss", 40, 2.0, 0.125, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_close(lg, &err), ICS_OK);
    text = ics_test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    const char *tail = strstr(text, "{\"step\":40,\"epo\n");
    CU_ASSERT_PTR_NOT_NULL(tail);
    if (tail) CU_ASSERT_STRING_EQUAL(tail, "{\"step\":40,\"epo\n{\"step\":40,\"epoch\":2,\"Train/loss\":0.125}\n");
    free(text);
    ics_test_rmtree(tmp);
    free(tmp);
}

static void test_logger_open_errors(void)
{
    char *tmp = ics_test_tmpdir("logerr");
    ics_error err;
    ics_logger *lg = (ics_logger *)1;
    CU_ASSERT_EQUAL(ics_logger_open(&lg, "wandb", tmp, &err), ICS_ERR_INVALID);
    CU_ASSERT_PTR_NULL(lg);
    CU_ASSERT_STRING_EQUAL(err.message, "unknown logger 'wandb' (known: jsonl, tensorboard)");
    CU_ASSERT_PTR_NOT_NULL(ics_logger_find("jsonl"));
    CU_ASSERT_EQUAL(ics_logger_close(NULL, &err), ICS_OK);

    CU_ASSERT_EQUAL(ics_logger_open(&lg, "jsonl", "", &err), ICS_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(err.message, "logger: empty directory name");

    char *file = ics_test_write_file(tmp, "plain", "x");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sub", file);
    CU_ASSERT_EQUAL(ics_logger_open(&lg, "tensorboard", dir, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot create directory"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "Not a directory"));
    CU_ASSERT_EQUAL(ics_logger_open(&lg, "jsonl", file, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "exists and is not a directory"));

    /* metrics.jsonl is a directory: it cannot be opened */
    snprintf(dir, sizeof dir, "%s/m", tmp);
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/metrics.jsonl", dir);
    CU_ASSERT_EQUAL(ics_log_mkdirs(sub, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_logger_open(&lg, "jsonl", dir, &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot open"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "metrics.jsonl"));

    /* a directory where files cannot be created (procfs, even for root) */
    CU_ASSERT_EQUAL(ics_logger_open(&lg, "tensorboard", "/proc/self", &err), ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "cannot create /proc/self/events.out.tfevents."));
    free(file);
    ics_test_rmtree(tmp);
    free(tmp);
}

/* Write errors: metrics.jsonl pointing at /dev/full, and a file size limit
 * (RLIMIT_FSIZE, SIGXFSZ ignored: writes past it fail with EFBIG). */
static void test_logger_write_errors(void)
{
    char *tmp = ics_test_tmpdir("logfull");
    ics_error err;
    ics_logger *lg = NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", tmp);
    if (symlink("/dev/full", path) == 0) {
        CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "jsonl", tmp, &err), ICS_OK);
        CU_ASSERT_EQUAL(ics_logger_scalar(lg, "a", 1, 0, 1, &err), ICS_OK);
        CU_ASSERT_EQUAL(ics_logger_scalar(lg, "a", 2, 0, 1, &err), ICS_ERR_IO);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "metrics.jsonl: cannot write: No space left on device"));
        CU_ASSERT_EQUAL(ics_logger_flush(lg, &err), ICS_ERR_IO);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "metrics.jsonl: cannot"));
        ics_logger_close(lg, &err);
    }

    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {200, old.rlim_max};
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tb", tmp);
    CU_ASSERT_EQUAL(ics_log_mkdirs(dir, &err), ICS_OK);
    setrlimit(RLIMIT_FSIZE, &small);
    ics_status open_st = ics_logger_open(&lg, "tensorboard", dir, &err);
    ics_status flush_st = ICS_OK, close_st = ICS_OK;
    if (open_st == ICS_OK) {
        for (int s = 0; s < 20; s++) ics_logger_scalar(lg, "loss", s, 0, s, &err);
        flush_st = ics_logger_flush(lg, &err);
        ics_logger_scalar(lg, "loss", 21, 0, 1, &err);
        close_st = ics_logger_close(lg, &err);
    }
    struct rlimit tiny = {10, old.rlim_max};
    setrlimit(RLIMIT_FSIZE, &tiny);
    ics_error open_err;
    ics_status tiny_st = ics_logger_open(&lg, "tensorboard", dir, &open_err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    CU_ASSERT_EQUAL(open_st, ICS_OK);
    CU_ASSERT_EQUAL(flush_st, ICS_ERR_IO);
    CU_ASSERT_EQUAL(close_st, ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, ": cannot close: File too large"));
    CU_ASSERT_EQUAL(tiny_st, ICS_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(open_err.message, ": cannot write: File too large"));
    ics_test_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    static const ics_test_case logs[] = {
        {"crc32c", test_crc32c},
        {"event protobuf encoding", test_event_encoding},
        {"tensorboard writer and reader", test_tensorboard_writer_and_reader},
        {"corrupted event files detected", test_corruption_detected},
        {"metrics.jsonl lines", test_jsonl_lines},
        {"logger open errors", test_logger_open_errors},
        {"logger write errors", test_logger_write_errors},
        {NULL, NULL}};
    ics_test_add_suite("logs", logs);
    return ics_test_main("test_logs");
}
