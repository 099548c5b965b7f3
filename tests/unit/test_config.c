/* The layered configuration: defaults, site, job, --set, origins, every
 * error path with real files, printing round trips, allocation failures. */
#include "ics_build_config.h"
#include "test_util.h"
#include "config/schema.h"
#include "core/alloc.h"

#include <icsparse/config.h>
#include <stdlib.h>
#include <string.h>

static char *tmp;

static ics_config *fresh(void)
{
    ics_config *cfg = NULL;
    ics_error err;
    CU_ASSERT_EQUAL_FATAL(ics_config_create(&cfg, &err), ICS_OK);
    return cfg;
}

/* Loads text as a job file named NAME in the temp dir; returns the status
 * and leaves the message in err. */
static ics_status load_job(ics_config *cfg, const char *name, const char *text, ics_error *err)
{
    char *path = ics_test_write_file(tmp, name, text);
    ics_status st = ics_config_load_file(cfg, path, ICS_ORIGIN_JOB, err);
    free(path);
    return st;
}

static void test_defaults_match_schema(void)
{
    ics_config *cfg = fresh();
    CU_ASSERT_EQUAL(ics_config_int(cfg, "train.batch_size"), 128);
    CU_ASSERT_DOUBLE_EQUAL(ics_config_float(cfg, "train.epochs"), 5.0, 0);
    CU_ASSERT_STRING_EQUAL(ics_config_string(cfg, "model.arch"), "simple_cnn");
    CU_ASSERT_EQUAL(ics_config_bool(cfg, "log.tensorboard"), 1);
    CU_ASSERT_STRING_EQUAL(ics_config_origin(cfg, "train.batch_size"), "default");
    size_t n;
    const ics_config_key *keys = ics_config_schema(&n);
    CU_ASSERT(n > 40);
    /* Every key is documented and unique. */
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT(keys[i].doc && strlen(keys[i].doc) > 5);
        for (size_t j = i + 1; j < n; j++) CU_ASSERT(strcmp(keys[i].key, keys[j].key) != 0);
    }
    ics_config_destroy(cfg);
}

