/*
 * TensorBoard reads our event files: a run of scalars over two files (a
 * resume), read back with TensorBoard's EventAccumulator (Reload, then
 * Scalars(tag)) through tests/tools/tb_read.py, must give exactly the tags,
 * steps and float32 values written. Skips (77) when tensorboard is not
 * importable: `python3 -m pip install tensorboard`.
 *
 * The Python used is $PYTHON_TENSORBOARD, else `python3` from PATH (the
 * pyenv one, where pip installs tensorboard; Debian's python3 has none).
 */
#include "ics_build_config.h"
#include "test_util.h"
#include "log/logger.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *python(void)
{
    const char *p = getenv("PYTHON_TENSORBOARD");
    return p && *p ? p : "python3";
}

static int skipped;

static void test_tensorboard_reads_our_files(void)
{
    char *dir = ics_test_tmpdir("tbread");
    ics_error err;
    ics_logger *lg = NULL;
    /* Expected output of tb_read.py, built as we write: tags sorted, then
     * file (= step) order. repr() of the float32 value TensorBoard holds,
     * widened to double, is what %.17g gives after rounding to float; we
     * compare numerically instead of textually. */
    const char *tags[] = {"Test/acc1", "Train/loss", "Train/lr"};
    enum { STEPS = 30 };
    double values[3][STEPS + 5];
    int64_t steps[3][STEPS + 5];
    int counts[3] = {0};
    CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "tensorboard", dir, &err), ICS_OK);
    for (int s = 1; s <= STEPS; s++) {
        double loss = 2.0 * exp(-s / 10.0) + 1e-3 * s, lr = 0.1 * (1 + cos(3.14159265 * s / STEPS)) / 2;
        ics_logger_scalar(lg, "Train/loss", s, s / 10.0, loss, &err);
        ics_logger_scalar(lg, "Train/lr", s, s / 10.0, lr, &err);
        values[1][counts[1]] = loss;
        steps[1][counts[1]++] = s;
        values[2][counts[2]] = lr;
        steps[2][counts[2]++] = s;
        if (s % 10 == 0) {
            double acc = 0.5 + s / 100.0;
            ics_logger_scalar(lg, "Test/acc1", s, s / 10.0, acc, &err);
            values[0][counts[0]] = acc;
            steps[0][counts[0]++] = s;
        }
    }
    CU_ASSERT_EQUAL(ics_logger_close(lg, &err), ICS_OK);
    /* resume: a second file continuing the steps */
    CU_ASSERT_EQUAL_FATAL(ics_logger_open(&lg, "tensorboard", dir, &err), ICS_OK);
    for (int s = STEPS + 1; s <= STEPS + 3; s++) {
        ics_logger_scalar(lg, "Train/loss", s, s / 10.0, 1.0 / s, &err);
        values[1][counts[1]] = 1.0 / s;
        steps[1][counts[1]++] = s;
    }
    CU_ASSERT_EQUAL(ics_logger_close(lg, &err), ICS_OK);

    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s/tests/tools/tb_read.py' '%s'", python(), ics_test_srcdir(), dir);
    char *out = NULL;
    int rc = ics_test_run(cmd, &out);
    if (rc == 77) {
        printf("\n%s", out);
        skipped = 1;
        free(out);
        ics_test_rmtree(dir);
        free(dir);
        return;
    }
    if (rc != 0) printf("\n%s failed (%d):\n%s\n", cmd, rc, out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);

    int line = 0, t = 0, i = 0, mismatches = 0;
    for (char *row = strtok(out, "\n"); row; row = strtok(NULL, "\n"), line++) {
        while (t < 3 && i >= counts[t]) {
            t++;
            i = 0;
        }
        if (t >= 3) {
            mismatches++;
            break;
        }
        char tag[64];
        long long step;
        double value;
        if (sscanf(row, "%63[^\t]\t%lld\t%lf", tag, &step, &value) != 3 || strcmp(tag, tags[t]) != 0 ||
            step != steps[t][i] || (float)value != (float)values[t][i] || value != (double)(float)values[t][i]) {
            printf("\n  line %d: got '%s', want %s %lld %.9g\n", line, row, tags[t], (long long)steps[t][i],
                   (double)(float)values[t][i]);
            mismatches++;
        }
        i++;
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    CU_ASSERT_EQUAL(line, counts[0] + counts[1] + counts[2]);
    free(out);
    ics_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    static const ics_test_case cases[] = {{"tensorboard reads our event files", test_tensorboard_reads_our_files},
                                          {NULL, NULL}};
    ics_test_add_suite("tensorboard", cases);
    int rc = ics_test_main("test_logs_tensorboard");
    if (skipped && rc == 0) {
        printf("test_logs_tensorboard: SKIP: tensorboard not importable by %s "
               "(python3 -m pip install tensorboard)\n",
               python());
        rc = 77;
    }
    return rc;
}
