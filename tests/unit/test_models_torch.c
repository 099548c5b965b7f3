/*
 * Whole-model cross-checks against PyTorch (tests/torchref/models_ref.py,
 * which re-declares torchvision's architectures since torchvision is not
 * installed):
 *  (a) state_dict keys, order and shapes for every arch and several option
 *      sets;
 *  (b) with identical weights (written here as .npy, loaded by torch),
 *      logits in eval and train mode, every parameter gradient and the
 *      updated BN running statistics after a train-mode step.
 * All cases are prepared first and torch runs once (its import costs
 * seconds); each CUnit test then compares one case.
 */
#include "ics_build_config.h"
#include "test_util.h"

#include <icsparse/model.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct names_case {
    const char *id, *arch;
    int classes, in_c, h, w, cifar;
    float width;
} names_case;

static const names_case names_cases[] = {
    {"resnet18", "resnet18", 1000, 3, 224, 224, 0, 1.0f},
    {"resnet34", "resnet34", 1000, 3, 224, 224, 0, 1.0f},
    {"resnet50", "resnet50", 1000, 3, 224, 224, 0, 1.0f},
    {"resnet101", "resnet101", 1000, 3, 224, 224, 0, 1.0f},
    {"resnet18_cifar_1ch", "resnet18", 10, 1, 32, 32, 1, 1.0f},
    {"resnet50_cifar", "resnet50", 100, 3, 32, 32, 1, 1.0f},
    {"mobilenet_v2", "mobilenet_v2", 1000, 3, 224, 224, 0, 1.0f},
    {"mobilenet_v2_w035", "mobilenet_v2", 10, 3, 224, 224, 0, 0.35f},
    {"mobilenet_v2_w075", "mobilenet_v2", 10, 3, 224, 224, 0, 0.75f},
    {"mobilenet_v2_w14", "mobilenet_v2", 10, 3, 224, 224, 0, 1.4f},
    {"vgg11_bn", "vgg11_bn", 1000, 3, 224, 224, 0, 1.0f},
    {"vgg16_bn", "vgg16_bn", 10, 3, 224, 224, 0, 1.0f},
    {"simple_cnn", "simple_cnn", 10, 1, 28, 28, 0, 1.0f},
    {"simple_cnn_rgb_32", "simple_cnn", 7, 3, 32, 32, 0, 1.0f},
    {NULL, NULL, 0, 0, 0, 0, 0, 0.0f}};

typedef struct run_case {
    const char *id, *arch;
    int classes, in_c, h, w, cifar;
    float width;
    int train, batch;
    /* tolerance as a fraction of the largest reference magnitude per tensor */
    double tol;
    /* relative L2 error accepted for gradients when the max error is not
     * within tol (ill-conditioned cases only; see compare_npy) */
    double l2_tol;
    ics_model *model;   /* kept until compared */
    float *logits;      /* copy of the C logits */
} run_case;

/* Tolerances, as a fraction of each tensor's largest reference magnitude
 * (float32 eps = 6e-8; the reference is float64 torch). Eval mode is a
 * chain of convolutions and fixed affine maps where only the summation
 * order differs: logits agree to ~5e-7 (measured), tolerance 1e-5. Train
 * mode divides by batch standard deviations: simple_cnn and resnet18
 * gradients agree to 1e-6..1.5e-5 (measured), tolerance 1e-4. resnet50 and
 * mobilenet_v2 in train mode at these small shapes (BN over 32 or 16 rows,
 * ReLU masks flipping near zero) drift in any float32 engine: torch's own
 * float32 gradients are up to 20% (resnet50) and 6% (mobilenet_v2) off in
 * single elements; their gradients are held to 1e-3 max error, or 5%
 * relative L2, or "no worse than torch float32" (see compare_npy); their
 * logits and running statistics to 1e-3. Measured icsparse: resnet50 L2
 * <= 0.5% where torch float32 reaches 1.8%. */
