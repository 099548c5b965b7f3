/*
 * Optimizer, schedule and EMA built from the configuration (optim.*,
 * sched.*, ema.* in src/config/schema_optim.c): defaults, job-file values,
 * and the errors that involve several keys or the run.
 */
#include "ics_build_config.h"
#include "test_util.h"
#include "train/optim_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static ics_config *config_with(const char *text)
{
    ics_config *cfg = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_config_create(&cfg, &err), ICS_OK);
    if (text && ics_config_load_string(cfg, text, "job.cfg", ICS_ORIGIN_JOB, &err) != ICS_OK) {
        printf("\n%s\n", err.message);
        CU_FAIL("config text refused");
    }
    return cfg;
}

static float data[3][8], grad[3][8];
static ics_param_view views[3];

static void reset_views(void)
{
    views[0] = (ics_param_view){"conv.weight", data[0], grad[0], 8, 4, 0};
    views[1] = (ics_param_view){"bn.weight", data[1], grad[1], 4, 1, 0};
    views[2] = (ics_param_view){"fc.bias", data[2], grad[2], 2, 1, 0};
}

static void test_schema_section_present(void)
{
    static const char *const keys[] = {"optim.name", "optim.lr", "optim.momentum", "optim.dampening", "optim.nesterov",
                                       "optim.weight_decay", "optim.no_decay_bn_bias", "optim.beta1", "optim.beta2",
                                       "optim.eps", "optim.clip_grad_norm", "sched.name", "sched.interval",
                                       "sched.warmup_epochs", "sched.warmup_method", "sched.warmup_start_factor",
                                       "sched.step_size", "sched.gamma", "sched.milestones", "sched.min_lr",
                                       "sched.t_max", "ema.enabled", "ema.decay", "ema.every_steps",
                                       "ema.warmup_epochs", "ema.mode", "ema.buffers"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const ics_config_key *k = ics_config_find_key(keys[i]);
        CU_ASSERT_PTR_NOT_NULL(k);
        if (!k) printf("\n  missing key %s\n", keys[i]);
    }
    ics_config *cfg = config_with(NULL);
    CU_ASSERT_STRING_EQUAL(ics_config_string(cfg, "optim.name"), "sgd");
    CU_ASSERT_DOUBLE_EQUAL(ics_config_float(cfg, "ema.decay"), 0.99998, 0);
    const double *m = NULL;
    CU_ASSERT_EQUAL(ics_config_float_list(cfg, "sched.milestones", &m), 0);
    ics_config_destroy(cfg);
}

static void test_defaults_build_sgd_and_constant(void)
{
    ics_config *cfg = config_with(NULL);
    ics_error err;
    reset_views();
    ics_optim *opt = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_optim_create_from_config(&opt, cfg, views, 3, &err), ICS_OK);
    const ics_optim_hparams *hp = ics_optim_get_hparams(opt);
    CU_ASSERT_EQUAL(hp->kind, ICS_OPTIM_SGD);
    CU_ASSERT_DOUBLE_EQUAL(hp->lr, 0.1, 0);
    CU_ASSERT_DOUBLE_EQUAL(hp->momentum, 0.9, 0);
    CU_ASSERT_EQUAL(hp->nesterov, 0);
    /* no_decay_bn_bias defaults to false: every view decays */
    CU_ASSERT_EQUAL(views[1].group, 0);
    CU_ASSERT_DOUBLE_EQUAL(ics_optim_group_get(opt, 0)->weight_decay, 1e-4, 0);
    CU_ASSERT_EQUAL(ics_optim_slot_find(opt, "momentum_buffer"), 0);
    ics_optim_destroy(opt);

    ics_lr_schedule s;
    CU_ASSERT_EQUAL(ics_lr_schedule_from_config(&s, cfg, 5, &err), ICS_OK);
    CU_ASSERT_EQUAL(s.kind, ICS_SCHED_CONSTANT);
    CU_ASSERT_DOUBLE_EQUAL(ics_lr_schedule_at(&s, 3.5), 0.1, 0);

    ics_ema_config ema;
    int enabled = -1;
    CU_ASSERT_EQUAL(ics_ema_config_from_config(&ema, &enabled, cfg, 2, 5, &err), ICS_OK);
    CU_ASSERT_EQUAL(enabled, 0);
    CU_ASSERT_EQUAL(ema.mode, ICS_EMA_TORCHVISION);
    CU_ASSERT_EQUAL(ema.every_steps, 32);
    CU_ASSERT_EQUAL(ema.batch_size, 128); /* train.batch_size x grad_accum_steps */
    CU_ASSERT_EQUAL(ema.world_size, 2);
    CU_ASSERT_EQUAL(ema.warmup_epochs, 0);
    CU_ASSERT_EQUAL(ema.buffers_averaged, 0);
    ics_config_destroy(cfg);
}

