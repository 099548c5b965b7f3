/*
 * src/apps/app.h: the framework every executable shares, so the CLI
 * conventions are the same everywhere:
 *   --help, --version, --config FILE, --set key=value (repeatable),
 *   --print-config, --verbose, --quiet, plus the app's own options;
 *   exit codes 0 success, 1 runtime failure, 2 usage or configuration error.
 * An app declares a table of its own options (one table yields the parser,
 * --help with defaults, and the unknown-option error) and a run function.
 * Options with a config_key are shorthands for --set config_key=VALUE, so
 * their default and origin come from the configuration schema.
 */
#ifndef ICS_APPS_APP_H
#define ICS_APPS_APP_H

#include <icsparse/config.h>
#include <icsparse/status.h>

typedef struct ics_app_option {
    const char *long_name;   /* "epochs" for --epochs */
    char short_name;         /* 0 for none */
    int takes_value;         /* 1: --x VALUE; 0: a flag */
    const char *config_key;  /* shorthand for --set config_key=VALUE, or NULL */
    const char *value_name;  /* "N", "FILE" (help text) */
    const char *default_doc; /* default shown by --help for options without config_key */
    const char *help;        /* one line */
} ics_app_option;

typedef struct ics_app ics_app;

typedef struct ics_app_spec {
    const char *name;            /* "icsparse-train" */
    const char *summary;         /* one line for --help */
    const char *positional_doc;  /* "[RECIPE]" or NULL for none */
    int min_positional, max_positional;
    const ics_app_option *options; /* the app's own options, ends with {NULL} */
    int uses_mpi;                /* 1: MPI is started before run() */
    /* The work. Returns ICS_OK or an error (printed by the framework). */
    ics_status (*run)(ics_app *app, ics_error *err);
} ics_app_spec;

/* Parses the command line, builds the configuration (defaults, site, job,
 * --set and option shorthands), handles --help/--version/--print-config,
 * starts MPI when the app uses it, calls run(), prints an error as one line
 * ("icsparse-train: error: ...") and returns the exit code. A failure on
 * one rank after MPI is up ends every rank (MPI_Abort). */
int ics_app_main(const ics_app_spec *spec, int argc, char **argv);

/* Inside run(): */
const ics_config *ics_app_config(const ics_app *app);
/* Value of an app option without config_key: its value, "1" for a given
 * flag, or NULL when absent. */
const char *ics_app_option_value(const ics_app *app, const char *long_name);
int ics_app_positional_count(const ics_app *app);
const char *ics_app_positional(const ics_app *app, int index);
const char *ics_app_name(const ics_app *app);

/* The text --version prints (version and build features). */
const char *ics_app_version_text(void);

#endif
