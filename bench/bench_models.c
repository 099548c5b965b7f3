/*
 * bench/bench_models.c: images/s of a whole model in icsparse, training
 * (forward + softmax cross-entropy + backward + SGD momentum update) or
 * inference (eval-mode forward), and the process's peak RSS. One workload
 * per run, so the RSS is that workload's; bench/run-engine-bench runs the
 * set beside PyTorch (bench/torch_models.py) and prints the ratios.
 *
 * usage: bench_models ARCH train|infer BATCH H W CHANNELS CLASSES CIFAR_STEM
 *                     STEPS THREADS
 * prints: icsparse ARCH MODE BATCH IMAGES_PER_S PEAK_RSS_MIB
 */
#include "ics_build_config.h"

#include <icsparse/model.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
        fprintf(stderr, "usage: %s ARCH train|infer BATCH H W CHANNELS CLASSES CIFAR_STEM STEPS "
                        "THREADS\n", argv[0]);
        return 2;
    }
    const char *arch = argv[1];
    int train = strcmp(argv[2], "train") == 0;
    int batch = atoi(argv[3]);
    ics_model_options o;
    ics_model_options_default(&o);
    o.in_h = atoi(argv[4]);
    o.in_w = atoi(argv[5]);
    o.in_channels = atoi(argv[6]);
    o.num_classes = atoi(argv[7]);
    o.cifar_stem = atoi(argv[8]);
    int steps = atoi(argv[9]);
    ics_backend_cpu_set_threads(atoi(argv[10]));
    const ics_backend_ops *ops = ics_backend_cpu();

    ics_error err;
    ics_model *m = NULL;
    if (ics_model_create(arch, &o, &m, &err) != ICS_OK ||
        ics_model_plan(m, batch, train, &err) != ICS_OK) {
        fprintf(stderr, "bench_models: %s\n", err.message);
        ics_model_destroy(m);
        return 1;
    }
    ics_model_init_params(m, 1);
    size_t in_count = (size_t)batch * o.in_h * o.in_w * o.in_channels;
    float *x = malloc(in_count * sizeof *x);
    int32_t *labels = malloc((size_t)batch * sizeof *labels);
    float *probs = malloc((size_t)batch * o.num_classes * sizeof *probs);
    float *dlogits = malloc((size_t)batch * o.num_classes * sizeof *dlogits);
    size_t np = 0;
    float *params = ics_model_params(m, &np);
    float *grads = ics_model_grads(m, NULL);
    float *velocity = calloc(np, sizeof *velocity);
    if (!x || !labels || !probs || !dlogits || !velocity) {
        fprintf(stderr, "bench_models: out of memory\n");
        return 1;
    }
    uint64_t s = 1;
    for (size_t i = 0; i < in_count; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
    for (int i = 0; i < batch; i++) labels[i] = i % o.num_classes;

    /* One warm-up step (page faults in the arena, BLAS buffers), then
     * `steps` timed ones. */
    double start = 0;
    for (int step = 0; step <= steps; step++) {
        if (step == 1) start = now_s();
        const float *logits;
        if (ics_model_forward(m, x, batch, &logits, &err) != ICS_OK) {
            fprintf(stderr, "bench_models: %s\n", err.message);
            return 1;
        }
        if (!train) continue;
        ops->softmax_xent_forward(batch, o.num_classes, logits, labels, 0.0f, probs);
        ops->softmax_xent_backward(batch, o.num_classes, probs, labels, 0.0f, 1.0f, dlogits);
        ics_model_zero_grad(m);
        if (ics_model_backward(m, dlogits, &err) != ICS_OK) {
            fprintf(stderr, "bench_models: %s\n", err.message);
            return 1;
        }
        /* SGD with momentum 0.9 and weight decay 5e-4 (torch.optim.SGD's
         * order: g += wd*w; v = mu*v + g; w -= lr*v), inline until the
         * trainer's optimizer is used here. */
        for (size_t i = 0; i < np; i++) {
            float g = grads[i] + 5e-4f * params[i];
            velocity[i] = 0.9f * velocity[i] + g;
            params[i] -= 0.01f * velocity[i];
        }
    }
    double elapsed = now_s() - start;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("icsparse %s %s %d %.1f %.0f\n", arch, train ? "train" : "infer", batch,
           steps * batch / elapsed, (double)ru.ru_maxrss / 1024.0);
    free(x);
    free(labels);
    free(probs);
    free(dlogits);
    free(velocity);
    ics_model_destroy(m);
    return 0;
}