static run_case run_cases[] = {
    {"simple_cnn_train", "simple_cnn", 10, 1, 28, 28, 0, 1.0f, 1, 4, 1e-4, 0, NULL, NULL},
    {"simple_cnn_eval", "simple_cnn", 10, 1, 28, 28, 0, 1.0f, 0, 3, 1e-5, 0, NULL, NULL},
    {"resnet18_cifar_train", "resnet18", 10, 3, 32, 32, 1, 1.0f, 1, 2, 1e-4, 0, NULL, NULL},
    {"resnet18_cifar_eval", "resnet18", 10, 3, 32, 32, 1, 1.0f, 0, 2, 1e-5, 0, NULL, NULL},
    {"resnet18_stem_train", "resnet18", 5, 3, 64, 48, 0, 1.0f, 1, 2, 1e-4, 0, NULL, NULL},
    {"resnet50_cifar_train", "resnet50", 10, 3, 32, 32, 1, 1.0f, 1, 2, 1e-3, 5e-2, NULL, NULL},
    {"resnet50_cifar_eval", "resnet50", 10, 3, 16, 16, 1, 1.0f, 0, 2, 1e-5, 0, NULL, NULL},
    {"mobilenet_v2_train", "mobilenet_v2", 10, 3, 64, 64, 0, 1.0f, 1, 4, 1e-3, 5e-2, NULL, NULL},
    {"mobilenet_v2_eval", "mobilenet_v2", 10, 3, 64, 64, 0, 0.5f, 0, 2, 1e-5, 0, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, 0, 0.0f, 0, 0, 0, 0, NULL, NULL}};

static char *root;
static int torch_ok;

static void write_tensor(const char *dir, ics_model *m, int i)
{
    const ics_tensor_info *t = ics_model_tensor(m, i);
    int64_t shape[4] = {t->numel};
    if (t->kind == ICS_TENSOR_COUNTER) {
        float v = (float)*ics_model_tensor_counter(m, i);
        ics_test_npy_write_f32(dir, t->name, &v, shape, 1);
    } else {
        ics_test_npy_write_f32(dir, t->name, ics_model_tensor_data(m, i), shape, 1);
    }
}

/* Gives BN non-trivial parameters and running statistics so that every
 * term of its forward and backward is exercised (init's gamma = 1, beta =
 * 0, mean 0, var 1 would hide a swapped gamma/beta). */
static void perturb_bn(ics_model *m, uint64_t *state)
{
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *t = ics_model_tensor(m, i);
        float *d = ics_model_tensor_data(m, i);
        if (t->kind == ICS_TENSOR_BN_WEIGHT) ics_test_fill_uniform(d, (size_t)t->numel, 0.5f, 1.5f, state);
        if (t->kind == ICS_TENSOR_BN_BIAS) ics_test_fill_uniform(d, (size_t)t->numel, -0.2f, 0.2f, state);
        if (t->kind == ICS_TENSOR_BIAS) ics_test_fill_uniform(d, (size_t)t->numel, -0.1f, 0.1f, state);
        if (t->kind == ICS_TENSOR_BUFFER) {
            if (strstr(t->name, "running_var"))
                ics_test_fill_uniform(d, (size_t)t->numel, 0.5f, 1.5f, state);
            else
                ics_test_fill_uniform(d, (size_t)t->numel, -0.1f, 0.1f, state);
        }
        if (t->kind == ICS_TENSOR_COUNTER) *ics_model_tensor_counter(m, i) = 7;
    }
}

/* Builds the model of one run case, writes its weights and inputs, and
 * runs the C side (forward, and backward in train mode). */
