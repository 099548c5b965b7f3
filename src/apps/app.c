/*
 * The framework every executable shares: see app.h.
 *
 * Order of work: parse the command line (no MPI yet, so --help, --version
 * and usage errors are instant and printed once, by the launcher's rank 0);
 * build the configuration layers; start MPI if the app uses it; run; print
 * an error as one line and choose the exit code. After MPI is up, a failure
 * on one rank of several ends the whole job with MPI_Abort, so no rank
 * waits forever in a collective and Slurm's afterok sees the failure.
 */
#include "ics_build_config.h"
#include "apps/app.h"
#include "config/build_info.h"
#include "core/log.h"
#include "dist/dist.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_OPTIONS = 64, MAX_POSITIONAL = 16 };

/* Options every executable has; ids above 256 never clash with short names. */
enum {
    OPT_HELP = 'h',
    OPT_VERSION = 'V',
    OPT_CONFIG = 'c',
    OPT_SET = 's',
    OPT_VERBOSE = 'v',
    OPT_QUIET = 'q',
    OPT_PRINT_CONFIG = 300,
    OPT_PRINT_DEFAULTS,
    OPT_APP_BASE = 400
};

static const ics_app_option common_options[] = {
    {"help", 'h', 0, NULL, NULL, NULL, "print this help and exit"},
    {"version", 'V', 0, NULL, NULL, NULL, "print the version and build features and exit"},
    {"config", 'c', 1, NULL, "FILE", "none", "job configuration file (libconfig)"},
    {"set", 's', 1, NULL, "KEY=VALUE", NULL, "override one configuration key (repeatable)"},
    {"print-config", 0, 0, NULL, NULL, NULL, "print the effective configuration with origins and exit"},
    {"print-defaults", 0, 0, NULL, NULL, NULL, "print every key with its default and doc (conf/defaults.cfg)"},
    {"verbose", 'v', 0, NULL, NULL, NULL, "debug messages; per-step lines from every rank"},
    {"quiet", 'q', 0, NULL, NULL, NULL, "warnings and errors only"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL}};

struct ics_app {
    const ics_app_spec *spec;
    ics_config *config;
    const char *option_values[MAX_OPTIONS];
    const char *positional[MAX_POSITIONAL];
    int positional_count;
};

const ics_config *ics_app_config(const ics_app *app) { return app->config; }
int ics_app_positional_count(const ics_app *app) { return app->positional_count; }
const char *ics_app_name(const ics_app *app) { return app->spec->name; }

const char *ics_app_positional(const ics_app *app, int index)
{
    return index >= 0 && index < app->positional_count ? app->positional[index] : NULL;
}

const char *ics_app_option_value(const ics_app *app, const char *long_name)
{
    const ics_app_option *o = app->spec->options;
    for (int i = 0; o && o[i].long_name; i++)
        if (strcmp(o[i].long_name, long_name) == 0) return app->option_values[i];
    return NULL;
}

const char *ics_app_version_text(void)
{
    static char text[1024];
    if (!text[0]) ics_build_info(text, sizeof text);
    return text;
}

/* Messages before MPI is up are printed once, by the launcher's rank 0. */
static int is_printing_rank(void)
{
    return ics_dist_initialized() ? ics_dist_rank() == 0 : ics_dist_env_rank() == 0;
}

static void print_option(FILE *out, const ics_app_option *o, const ics_config *defaults)
{
    char left[96];
    if (o->short_name)
        snprintf(left, sizeof left, "  -%c, --%s%s%s", o->short_name, o->long_name, o->takes_value ? " " : "",
                 o->takes_value ? (o->value_name ? o->value_name : "VALUE") : "");
    else
        snprintf(left, sizeof left, "      --%s%s%s", o->long_name, o->takes_value ? " " : "",
                 o->takes_value ? (o->value_name ? o->value_name : "VALUE") : "");
    fprintf(out, "%-34s %s", left, o->help);
    if (o->config_key) {
        const ics_config_key *k = ics_config_find_key(o->config_key);
        fprintf(out, " [%s; default: %s]", o->config_key,
                k && k->default_value[0] ? k->default_value : "\"\"");
    } else if (o->default_doc) {
        fprintf(out, " [default: %s]", o->default_doc);
    }
    fputc('\n', out);
    (void)defaults;
}

static void print_help(const ics_app_spec *spec)
{
    printf("Usage: %s [OPTION]...%s%s\n%s\n\n", spec->name, spec->positional_doc ? " " : "",
           spec->positional_doc ? spec->positional_doc : "", spec->summary);
    if (spec->options && spec->options[0].long_name) {
        printf("Options of %s:\n", spec->name);
        for (int i = 0; spec->options[i].long_name; i++) print_option(stdout, &spec->options[i], NULL);
        printf("\n");
    }
    printf("Common options:\n");
    for (int i = 0; common_options[i].long_name; i++) print_option(stdout, &common_options[i], NULL);
    printf("\nConfiguration layers, later wins: built-in defaults < site file\n"
           "($ICSPARSE_SITE_CONFIG or /etc/icsparse/site.cfg) < --config FILE < --set and options.\n"
           "Every key, its default and its meaning: %s --print-defaults.\n"
           "Exit status: 0 success, 1 runtime failure, 2 usage or configuration error",
           spec->name);
    if (spec->uses_mpi) printf(", 75 preempted (checkpoint written; requeue)");
    printf(".\n");
}

