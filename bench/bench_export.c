/*
 * bench/bench_export.c: how long icsparse takes to export a model to ONNX
 * and how fast icsparse's own eval-mode forward runs it, for three forms of
 * one model, written for onnxruntime to run beside
 * (bench/bench_export_ort.py; bench/run-export-bench prints the table):
 *   dense   random weights, BN folded, fp32 ONNX;
 *   pruned  the same with the SPARSITY smallest-magnitude fraction of every
 *           conv and linear weight set to zero (fp32 ONNX);
 *   int8    the pruned model after ics_model_qat_prepare and a few
 *           training-mode forwards to set the observers: the int8 QDQ ONNX,
 *           and icsparse's forward of the QAT model (fake quantization).
 * Export time is the fastest of three ics_export_onnx calls (graph walk,
 * folding or quantization, protobuf-c packing and the atomic write).
 *
 * usage: bench_export ARCH BATCH H W CHANNELS CLASSES CIFAR_STEM STEPS THREADS SPARSITY OUTDIR
 * prints, per form: icsparse FORM EXPORT_MS ONNX_MB IMAGES_PER_S (OUTDIR/FORM.onnx)
 */
#include "ics_build_config.h"

#include <icsparse/export.h>
#include <icsparse/model.h>
#include <icsparse/qat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend/backend.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_abs(const void *a, const void *b)
{
    float x = fabsf(*(const float *)a), y = fabsf(*(const float *)b);
    return (x > y) - (x < y);
}

/* Zeroes the `sparsity` fraction of smallest |w| of every prunable weight. */
static int prune(ics_model *m, double sparsity)
{
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *ti = ics_model_tensor(m, i);
        if (!ti->prunable) continue;
        float *w = ics_model_tensor_data(m, i);
        size_t n = (size_t)ti->numel, k = (size_t)(sparsity * (double)n);
        float *sorted = malloc(n * sizeof *sorted);
        if (!sorted) return -1;
        memcpy(sorted, w, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_abs);
        float cut = k > 0 ? fabsf(sorted[k - 1]) : -1.0f;
        size_t zeroed = 0;
        for (size_t j = 0; j < n && zeroed < k; j++)
            if (fabsf(w[j]) <= cut) {
                w[j] = 0.0f;
                zeroed++;
            }
        free(sorted);
    }
    return 0;
}

/* Exports three times (replacing the file), keeps the fastest; then
 * `steps` timed eval-mode forwards after one warm-up. */
static int measure(ics_model *m, const char *form, const char *dir, const float *x, int batch,
                   int steps)
{
    char out[4200];
    snprintf(out, sizeof out, "%s/%s.onnx", dir, form);
    ics_export_options eo;
    ics_export_options_default(&eo);
    eo.force = 1;
    ics_error err;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        if (ics_export_onnx(m, &eo, out, &err) != ICS_OK) {
            fprintf(stderr, "bench_export: %s\n", err.message);
            return -1;
        }
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    struct stat sb;
    double mb = stat(out, &sb) == 0 ? (double)sb.st_size / 1e6 : 0.0;
    if (ics_model_plan(m, batch, 0, &err) != ICS_OK) {
        fprintf(stderr, "bench_export: %s\n", err.message);
        return -1;
    }
    double start = 0;
    for (int step = 0; step <= steps; step++) {
        if (step == 1) start = now_s();
        const float *logits;
        if (ics_model_forward(m, x, batch, &logits, &err) != ICS_OK) {
            fprintf(stderr, "bench_export: %s\n", err.message);
            return -1;
        }
    }
    double elapsed = now_s() - start;
    printf("icsparse %s %.1f %.2f %.2f\n", form, best * 1e3, mb, steps * batch / elapsed);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 12) {
        fprintf(stderr,
                "usage: %s ARCH BATCH H W CHANNELS CLASSES CIFAR_STEM STEPS THREADS SPARSITY "
                "OUTDIR\n",
                argv[0]);
        return 2;
    }
    const char *arch = argv[1];
    int batch = atoi(argv[2]);
    ics_model_options o;
    ics_model_options_default(&o);
    o.in_h = atoi(argv[3]);
    o.in_w = atoi(argv[4]);
    o.in_channels = atoi(argv[5]);
    o.num_classes = atoi(argv[6]);
    o.cifar_stem = atoi(argv[7]);
    int steps = atoi(argv[8]);
    ics_backend_cpu_set_threads(atoi(argv[9]));
    double sparsity = atof(argv[10]);
    const char *dir = argv[11];

    ics_error err;
    ics_model *m = NULL;
    if (ics_model_create(arch, &o, &m, &err) != ICS_OK) {
        fprintf(stderr, "bench_export: %s\n", err.message);
        return 1;
    }
    ics_model_init_params(m, 1);

    size_t in_count = (size_t)batch * o.in_h * o.in_w * o.in_channels;
    float *x = malloc(in_count * sizeof *x);
    if (!x) return 1;
    uint64_t s = 1;
    for (size_t i = 0; i < in_count; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
    int rc = measure(m, "dense", dir, x, batch, steps);
    if (rc == 0) rc = prune(m, sparsity);
    if (rc == 0) rc = measure(m, "pruned", dir, x, batch, steps);
    /* int8: QAT on the pruned model, observers set by training forwards */
    if (rc == 0 && (ics_model_qat_prepare(m, NULL, &err) != ICS_OK ||
                    ics_model_plan(m, batch, 1, &err) != ICS_OK)) {
        fprintf(stderr, "bench_export: %s\n", err.message);
        rc = -1;
    }
    for (int k = 0; k < 2 && rc == 0; k++) {
        const float *logits;
        if (ics_model_forward(m, x, batch, &logits, &err) != ICS_OK) {
            fprintf(stderr, "bench_export: %s\n", err.message);
            rc = -1;
        }
    }
    if (rc == 0) {
        ics_model_qat_set_observers(m, 0);
        ics_model_qat_freeze_bn(m, 1);
        rc = measure(m, "int8", dir, x, batch, steps);
    }
    free(x);
    ics_model_destroy(m);
    return rc == 0 ? 0 : 1;
}
