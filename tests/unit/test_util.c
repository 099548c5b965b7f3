/* Test helpers: see test_util.h. */
#include "ics_build_config.h"
#include "test_util.h"

#include <icsparse/model.h>

#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int ics_test_main(const char *program)
{
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    printf("%s: %u tests run, %u failures\n", program, run, CU_get_number_of_tests_failed());
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

void ics_test_add_suite(const char *suite, const ics_test_case *cases)
{
    if (CU_get_registry() == NULL && CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CUnit registry: %s\n", CU_get_error_msg());
        exit(1);
    }
    CU_pSuite s = CU_add_suite(suite, NULL, NULL);
    for (int i = 0; cases[i].name; i++) CU_add_test(s, cases[i].name, cases[i].fn);
}

char *ics_test_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char *path = malloc(strlen(base) + strlen(tag) + 32);
    sprintf(path, "%s/icstest-%s-XXXXXX", base, tag);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        exit(1);
    }
    return path;
}

void ics_test_rmtree(const char *dir)
{
    if (!dir) return;
    char *cmd = malloc(strlen(dir) + 16);
    sprintf(cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(cmd);
}

char *ics_test_write_file(const char *dir, const char *name, const char *text)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

char *ics_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int ics_test_run(const char *command, char **output)
{
    char *full = malloc(strlen(command) + 16);
    sprintf(full, "(%s) 2>&1", command);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n - 1 == 0) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int status = pclose(p);
    if (output)
        *output = buf;
    else
        free(buf);
    if (status == -1) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const char *ics_test_srcdir(void)
{
    const char *s = getenv("top_srcdir");
    return s && *s ? s : ".";
}

const char *ics_test_builddir(void)
{
    const char *s = getenv("top_builddir");
    return s && *s ? s : ".";
}

static const char *python_torch(void)
{
    const char *p = getenv("PYTHON_TORCH");
    return p && *p ? p : "/usr/bin/python3";
}

int ics_test_have_torch(void)
{
    static int cached = -1;
    if (cached < 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", python_torch());
        cached = system(cmd) == 0;
    }
    return cached;
}

int ics_test_run_torch(const char *script, const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s '%s/%s' '%s'", python_torch(), ics_test_srcdir(),
             script, dir);
    char *out = NULL;
    int rc = ics_test_run(cmd, &out);
    if (rc != 0) fprintf(stderr, "%s failed (%d):\n%s\n", cmd, rc, out ? out : "");
    free(out);
    return rc;
}

static int npy_write(const char *dir, const char *name, const char *descr, const void *data,
                     size_t elem, const int64_t *shape, int ndim)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    char header[256];
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descr);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(header + len, sizeof header - len, "%lld,", (long long)shape[i]);
        count *= (size_t)shape[i];
    }
    len += snprintf(header + len, sizeof header - len, "), }");
    /* Pad with spaces so that magic(6)+version(2)+len(2)+header ends on a
     * multiple of 64 with a trailing newline. */
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned short hlen = (unsigned short)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(header, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, elem, count, f);
    return fclose(f);
}

int ics_test_npy_write_f32(const char *dir, const char *name, const float *data, const int64_t *shape,
                           int ndim)
{
    return npy_write(dir, name, "<f4", data, 4, shape, ndim);
}

int ics_test_npy_write_i32(const char *dir, const char *name, const int32_t *data,
                           const int64_t *shape, int ndim)
{
    return npy_write(dir, name, "<i4", data, 4, shape, ndim);
}

float *ics_test_npy_read_f32(const char *dir, const char *name, int64_t *shape, int *ndim)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    size_t len = 0;
    char *buf = ics_test_read_file(path, &len);
    if (!buf || len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        free(buf);
        return NULL;
    }
    size_t hlen, off;
    if (buf[6] == 1) {
        hlen = (unsigned char)buf[8] | ((unsigned char)buf[9] << 8);
        off = 10;
    } else {
        hlen = (unsigned char)buf[8] | ((unsigned char)buf[9] << 8) | ((size_t)(unsigned char)buf[10] << 16);
        off = 12;
    }
    char *hdr = buf + off;
    int is_f8 = strstr(hdr, "<f8") != NULL && strstr(hdr, "<f8") < hdr + hlen;
    int is_i4 = strstr(hdr, "<i4") != NULL && strstr(hdr, "<i4") < hdr + hlen;
    int is_i8 = strstr(hdr, "<i8") != NULL && strstr(hdr, "<i8") < hdr + hlen;
    char *sp = strstr(hdr, "'shape': (");
    int nd = 0;
    size_t count = 1;
    if (sp) {
        sp += 10;
        while (*sp && *sp != ')') {
            long long v = strtoll(sp, &sp, 10);
            if (shape) shape[nd] = v;
            nd++;
            count *= (size_t)v;
            while (*sp == ',' || *sp == ' ') sp++;
        }
    }
    if (ndim) *ndim = nd;
    float *out = malloc((count ? count : 1) * sizeof(float));
    const char *data = buf + off + hlen;
    for (size_t i = 0; i < count; i++) {
        if (is_f8) {
            double d;
            memcpy(&d, data + 8 * i, 8);
            out[i] = (float)d;
        } else if (is_i8) {
            long long v;
            memcpy(&v, data + 8 * i, 8);
            out[i] = (float)v;
        } else if (is_i4) {
            int v;
            memcpy(&v, data + 4 * i, 4);
            out[i] = (float)v;
        } else {
            memcpy(&out[i], data + 4 * i, 4);
        }
    }
    free(buf);
    return out;
}

void ics_test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t *state)
{
    for (size_t i = 0; i < n; i++) {
        /* splitmix64 */
        uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0));
    }
}

double ics_test_compare(const char *label, const float *got, const float *want, size_t n, double atol,
                        double rtol)
{
    double worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double r = d / (atol + rtol * fabs((double)want[i]));
        if (isnan(got[i]) != isnan(want[i])) r = INFINITY;
        if (r > worst) {
            worst = r;
            worst_i = i;
        }
    }
    if (worst > 1.0 && label)
        fprintf(stderr, "%s: element %zu got %.8g want %.8g (%.2fx the tolerance)\n", label, worst_i,
                (double)got[worst_i], (double)want[worst_i], worst);
    return worst;
}

struct ics_model *ics_test_model(const char *arch, int classes, int in_c, int h, int w, int cifar, float width)
{
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = classes;
    o.in_channels = in_c;
    o.in_h = h;
    o.in_w = w;
    o.cifar_stem = cifar;
    if (width > 0.0f) o.width_mult = width;
    ics_model *m = NULL;
    ics_error err;
    if (ics_model_create(arch, &o, &m, &err) != ICS_OK) {
        fprintf(stderr, "%s: %s\n", arch, err.message);
        return NULL;
    }
    return m;
}