static void test_job_file_values(void)
{
    ics_config *cfg = config_with("optim = { name = \"adamw\"; lr = 0.002; beta1 = 0.8; beta2 = 0.99; eps = 1e-6;\n"
                                  "  weight_decay = 0.05; no_decay_bn_bias = true; };\n"
                                  "sched = { name = \"cosine\"; warmup_epochs = 2.0; warmup_start_factor = 0.1;\n"
                                  "  min_lr = 1e-5; interval = \"step\"; };\n"
                                  "ema = { enabled = true; mode = \"warmup\"; decay = 0.999; every_steps = 4;\n"
                                  "  buffers = \"average\"; };\n"
                                  "train = { batch_size = 16; grad_accum_steps = 2; };\n");
    ics_error err;
    reset_views();
    ics_optim *opt = NULL;
    CU_ASSERT_EQUAL_FATAL(ics_optim_create_from_config(&opt, cfg, views, 3, &err), ICS_OK);
    const ics_optim_hparams *hp = ics_optim_get_hparams(opt);
    CU_ASSERT_EQUAL(hp->kind, ICS_OPTIM_ADAMW);
    CU_ASSERT_DOUBLE_EQUAL(hp->lr, 0.002, 0);
    CU_ASSERT_DOUBLE_EQUAL(hp->beta1, 0.8, 0);
    CU_ASSERT_DOUBLE_EQUAL(hp->beta2, 0.99, 0);
    CU_ASSERT_DOUBLE_EQUAL(hp->eps, 1e-6, 0);
    CU_ASSERT_EQUAL(views[0].group, 0);
    CU_ASSERT_EQUAL(views[1].group, 1);
    CU_ASSERT_EQUAL(views[2].group, 1);
    CU_ASSERT_DOUBLE_EQUAL(ics_optim_group_get(opt, 0)->weight_decay, 0.05, 0);
    CU_ASSERT_DOUBLE_EQUAL(ics_optim_group_get(opt, 1)->weight_decay, 0.0, 0);
    CU_ASSERT_EQUAL(ics_optim_slot_count(opt), 2);
    ics_optim_destroy(opt);

    /* cosine, T_max = 12 - 2 = 10 (torchvision), per-step interval */
    ics_lr_schedule s;
    CU_ASSERT_EQUAL_FATAL(ics_lr_schedule_from_config(&s, cfg, 12, &err), ICS_OK);
    CU_ASSERT_EQUAL(s.kind, ICS_SCHED_COSINE);
    CU_ASSERT_EQUAL(s.interval, ICS_SCHED_PER_STEP);
    CU_ASSERT_DOUBLE_EQUAL(s.t_max, 10, 0);
    CU_ASSERT_DOUBLE_EQUAL(ics_lr_schedule_at(&s, 0), 0.002 * 0.1, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ics_lr_schedule_at(&s, 1), 0.002 * 0.55, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ics_lr_schedule_at(&s, 7), 1e-5 + (0.002 - 1e-5) * 0.5, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ics_lr_schedule_at(&s, 12), 1e-5, 1e-15);

    ics_ema_config ema;
    int enabled = 0;
    CU_ASSERT_EQUAL(ics_ema_config_from_config(&ema, &enabled, cfg, 4, 12, &err), ICS_OK);
    CU_ASSERT_EQUAL(enabled, 1);
    CU_ASSERT_EQUAL(ema.mode, ICS_EMA_WARMUP);
    CU_ASSERT_EQUAL(ema.every_steps, 4);
    CU_ASSERT_EQUAL(ema.batch_size, 32);
    CU_ASSERT_DOUBLE_EQUAL(ema.warmup_epochs, 2.0, 0); /* -1: sched.warmup_epochs */
    CU_ASSERT_EQUAL(ema.buffers_averaged, 1);
    ics_config_destroy(cfg);

    cfg = config_with("sched = { name = \"multistep\"; milestones = [30, 60, 80]; gamma = 0.2; };\n"
                      "optim = { name = \"sgd\"; nesterov = true; };\n");
    CU_ASSERT_EQUAL_FATAL(ics_lr_schedule_from_config(&s, cfg, 90, &err), ICS_OK);
    CU_ASSERT_EQUAL(s.n_milestones, 3);
    CU_ASSERT_DOUBLE_EQUAL(ics_lr_schedule_at(&s, 65), 0.1 * 0.2 * 0.2, 1e-15);
    reset_views();
    CU_ASSERT_EQUAL(ics_optim_create_from_config(&opt, cfg, views, 3, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_optim_get_hparams(opt)->nesterov, 1);
    ics_optim_destroy(opt);
    ics_config_destroy(cfg);
}

static void test_errors_name_keys(void)
{
    ics_error err;
    reset_views();
    ics_optim *opt = NULL;
    ics_config *cfg = config_with("optim = { nesterov = true; dampening = 0.5; };\n");
    CU_ASSERT_EQUAL(ics_optim_create_from_config(&opt, cfg, views, 3, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "configuration optim.*: optimizer sgd: nesterov momentum requires a momentum > 0 and zero "
                           "dampening (momentum 0.9, dampening 0.5)");
    ics_config_destroy(cfg);

    ics_lr_schedule s;
    cfg = config_with("sched = { name = \"cosine\"; warmup_epochs = 5.0; };\n");
    CU_ASSERT_EQUAL(ics_lr_schedule_from_config(&s, cfg, 5, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "sched.t_max is 0 (the run's epochs minus warm-up) but the run has 5 epochs "
                                        "and sched.warmup_epochs is 5: set sched.t_max");
    ics_config_destroy(cfg);

    cfg = config_with("sched = { name = \"multistep\"; };\n");
    CU_ASSERT_EQUAL(ics_lr_schedule_from_config(&s, cfg, 5, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "sched.milestones: the multistep schedule needs at least one milestone");
    ics_config_destroy(cfg);

    char text[1024] = "sched = { name = \"multistep\"; milestones = [";
    for (int i = 1; i <= 33; i++) snprintf(text + strlen(text), sizeof text - strlen(text), "%s%d", i > 1 ? ", " : "", i);
    strcat(text, "]; };\n");
    cfg = config_with(text);
    CU_ASSERT_EQUAL(ics_lr_schedule_from_config(&s, cfg, 5, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "sched.milestones: 33 milestones, at most 32");
    ics_config_destroy(cfg);

    cfg = config_with("sched = { name = \"multistep\"; milestones = [5, 3]; };\n");
    CU_ASSERT_EQUAL(ics_lr_schedule_from_config(&s, cfg, 5, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "configuration sched.*: lr schedule multistep: milestones must increase "
                                        "(milestone 1 = 3 after 5)");
    ics_config_destroy(cfg);

    ics_ema_config ema;
    int enabled;
    cfg = config_with("ema = { enabled = true; };\n");
    CU_ASSERT_EQUAL(ics_ema_config_from_config(&ema, &enabled, cfg, 1, 0, &err), ICS_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "ema.mode torchvision scales the decay by the run's epochs, which are 0: use "
                                        "ema.mode = \"constant\"");
    ics_config_destroy(cfg);

    /* the schema's own checks: choices and ranges */
    cfg = config_with(NULL);
    CU_ASSERT_NOT_EQUAL(ics_config_set(cfg, "optim.name=rmsprop", &err), ICS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "optim.name"));
    CU_ASSERT_NOT_EQUAL(ics_config_set(cfg, "optim.momentum=1.5", &err), ICS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "optim.momentum"));
    CU_ASSERT_NOT_EQUAL(ics_config_set(cfg, "sched.milestones=[-1]", &err), ICS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "sched.milestones"));
    ics_config_destroy(cfg);
}

int main(void)
{
    static const ics_test_case cases[] = {
        {"schema section present", test_schema_section_present},
        {"defaults build SGD and a constant schedule", test_defaults_build_sgd_and_constant},
        {"job file values", test_job_file_values},
        {"errors name the keys", test_errors_name_keys},
        {NULL, NULL}};
    ics_test_add_suite("optim_config", cases);
    return ics_test_main("test_optim_config");
}
