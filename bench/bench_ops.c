/*
 * bench/bench_ops.c: times the CPU op table on the layer shapes of the
 * models we train (small CNN on Fashion-MNIST, ResNet CIFAR/ImageNet
 * layers, MobileNetV2 depthwise), forward and backward, and prints ms per
 * call and GFLOP/s. With a second argument (a file written by
 * tests/torchref/ops_bench.py: "name fwd_ms bwd_ms" per line) it prints
 * PyTorch's figure beside ours and the ratio.
 *
 * Usage: bench_ops [threads] [torch-times-file]
 */
#include "ics_build_config.h"

#include "backend/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_case {
    const char *name;
    char kind; /* 'c' conv, 'b' batchnorm, 'p' maxpool, 'l' linear */
    int n, h, w, cin, cout, k, s, pad, groups;
} bench_case;

static const bench_case cases[] = {
    {"cnn.conv1 1->32 3x3 28x28 b128", 'c', 128, 28, 28, 1, 32, 3, 1, 1, 1},
    {"cnn.conv2 32->64 3x3 14x14 b128", 'c', 128, 14, 14, 32, 64, 3, 1, 1, 1},
    {"cnn.bn1 32ch 28x28 b128", 'b', 128, 28, 28, 32, 32, 0, 0, 0, 0},
    {"cnn.pool1 2x2 32ch 28x28 b128", 'p', 128, 28, 28, 32, 32, 2, 2, 0, 0},
    {"cnn.fc 3136->10 b128", 'l', 128, 1, 1, 3136, 10, 0, 0, 0, 0},
    {"r18.conv 64->64 3x3 32x32 b128", 'c', 128, 32, 32, 64, 64, 3, 1, 1, 1},
    {"r18.conv 128->128 3x3 16x16 b128", 'c', 128, 16, 16, 128, 128, 3, 1, 1, 1},
    {"r50.conv1 3->64 7x7/2 224 b16", 'c', 16, 224, 224, 3, 64, 7, 2, 3, 1},
    {"r50.1x1 256->64 56x56 b16", 'c', 16, 56, 56, 256, 64, 1, 1, 0, 1},
    {"r50.3x3 64->64 56x56 b16", 'c', 16, 56, 56, 64, 64, 3, 1, 1, 1},
    {"mbv2.dw 3x3 96ch 112x112 b16", 'c', 16, 112, 112, 96, 96, 3, 1, 1, 96},
    {"mbv2.dw 3x3/2 144ch 56x56 b16", 'c', 16, 56, 56, 144, 144, 3, 2, 1, 144},
};