static int prepare_run(run_case *c, FILE *cases)
{
    ics_error err;
    ics_model_options o;
    ics_model_options_default(&o);
    o.num_classes = c->classes;
    o.in_channels = c->in_c;
    o.in_h = c->h;
    o.in_w = c->w;
    o.cifar_stem = c->cifar;
    o.width_mult = c->width;
    if (ics_model_create(c->arch, &o, &c->model, &err) != ICS_OK) {
        fprintf(stderr, "%s: %s\n", c->id, err.message);
        return -1;
    }
    ics_model *m = c->model;
    ics_model_init_params(m, 42);
    uint64_t state = 1234;
    perturb_bn(m, &state);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, c->id);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) return -1;
    for (int i = 0; i < ics_model_num_tensors(m); i++) write_tensor(dir, m, i);
    size_t in_count = (size_t)c->batch * c->h * c->w * c->in_c;
    float *x = malloc(in_count * sizeof *x);
    float *dy = malloc((size_t)c->batch * c->classes * sizeof *dy);
    ics_test_fill_uniform(x, in_count, -1.0f, 1.0f, &state);
    ics_test_fill_uniform(dy, (size_t)c->batch * c->classes, -1.0f, 1.0f, &state);
    int64_t xs[4] = {c->batch, c->h, c->w, c->in_c}, ds[2] = {c->batch, c->classes};
    ics_test_npy_write_f32(dir, "x", x, xs, 4);
    ics_test_npy_write_f32(dir, "dy", dy, ds, 2);
    const float *logits = NULL;
    int rc = -1;
    if (ics_model_plan(m, c->batch, c->train, &err) != ICS_OK ||
        ics_model_forward(m, x, c->batch, &logits, &err) != ICS_OK) {
        fprintf(stderr, "%s: %s\n", c->id, err.message);
        goto out;
    }
    c->logits = malloc((size_t)c->batch * c->classes * sizeof(float));
    memcpy(c->logits, logits, (size_t)c->batch * c->classes * sizeof(float));
    /* The keep masks, read now: the plan lets later buffers reuse their
     * bytes once dropout's backward has run. */
    for (int i = 0; i < ics_model_num_nodes(m); i++) {
        const ics_node *n = ics_model_node(m, i);
        if (n->kind != ICS_OP_DROPOUT || !c->train) continue;
        const uint8_t *mask = ics_model_dropout_mask(m, i);
        size_t count = (size_t)c->batch * n->out_h * n->out_w * n->out_c;
        float *mf = malloc(count * sizeof *mf);
        for (size_t k = 0; k < count; k++) mf[k] = mask[k];
        char name[256];
        snprintf(name, sizeof name, "mask_%s", n->name);
        int64_t ms[1] = {(int64_t)count};
        ics_test_npy_write_f32(dir, name, mf, ms, 1);
        free(mf);
    }
    if (c->train) {
        ics_model_zero_grad(m);
        if (ics_model_backward(m, dy, &err) != ICS_OK) {
            fprintf(stderr, "%s: %s\n", c->id, err.message);
            goto out;
        }
    }
    fprintf(cases, "run %s %s %d %d %d %d %d %g %s %d\n", c->id, c->arch, c->classes, c->in_c,
            c->h, c->w, c->cifar, (double)c->width, c->train ? "train" : "eval", c->batch);
    rc = 0;
out:
    free(x);
    free(dy);
    return rc;
}

/* Largest |v| of a reference tensor (the scale tolerances refer to). */
static double max_abs(const float *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(v[i]) > m) m = fabs(v[i]);
    return m;
}

/* Largest |v| of reference DIR/name.npy, 0 if absent. */
static double ref_scale(const char *dir, const char *name)
{
    int64_t shape[8];
    int nd = 0;
    float *want = ics_test_npy_read_f32(dir, name, shape, &nd);
    if (!want) return 0;
    size_t count = 1;
    for (int i = 0; i < nd; i++) count *= (size_t)shape[i];
    double s = max_abs(want, count);
    free(want);
    return s;
}

