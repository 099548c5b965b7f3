/*
 * bench/bench_export.c: how long icsparse takes to export a model to ONNX
 * (BN folded; graph walk, folding, protobuf-c packing and the atomic
 * write), and icsparse's own eval-mode forward throughput on the same
 * model, for comparison with onnxruntime running the exported file
 * (bench/bench_export_ort.py; bench/run-export-bench prints both).
 *
 * usage: bench_export ARCH BATCH H W CHANNELS CLASSES CIFAR_STEM STEPS THREADS OUT.onnx
 * prints: icsparse ARCH BATCH EXPORT_MS ONNX_MB IMAGES_PER_S
 */
#include "ics_build_config.h"

#include <icsparse/export.h>
#include <icsparse/model.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "backend/backend.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 11) {
        fprintf(stderr,
                "usage: %s ARCH BATCH H W CHANNELS CLASSES CIFAR_STEM STEPS THREADS OUT.onnx\n",
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
    const char *out = argv[10];

    ics_error err;
    ics_model *m = NULL;
    if (ics_model_create(arch, &o, &m, &err) != ICS_OK ||
        ics_model_plan(m, batch, 0, &err) != ICS_OK) {
        fprintf(stderr, "bench_export: %s\n", err.message);
        ics_model_destroy(m);
        return 1;
    }
    ics_model_init_params(m, 1);

    /* Export three times (replacing the file), keep the fastest. */
    ics_export_options eo;
    ics_export_options_default(&eo);
    eo.force = 1;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        if (ics_export_onnx(m, &eo, out, &err) != ICS_OK) {
            fprintf(stderr, "bench_export: %s\n", err.message);
            return 1;
        }
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    struct stat sb;
    double mb = stat(out, &sb) == 0 ? (double)sb.st_size / 1e6 : 0.0;

    size_t in_count = (size_t)batch * o.in_h * o.in_w * o.in_channels;
    float *x = malloc(in_count * sizeof *x);
    if (!x) return 1;
    uint64_t s = 1;
    for (size_t i = 0; i < in_count; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
    /* One warm-up forward, then `steps` timed ones. */
    double start = 0;
    for (int step = 0; step <= steps; step++) {
        if (step == 1) start = now_s();
        const float *logits;
        if (ics_model_forward(m, x, batch, &logits, &err) != ICS_OK) {
            fprintf(stderr, "bench_export: %s\n", err.message);
            return 1;
        }
    }
    double elapsed = now_s() - start;
    printf("icsparse %s %d %.1f %.1f %.1f\n", arch, batch, best * 1e3, mb, steps * batch / elapsed);
    free(x);
    ics_model_destroy(m);
    return 0;
}