/* Prints every schema key at its default with its doc line, as a loadable
 * libconfig file (conf/defaults.cfg is this output; a test keeps them equal). */
static int print_defaults(void)
{
    ics_config *cfg = NULL;
    ics_error err;
    if (ics_config_create(&cfg, &err)) {
        fprintf(stderr, "error: %s\n", err.message);
        return 1;
    }
    printf("# icsparse configuration: every key at its built-in default, with its meaning.\n"
           "# Generated by `icsparse-train --print-defaults` (make update-defaults).\n"
           "# Layers, later wins: these defaults < site file ($ICSPARSE_SITE_CONFIG or\n"
           "# /etc/icsparse/site.cfg) < job file (--config) < --set key=value.\n"
           "# Copy the keys you change into a job file; the rest need not be there.\n\n");
    ics_status st = ics_config_print(cfg, stdout, ICS_CONFIG_PRINT_DOCS, &err);
    ics_config_destroy(cfg);
    return st ? 1 : 0;
}

static int usage_error(const ics_app_spec *spec, const char *fmt, const char *arg)
{
    if (is_printing_rank()) {
        fprintf(stderr, "%s: error: ", spec->name);
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\nTry '%s --help' for more information.\n", spec->name);
    }
    return 2;
}

static int report(const ics_app_spec *spec, const ics_error *err)
{
    int code = ics_status_exit_code(err->status);
    if (ics_dist_initialized() && ics_dist_size() > 1)
        fprintf(stderr, "%s: error: [rank %d] %s\n", spec->name, ics_dist_rank(), err->message);
    else if (is_printing_rank())
        fprintf(stderr, "%s: error: %s\n", spec->name, err->message);
    return code;
}