/* Max |a - b| over n elements. */
static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* ||a - b||_2 / ||b||_2 (0 when both are zero). */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (isnan(num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Judges got against the float64 reference DIR/name.npy. It passes when
 * the largest elementwise error, max |got - ref| / scale with scale =
 * max(max |ref|, floor), is within `tol`; or, failing that, when the
 * relative L2 error is within `tol`, within `l2_tol`, or within YARDSTICK
 * times torch's own float32 L2 error on the same tensor
 * (DIR/t32_name.npy). Why the second way: a network that amplifies
 * rounding (train-mode BN over few rows, where a channel whose mean dwarfs
 * its spread loses digits in x - mean and ReLU masks flip for values within
 * rounding of zero) makes any float32 engine, torch included, drift from
 * the exact answer in a few elements, and which elements flip is chance
 * (it changed between two builds of the op table and between thread
 * counts). Measured on resnet50/mobilenet_v2 train: icsparse L2 up to
 * 1.7%, torch float32 up to 1.8%; l2_tol = 5% there. A real bug (a wrong
 * index, a missing term, a wrong fan-out sum) moves the whole tensor, O(1)
 * in L2, and the same layers are held to 1e-4 in the well-conditioned
 * simple_cnn and resnet18 cases. */
#define YARDSTICK 4.0
static int compare_npy(const char *dir, const char *name, const float *got, size_t n, double tol,
                       double l2_tol, double floor, const char *label)
{
    int64_t shape[8];
    int nd = 0;
    float *want = ics_test_npy_read_f32(dir, name, shape, &nd);
    char t32name[300];
    snprintf(t32name, sizeof t32name, "t32_%s", name);
    float *t32 = ics_test_npy_read_f32(dir, t32name, NULL, NULL);
    if (!want || !t32) {
        free(want);
        free(t32);
        return 0;
    }
    size_t count = 1;
    for (int i = 0; i < nd; i++) count *= (size_t)shape[i];
    int ok = count == n;
    if (!ok) fprintf(stderr, "%s: %zu elements, reference has %zu\n", label, n, count);
    double scale = max_abs(want, count);
    if (scale < floor) scale = floor;
    if (scale == 0) scale = 1;
    if (ok) {
        double e_ours = max_diff(got, want, n) / scale;
        double e_torch = max_diff(t32, want, n) / scale;
        double l2_ours = rel_l2(got, want, n), l2_torch = rel_l2(t32, want, n);
        ok = e_ours <= tol || l2_ours <= tol || l2_ours <= l2_tol ||
             l2_ours <= YARDSTICK * l2_torch;
        if (!ok || getenv("ICS_TEST_VERBOSE"))
            fprintf(stderr,
                    "%s: max error %.3g of scale %.3g, L2 %.3g (torch float32: %.3g, L2 %.3g; "
                    "tolerance %.3g)\n",
                    label, e_ours, scale, l2_ours, e_torch, l2_torch, tol);
    }
    free(want);
    free(t32);
    return ok;
}

static void check_run(run_case *c)
{
    CU_ASSERT_FATAL(torch_ok); /* the reference must have run */
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->logits);
    char dir[4096], label[512];
    snprintf(dir, sizeof dir, "%s/%s", root, c->id);
    ics_model *m = c->model;
    snprintf(label, sizeof label, "%s logits", c->id);
    CU_ASSERT(compare_npy(dir, "logits", c->logits, (size_t)c->batch * c->classes, c->tol, 0, 0, label));
    if (!c->train) return;
    int checked = 0, bad = 0;
    for (int i = 0; i < ics_model_num_tensors(m); i++) {
        const ics_tensor_info *t = ics_model_tensor(m, i);
        char name[256];
        if (t->kind == ICS_TENSOR_COUNTER) {
            /* one training forward counted one batch on top of the 7 set */
            if (*ics_model_tensor_counter(m, i) != 8) bad++;
            continue;
        }
        const float *v = t->kind == ICS_TENSOR_BUFFER ? ics_model_tensor_data(m, i)
                                                      : ics_model_tensor_grad(m, i);
        snprintf(name, sizeof name, "%s_%s", t->kind == ICS_TENSOR_BUFFER ? "buf" : "grad", t->name);
        snprintf(label, sizeof label, "%s %s", c->id, name);
        /* A gradient that is zero in exact arithmetic (a BN beta whose
         * output feeds a 1x1 conv and another train-mode BN: the mean
         * subtraction cancels it) is pure rounding noise on both sides;
         * measure it against the largest gradient of the same layer. */
        double floor = 0;
        const ics_node *node = ics_model_node(m, t->node);
        for (int s = node->first_tensor; t->kind != ICS_TENSOR_BUFFER &&
                                         s < node->first_tensor + node->num_tensors; s++) {
            const ics_tensor_info *sib = ics_model_tensor(m, s);
            if (sib->kind == ICS_TENSOR_BUFFER || sib->kind == ICS_TENSOR_COUNTER) continue;
            char sname[256];
            snprintf(sname, sizeof sname, "grad_%s", sib->name);
            double sc = ref_scale(dir, sname);
            if (sc > floor) floor = sc;
        }
        if (!compare_npy(dir, name, v, (size_t)t->numel, c->tol,
                         t->kind == ICS_TENSOR_BUFFER ? 0 : c->l2_tol, floor, label))
            bad++;
        checked++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(checked > 0);
}

#define RUN_TEST(i) \
    static void test_run_##i(void) { check_run(&run_cases[i]); }
RUN_TEST(0)
RUN_TEST(1)
RUN_TEST(2)
RUN_TEST(3)
RUN_TEST(4)
RUN_TEST(5)
RUN_TEST(6)
RUN_TEST(7)
RUN_TEST(8)

/* (a) every names case: same keys, same order, same shapes. */
static void test_names(void)
{
    CU_ASSERT_FATAL(torch_ok); /* the reference must have run */
    for (int c = 0; names_cases[c].id; c++) {
        const names_case *nc = &names_cases[c];
        ics_model_options o;
        ics_model_options_default(&o);
        o.num_classes = nc->classes;
        o.in_channels = nc->in_c;
        o.in_h = nc->h;
        o.in_w = nc->w;
        o.cifar_stem = nc->cifar;
        o.width_mult = nc->width;
        ics_model *m = NULL;
        ics_error err;
        CU_ASSERT_EQUAL_FATAL(ics_model_create(nc->arch, &o, &m, &err), ICS_OK);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.names", root, nc->id);
        char *text = ics_test_read_file(path, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        int i = 0, mismatches = 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), i++) {
            const ics_tensor_info *t = ics_model_tensor(m, i);
            char mine[512];
            int len = snprintf(mine, sizeof mine, "%s ", t ? t->name : "(missing)");
            for (int d = 0; t && d < t->ndim; d++)
                len += snprintf(mine + len, sizeof mine - (size_t)len, "%s%lld", d ? "," : "",
                                (long long)t->shape[d]);
            if (strcmp(mine, line) != 0 && mismatches++ < 3)
                fprintf(stderr, "%s entry %d: icsparse '%s', torch '%s'\n", nc->id, i, mine, line);
        }
        CU_ASSERT_EQUAL(mismatches, 0);
        CU_ASSERT_EQUAL(i, ics_model_num_tensors(m));
        free(text);
        ics_model_destroy(m);
    }
}

int main(void)
{
    if (!ics_test_have_torch()) {
        fprintf(stderr, "test_models_torch: SKIP: $PYTHON_TORCH cannot import torch\n");
        return 77;
    }
    root = ics_test_tmpdir("models");
    char path[4096];
    snprintf(path, sizeof path, "%s/cases.txt", root);
    FILE *cases = fopen(path, "w");
    if (!cases) return 1;
    for (int c = 0; names_cases[c].id; c++) {
        const names_case *nc = &names_cases[c];
        fprintf(cases, "names %s %s %d %d %d %d %d %g\n", nc->id, nc->arch, nc->classes, nc->in_c,
                nc->h, nc->w, nc->cifar, (double)nc->width);
    }
    int prepared = 1;
    for (int c = 0; run_cases[c].id; c++)
        if (prepare_run(&run_cases[c], cases) != 0) prepared = 0;
    fclose(cases);
    torch_ok = ics_test_run_torch("tests/torchref/models_ref.py", root) == 0;

    static const ics_test_case names[] = {{"state_dict keys, order, shapes", test_names},
                                          {NULL, NULL}};
    static const ics_test_case runs[] = {
        {"simple_cnn train: logits, grads, running stats", test_run_0},
        {"simple_cnn eval logits", test_run_1},
        {"resnet18 cifar train", test_run_2},
        {"resnet18 cifar eval", test_run_3},
        {"resnet18 imagenet stem 64x48 train", test_run_4},
        {"resnet50 cifar train", test_run_5},
        {"resnet50 cifar eval", test_run_6},
        {"mobilenet_v2 train with dropout mask", test_run_7},
        {"mobilenet_v2 width 0.5 eval", test_run_8},
        {NULL, NULL}};
    ics_test_add_suite("torch names", names);
    ics_test_add_suite("torch numerics", runs);
    int rc = ics_test_main("test_models_torch");
    if (!torch_ok || !prepared) rc = 1;
    for (int c = 0; run_cases[c].id; c++) {
        ics_model_destroy(run_cases[c].model);
        free(run_cases[c].logits);
    }
    if (rc == 0) ics_test_rmtree(root);
    free(root);
    return rc;
}
