/*
 * Helpers shared by the CUnit test programs: a runner, temporary
 * directories, files, subprocesses, and the PyTorch reference exchange
 * (.npy files written here, read by a Python script run with
 * $PYTHON_TORCH, results read back).
 */
#ifndef ICS_TEST_UTIL_H
#define ICS_TEST_UTIL_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdint.h>

/* Runs every registered suite; returns the process exit code: 0 all passed,
 * 1 some failed, 77 (automake SKIP) when skip_reason is set and nothing ran. */
int ics_test_main(const char *program);
/* Adds a suite of tests {name, fn} terminated by {NULL, NULL}. */
typedef struct { const char *name; CU_TestFunc fn; } ics_test_case;
void ics_test_add_suite(const char *suite, const ics_test_case *cases);

/* A fresh directory under $TMPDIR (removed by ics_test_rmtree). Caller frees. */
char *ics_test_tmpdir(const char *tag);
void ics_test_rmtree(const char *dir);
/* Writes text to dir/name; returns the malloc'd full path. */
char *ics_test_write_file(const char *dir, const char *name, const char *text);
/* Reads a whole file (NUL-terminated); NULL if missing. Caller frees. */
char *ics_test_read_file(const char *path, size_t *len);

/* Runs a shell command, capturing stdout+stderr (malloc'd, NUL-terminated)
 * into *output if non-NULL; returns the exit status (or -1). */
int ics_test_run(const char *command, char **output);

/* Absolute source and build directories (from make check's environment,
 * else "." ). */
const char *ics_test_srcdir(void);
const char *ics_test_builddir(void);

/* PyTorch reference: 1 if $PYTHON_TORCH can import torch. */
int ics_test_have_torch(void);
/* Runs `$PYTHON_TORCH script dir` (script relative to the source dir);
 * returns its exit status, printing its output on failure. */
int ics_test_run_torch(const char *script, const char *dir);

/* .npy exchange (little-endian, C order). dtype "<f4" or "<i4" or "<i8". */
int ics_test_npy_write_f32(const char *dir, const char *name, const float *data, const int64_t *shape,
                           int ndim);
int ics_test_npy_write_i32(const char *dir, const char *name, const int32_t *data,
                           const int64_t *shape, int ndim);
/* Reads dir/name.npy as float32 (converting from f8 if needed); returns a
 * malloc'd array and fills shape/ndim; NULL on error. */
float *ics_test_npy_read_f32(const char *dir, const char *name, int64_t *shape, int *ndim);

/* Deterministic pseudo-random fill for tests: uniform in [lo, hi). */
void ics_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t *state);

/* Max |a-b| / (atol + rtol*|b|) over n elements: <= 1 means within tolerance.
 * Prints the worst index when > 1 and label is not NULL. */
double ics_test_compare(const char *label, const float *got, const float *want, size_t n, double atol,
                        double rtol);
#define ICS_ASSERT_CLOSE(label, got, want, n, atol, rtol) \
    CU_ASSERT(ics_test_compare((label), (got), (want), (n), (atol), (rtol)) <= 1.0)

/* A model of `arch` for classes x in_c x h x w inputs (cifar: CIFAR stem;
 * width: mobilenet_v2's multiplier, 0 for the default); NULL after printing
 * the error naming `arch`. */
struct ics_model;
struct ics_model *ics_test_model(const char *arch, int classes, int in_c, int h, int w, int cifar, float width);

#endif