/* CPU time of the whole process (all threads), not wall time: on the
 * shared 2-core development machines other jobs make wall times swing by
 * 2-3x, while the CPU time a kernel burns is stable to ~10%. With one thread
 * it is the wall time an idle machine would show. */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *buffer(size_t n)
{
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, sizeof(float) * (n ? n : 1)) != 0) {
        fprintf(stderr, "bench_ops: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

/* Best of `reps` timings of fn (after one warm-up call), in ms. */
#define TIME_MS(reps, out, call)                          \
    do {                                                  \
        call;                                             \
        double best = 1e30;                               \
        for (int rep_ = 0; rep_ < (reps); rep_++) {       \
            double t0_ = now_s();                         \
            call;                                         \
            double dt_ = now_s() - t0_;                   \
            if (dt_ < best) best = dt_;                   \
        }                                                 \
        (out) = best * 1e3;                               \
    } while (0)

static int torch_times(const char *file, const char *name, double *fwd, double *bwd)
{
    if (!file) return 0;
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        if (strcmp(line, name) == 0 && sscanf(tab + 1, "%lf %lf", fwd, bwd) == 2) {
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    const char *torch_file = argc > 2 ? argv[2] : NULL;
    ics_backend_cpu_set_threads(threads);
    const ics_backend_ops *ops = ics_backend_cpu();
    printf("threads %d\n", ics_backend_cpu_threads());
    printf("%-36s %9s %9s %8s %8s %10s %10s %7s %7s\n", "op (CPU ms)", "fwd ms", "bwd ms", "fwd GF/s",
           "bwd GF/s", "torch fwd", "torch bwd", "x fwd", "x bwd");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bench_case *b = &cases[i];
        double fwd = 0, bwd = 0, flops = 0;
        const int reps = 7;
        if (b->kind == 'c') {
            ics_conv2d_desc d = {.batch = b->n, .in_h = b->h, .in_w = b->w, .in_c = b->cin,
                                 .out_c = b->cout, .kernel_h = b->k, .kernel_w = b->k,
                                 .stride_h = b->s, .stride_w = b->s, .pad_h = b->pad,
                                 .pad_w = b->pad, .groups = b->groups};
            ics_conv2d_desc_finish(&d);
            size_t nx = (size_t)b->n * b->h * b->w * b->cin;
            size_t ny = (size_t)b->n * d.out_h * d.out_w * b->cout;
            size_t nw = (size_t)b->cout * (b->cin / b->groups) * b->k * b->k;
            float *x = buffer(nx), *w = buffer(nw), *bias = buffer(b->cout), *y = buffer(ny);
            float *dy = buffer(ny), *dx = buffer(nx), *dw = buffer(nw), *db = buffer(b->cout);
            size_t wsb = ops->conv2d_workspace_bytes(&d);
            void *ws = buffer(wsb / sizeof(float) + 1);
            flops = 2.0 * (double)ny * (double)(b->cin / b->groups) * b->k * b->k;
            TIME_MS(reps, fwd, ops->conv2d_forward(&d, x, w, bias, y, ws));
            /* The first layer needs no dx: time it as a trainer runs it. */
            float *dxp = b->cin <= 3 ? NULL : dx;
            TIME_MS(reps, bwd, ops->conv2d_backward(&d, x, w, dy, dxp, dw, db, ws));
            if (!dxp) flops /= 2; /* backward is then dW only: as much as forward */
            free(x), free(w), free(bias), free(y), free(dy), free(dx), free(dw), free(db), free(ws);
        } else if (b->kind == 'b') {
            int64_t rows = (int64_t)b->n * b->h * b->w;
            size_t n = (size_t)rows * b->cin;
            float *x = buffer(n), *y = buffer(n), *dy = buffer(n), *dx = buffer(n);
            float *g = buffer(b->cin), *bt = buffer(b->cin), *rm = buffer(b->cin),
                  *rv = buffer(b->cin), *m = buffer(b->cin), *is = buffer(b->cin),
                  *dg = buffer(b->cin), *dbt = buffer(b->cin);
            for (int c = 0; c < b->cin; c++) rv[c] = 1.0f;
            TIME_MS(reps, fwd,
                    ops->batchnorm_forward_train(rows, b->cin, x, g, bt, rm, rv, 0.1f, 1e-5f, y, m, is));
            TIME_MS(reps, bwd, ops->batchnorm_backward(rows, b->cin, x, dy, g, m, is, dx, dg, dbt));
            free(x), free(y), free(dy), free(dx), free(g), free(bt), free(rm), free(rv), free(m);
            free(is), free(dg), free(dbt);
        } else if (b->kind == 'p') {
            ics_pool2d_desc d = {.batch = b->n, .in_h = b->h, .in_w = b->w, .channels = b->cin,
                                 .kernel_h = b->k, .kernel_w = b->k, .stride_h = b->s,
                                 .stride_w = b->s};
            ics_pool2d_desc_finish(&d);
            size_t nx = (size_t)b->n * b->h * b->w * b->cin, ny = (size_t)b->n * d.out_h * d.out_w * b->cin;
            float *x = buffer(nx), *y = buffer(ny), *dy = buffer(ny), *dx = buffer(nx);
            int32_t *idx = malloc(sizeof(int32_t) * ny);
            TIME_MS(reps, fwd, ops->maxpool2d_forward(&d, x, y, idx));
            TIME_MS(reps, bwd, ops->maxpool2d_backward(&d, dy, idx, dx));
            free(x), free(y), free(dy), free(dx), free(idx);
        } else {
            float *x = buffer((size_t)b->n * b->cin), *w = buffer((size_t)b->cin * b->cout);
            float *bias = buffer(b->cout), *y = buffer((size_t)b->n * b->cout);
            float *dx = buffer((size_t)b->n * b->cin), *dw = buffer((size_t)b->cin * b->cout);
            float *db = buffer(b->cout);
            flops = 2.0 * b->n * b->cin * b->cout;
            TIME_MS(reps, fwd, ops->linear_forward(b->n, b->cin, b->cout, x, w, bias, y));
            TIME_MS(reps, bwd, ops->linear_backward(b->n, b->cin, b->cout, x, w, y, dx, dw, db));
            free(x), free(w), free(bias), free(y), free(dx), free(dw), free(db);
        }
        double tf = 0, tb = 0;
        int have = torch_times(torch_file, b->name, &tf, &tb);
        printf("%-36s %9.3f %9.3f %8.1f %8.1f", b->name, fwd, bwd, flops ? flops / fwd * 1e-6 : 0.0,
               flops ? 2 * flops / bwd * 1e-6 : 0.0);
        if (have)
            printf(" %10.3f %10.3f %7.2f %7.2f\n", tf, tb, tf / fwd, tb / bwd);
        else
            printf(" %10s %10s %7s %7s\n", "-", "-", "-", "-");
    }
    return 0;
}