static void test_layers_later_wins_with_origins(void)
{
    ics_config *cfg = fresh();
    ics_error err;
    char *site = ics_test_write_file(tmp, "site.cfg", "train = { epochs = 7; batch_size = 64; };\nslurm = { partition = \"gpu\"; };\n");
    CU_ASSERT_EQUAL(ics_config_load_file(cfg, site, ICS_ORIGIN_SITE, &err), ICS_OK);
    CU_ASSERT_EQUAL(load_job(cfg, "job.cfg", "# job\ntrain = {\n  epochs = 9;\n};\n", &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_config_set(cfg, "train.batch_size=32", &err), ICS_OK);
    CU_ASSERT_DOUBLE_EQUAL(ics_config_float(cfg, "train.epochs"), 9.0, 0);
    CU_ASSERT_EQUAL(ics_config_int(cfg, "train.batch_size"), 32);
    CU_ASSERT_STRING_EQUAL(ics_config_string(cfg, "slurm.partition"), "gpu");
    char want[4096];
    snprintf(want, sizeof want, "job %s/job.cfg:3", tmp);
    CU_ASSERT_STRING_EQUAL(ics_config_origin(cfg, "train.epochs"), want);
    snprintf(want, sizeof want, "site %s:2", site);
    CU_ASSERT_STRING_EQUAL(ics_config_origin(cfg, "slurm.partition"), want);
    CU_ASSERT_STRING_EQUAL(ics_config_origin(cfg, "train.batch_size"), "--set");
    free(site);
    ics_config_destroy(cfg);
}

static void test_site_from_environment(void)
{
    ics_config *cfg = fresh();
    ics_error err;
    char *site = ics_test_write_file(tmp, "envsite.cfg", "run = { seed = 7; };\n");
    setenv("ICSPARSE_SITE_CONFIG", site, 1);
    CU_ASSERT_EQUAL(ics_config_load_site(cfg, &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_config_int(cfg, "run.seed"), 7);
    setenv("ICSPARSE_SITE_CONFIG", "/nonexistent/site.cfg", 1);
    CU_ASSERT_EQUAL(ics_config_load_site(cfg, &err), ICS_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "/nonexistent/site.cfg: cannot read configuration file"));
    setenv("ICSPARSE_SITE_CONFIG", "none", 1);
    CU_ASSERT_EQUAL(ics_config_load_site(cfg, &err), ICS_OK);
    free(site);
    ics_config_destroy(cfg);
}

/* Each bad file gives exactly this message (after "DIR/"). */
static void expect_file_error(const char *text, const char *want_suffix)
{
    ics_config *cfg = fresh();
    ics_error err;
    ics_error_clear(&err);
    CU_ASSERT_EQUAL(load_job(cfg, "bad.cfg", text, &err), ICS_ERR_CONFIG);
    char want[4096];
    snprintf(want, sizeof want, "%s/bad.cfg:%s", tmp, want_suffix);
    if (strcmp(err.message, want) != 0) fprintf(stderr, "\n got: %s\nwant: %s\n", err.message, want);
    CU_ASSERT_STRING_EQUAL(err.message, want);
    ics_config_destroy(cfg);
}

static void test_job_file_errors_name_file_line_key(void)
{
    expect_file_error("train = {\n  epochs = 3;\n  batch_sise = 64;\n};\n",
                      "3: unknown key 'train.batch_sise' (did you mean 'train.batch_size'?)");
    expect_file_error("trian = { epochs = 3; };\n",
                      "1: unknown key 'trian' (did you mean 'train'?)" + 0);
}

static void test_type_range_choice_errors(void)
{
    expect_file_error("train = { batch_size = 1.5; };\n", "1: train.batch_size: expected an integer");
    expect_file_error("train = { epochs = \"many\"; };\n", "1: train.epochs: expected a number");
    expect_file_error("log = { jsonl = 1; };\n", "1: log.jsonl: expected a boolean (true or false)");
    expect_file_error("\n\nrun = { dir = 5; };\n", "3: run.dir: expected a string");
    expect_file_error("train = { batch_size = 0; };\n", "1: train.batch_size: value 0 out of range [1, 1.04858e+06]");
    expect_file_error("model = { arch = \"resnet7\"; };\n",
                      "1: model.arch: 'resnet7' is not one of simple_cnn|lenet|resnet18|resnet34|resnet50|resnet101|mobilenet_v2|vgg11_bn|vgg16_bn");
    expect_file_error("train = 5;\n", "1: 'train' is a group of keys, not a value");
    expect_file_error("train = { epochs = { a = 1; }; };\n", "1: key 'train.epochs' is a value, not a group");
    expect_file_error("train = { epochs = 3 \n", "2: syntax error");
}

static void test_suggestions(void)
{
    CU_ASSERT_STRING_EQUAL(ics_config_suggest("train.epoch"), "train.epochs");
    CU_ASSERT_STRING_EQUAL(ics_config_suggest("modle.arch"), "model.arch");
    CU_ASSERT_STRING_EQUAL(ics_config_suggest("model.seed"), "run.seed");
    CU_ASSERT_PTR_NULL(ics_config_suggest("completely.unrelated.thing"));
    CU_ASSERT_EQUAL(ics_config_edit_distance("abc", "acb"), 1);
    CU_ASSERT_EQUAL(ics_config_edit_distance("kitten", "sitting"), 3);
}

static void expect_set_error(const char *assignment, const char *want)
{
    ics_config *cfg = fresh();
    ics_error err;
    ics_error_clear(&err);
    CU_ASSERT_EQUAL(ics_config_set(cfg, assignment, &err), ICS_ERR_CONFIG);
    if (strcmp(err.message, want) != 0) fprintf(stderr, "\n got: %s\nwant: %s\n", err.message, want);
    CU_ASSERT_STRING_EQUAL(err.message, want);
    ics_config_destroy(cfg);
}

static void test_set_values_and_errors(void)
{
    ics_config *cfg = fresh();
    ics_error err;
    CU_ASSERT_EQUAL(ics_config_set(cfg, "train.amp=yes", &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_config_bool(cfg, "train.amp"), 1);
    CU_ASSERT_EQUAL(ics_config_set(cfg, "run.name=\"my run\"", &err), ICS_OK);
    CU_ASSERT_STRING_EQUAL(ics_config_string(cfg, "run.name"), "my run");
    CU_ASSERT_EQUAL(ics_config_set(cfg, "train.epochs=1e1", &err), ICS_OK);
    CU_ASSERT_DOUBLE_EQUAL(ics_config_float(cfg, "train.epochs"), 10.0, 0);
    CU_ASSERT_EQUAL(ics_config_set(cfg, "recipe.args={\"lr\": 0.1}", &err), ICS_OK);
    CU_ASSERT_STRING_EQUAL(ics_config_string(cfg, "recipe.args"), "{\"lr\": 0.1}");
    ics_config_destroy(cfg);
    expect_set_error("train.epochs=abc", "--set train.epochs: 'abc' is not a number");
    expect_set_error("train.batch_size=12x", "--set train.batch_size: '12x' is not an integer");
    expect_set_error("train.amp=maybe", "--set train.amp: 'maybe' is not a boolean (true or false)");
    expect_set_error("train.batch_size=-4", "--set train.batch_size: value -4 out of range [1, 1.04858e+06]");
    expect_set_error("train.epochs=nan", "--set train.epochs: value must be finite");
    expect_set_error("train.epochs", "--set train.epochs: expected key=value");
    expect_set_error("=3", "--set =3: expected key=value");
    expect_set_error("train.epoch=3", "--set train.epoch=3: unknown key 'train.epoch' (did you mean 'train.epochs'?)");
    expect_set_error("zzz.qqq.www=3", "--set zzz.qqq.www=3: unknown key 'zzz.qqq.www'");
}

/* The printed configuration reads back to the same values. */
static void test_print_round_trip(void)
{
    ics_config *a = fresh();
    ics_error err;
    CU_ASSERT_EQUAL(ics_config_set(a, "train.epochs=0.1", &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_config_set(a, "run.name=quote\"and\\back", &err), ICS_OK);
    CU_ASSERT_EQUAL(ics_config_set(a, "run.seed=2147483647", &err), ICS_OK);
    char *text = ics_config_to_string(a, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "epochs = 0.1;  # --set"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "batch_size = 128;  # default"));
    ics_config *b = fresh();
    CU_ASSERT_EQUAL(ics_config_load_string(b, text, "printed", ICS_ORIGIN_JOB, &err), ICS_OK);
    char *again = ics_config_to_string(b, 0, &err);
    char *plain = ics_config_to_string(a, 0, &err);
    CU_ASSERT_STRING_EQUAL(again, plain);
    CU_ASSERT_STRING_EQUAL(ics_config_string(b, "run.name"), "quote\"and\\back");
    CU_ASSERT_DOUBLE_EQUAL(ics_config_float(b, "train.epochs"), 0.1, 0);
    free(text);
    free(again);
    free(plain);
    ics_config_destroy(a);
    ics_config_destroy(b);
}

/* Every allocation of create/set/print can fail: each failure is reported
 * as out of memory and leaks nothing (ASan checks the leaks). */
static void test_allocation_failures(void)
{
    int failures_seen = 0;
    for (long n = 1; n < 5000; n++) {
        ics_error err;
        ics_error_clear(&err);
        ics_config *cfg = NULL;
        ics_alloc_fail_after(n);
        ics_status st = ics_config_create(&cfg, &err);
        if (!st) st = ics_config_set(cfg, "run.name=abc", &err);
        if (!st) st = ics_config_load_string(cfg, "train = { epochs = 2; };", "mem", ICS_ORIGIN_JOB, &err);
        char *text = st ? NULL : ics_config_to_string(cfg, 1, &err);
        if (!st && !text) st = err.status;
        ics_alloc_fail_after(0);
        free(text);
        ics_config_destroy(cfg);
        if (st == ICS_OK) break;
        CU_ASSERT_EQUAL(st, ICS_ERR_NOMEM);
        failures_seen++;
    }
    CU_ASSERT(failures_seen > 3);
}

int main(void)
{
    tmp = ics_test_tmpdir("config");
    static const ics_test_case cases[] = {
        {"defaults match the schema", test_defaults_match_schema},
        {"layers: later wins, origins recorded", test_layers_later_wins_with_origins},
        {"site file from the environment", test_site_from_environment},
        {"job file errors name file, line, key", test_job_file_errors_name_file_line_key},
        {"type, range and choice errors", test_type_range_choice_errors},
        {"typo suggestions", test_suggestions},
        {"--set values and errors", test_set_values_and_errors},
        {"printed configuration reads back", test_print_round_trip},
        {"allocation failures", test_allocation_failures},
        {NULL, NULL}};
    ics_test_add_suite("config", cases);
    int rc = ics_test_main("test_config");
    ics_test_rmtree(tmp);
    free(tmp);
    return rc;
}