int ics_app_main(const ics_app_spec *spec, int argc, char **argv)
{
    ics_app app;
    memset(&app, 0, sizeof app);
    app.spec = spec;

    /* One getopt table from the common options and the app's own. */
    struct option longopts[MAX_OPTIONS * 2];
    char shortopts[MAX_OPTIONS * 3 + 3] = ":"; /* GNU order: options may follow arguments */
    int nl = 0, app_count = 0;
    for (int i = 0; common_options[i].long_name; i++) {
        const ics_app_option *o = &common_options[i];
        int id = o->short_name ? o->short_name : (i == 4 ? OPT_PRINT_CONFIG : OPT_PRINT_DEFAULTS);
        longopts[nl++] = (struct option){o->long_name, o->takes_value ? required_argument : no_argument, NULL, id};
        if (o->short_name) {
            size_t l = strlen(shortopts);
            shortopts[l] = o->short_name;
            shortopts[l + 1] = o->takes_value ? ':' : '\0';
            shortopts[l + 2] = '\0';
        }
    }
    for (int i = 0; spec->options && spec->options[i].long_name; i++) {
        const ics_app_option *o = &spec->options[i];
        if (i >= MAX_OPTIONS - 1) break;
        longopts[nl++] = (struct option){o->long_name, o->takes_value ? required_argument : no_argument, NULL,
                                         o->short_name ? o->short_name : OPT_APP_BASE + i};
        if (o->short_name) {
            size_t l = strlen(shortopts);
            shortopts[l] = o->short_name;
            shortopts[l + 1] = o->takes_value ? ':' : '\0';
            shortopts[l + 2] = '\0';
        }
        app_count++;
    }
    longopts[nl] = (struct option){NULL, 0, NULL, 0};

    /* First pass: collect; configuration layers are applied afterwards in
     * the documented order whatever the order on the command line. */
    const char *config_file = NULL;
    int want_help = 0, want_version = 0, want_print = 0, want_defaults = 0, verbose = 0, quiet = 0;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    char *owned = calloc((size_t)argc + 1, 1); /* 1: sets[i] was malloc'd here */
    int nsets = 0, code = 0;
    if (!sets || !owned) {
        free(sets);
        free(owned);
        return usage_error(spec, "%s", "out of memory");
    }
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_HELP: want_help = 1; break;
        case OPT_VERSION: want_version = 1; break;
        case OPT_CONFIG:
            if (config_file) {
                code = usage_error(spec, "%s", "--config given twice");
                goto done;
            }
            config_file = optarg;
            break;
        case OPT_SET: sets[nsets++] = optarg; break;
        case OPT_PRINT_CONFIG: want_print = 1; break;
        case OPT_PRINT_DEFAULTS: want_defaults = 1; break;
        case OPT_VERBOSE: verbose = 1; break;
        case OPT_QUIET: quiet = 1; break;
        case ':':
            code = usage_error(spec, "option '%s' needs a value", argv[optind - 1]);
            goto done;
        case '?':
            code = usage_error(spec, "unknown option '%s'", argv[optind - 1]);
            goto done;
        default: {
            int index = -1;
            for (int i = 0; i < app_count; i++) {
                const ics_app_option *o = &spec->options[i];
                if ((o->short_name && c == o->short_name) || c == OPT_APP_BASE + i) index = i;
            }
            if (index < 0) {
                code = usage_error(spec, "unknown option '%s'", argv[optind - 1]);
                goto done;
            }
            const ics_app_option *o = &spec->options[index];
            const char *value = o->takes_value ? optarg : "1";
            if (o->config_key) {
                /* A shorthand: becomes "--set key=value" in command-line order. */
                size_t len = strlen(o->config_key) + strlen(value) + 2;
                char *assign = malloc(len);
                if (!assign) {
                    code = usage_error(spec, "%s", "out of memory");
                    goto done;
                }
                snprintf(assign, len, "%s=%s", o->config_key, value);
                owned[nsets] = 1;
                sets[nsets++] = assign;
            } else {
                app.option_values[index] = value;
            }
        }
        }
    }
    for (int i = optind; i < argc; i++) {
        if (app.positional_count == MAX_POSITIONAL) {
            code = usage_error(spec, "too many arguments starting at '%s'", argv[i]);
            goto done;
        }
        app.positional[app.positional_count++] = argv[i];
    }

    if (want_help) {
        if (is_printing_rank()) print_help(spec);
        goto done;
    }
    if (want_version) {
        if (is_printing_rank()) fputs(ics_app_version_text(), stdout);
        goto done;
    }
    if (want_defaults) {
        if (is_printing_rank()) code = print_defaults();
        goto done;
    }
    if (app.positional_count < spec->min_positional || app.positional_count > spec->max_positional) {
        if (spec->max_positional == 0)
            code = usage_error(spec, "unexpected argument '%s'", app.positional[0]);
        else if (app.positional_count < spec->min_positional)
            code = usage_error(spec, "missing argument %s", spec->positional_doc ? spec->positional_doc : "");
        else
            code = usage_error(spec, "too many arguments (from '%s')", app.positional[spec->max_positional]);
        goto done;
    }

    ics_log_set_verbose(verbose);
    ics_error err;
    ics_error_clear(&err);
    ics_status st = ics_config_create(&app.config, &err);
    if (!st) st = ics_config_load_site(app.config, &err);
    if (!st && config_file) st = ics_config_load_file(app.config, config_file, ICS_ORIGIN_JOB, &err);
    for (int i = 0; !st && i < nsets; i++) st = ics_config_set(app.config, sets[i], &err);
    if (st) {
        code = report(spec, &err);
        goto done;
    }
    if (want_print) {
        if (is_printing_rank()) ics_config_print(app.config, stdout, ICS_CONFIG_PRINT_ORIGINS, &err);
        goto done;
    }
    int level = ics_log_level_parse(ics_config_string(app.config, "log.level"));
    if (verbose) level = ICS_LOG_DEBUG;
    if (quiet) level = ICS_LOG_WARN;
    ics_log_set_level((ics_log_level)level);

    if (spec->uses_mpi) {
        st = ics_dist_init(&argc, &argv, &err);
        if (st) {
            code = report(spec, &err);
            goto done;
        }
    }
    st = spec->run(&app, &err);
    if (st == ICS_ERR_INTERRUPTED) {
        /* Every rank stopped together after writing the checkpoint: a clean
         * exit with the documented code, so the job script can requeue. */
        if (!ics_dist_initialized() || ics_dist_rank() == 0)
            fprintf(stderr, "%s: %s\n", spec->name, err.message);
        code = ics_status_exit_code(st);
    } else if (st && ics_dist_initialized() && ics_dist_size() > 1 && ics_dist_failure_agreed()) {
        /* Every rank agreed on the failure (no collective pending): one
         * line, from the lowest failing rank, and a clean exit with the
         * code, no MPI_Abort banner. */
        if (ics_dist_rank() == ics_dist_first_failed_rank()) report(spec, &err);
        code = ics_status_exit_code(st);
    } else if (st) {
        code = report(spec, &err);
        if (ics_dist_initialized() && ics_dist_size() > 1) {
            fflush(NULL);
            ics_dist_abort(code);
        }
    }
    if (spec->uses_mpi) ics_dist_finalize();

done:
    for (int i = 0; i < nsets; i++)
        if (owned[i]) free((void *)sets[i]);
    free(sets);
    free(owned);
    ics_config_destroy(app.config);
    fflush(stdout);
    return code;
}
