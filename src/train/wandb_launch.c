/*
 * src/train/wandb_launch.c: icsparse-train's W&B logging is
 * tools/wandb-bridge run as a child of rank 0 (see wandb_launch.h).
 *
 * The child is started with posix_spawn, not fork: an MPI process may have
 * pinned memory and atfork handlers that a fork would copy or run, while
 * glibc's posix_spawn execs straight away in the child.
 *
 * Finishing is a handshake on SIGTERM: the bridge reads what is left of
 * metrics.jsonl and closes its run when it gets SIGTERM. The child starts
 * with SIGTERM and SIGINT blocked, and the bridge unblocks them once its
 * handler is in place, so a SIGTERM sent while Python is still starting
 * (a short run) stays pending instead of killing it with no run written.
 */
#include "ics_build_config.h"
#include "train/wandb_launch.h"

#include "core/log.h"
#include "train/wandb_paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct ics_wandb_bridge {
    pid_t pid;
    char run_dir[1024];
};

static int readable(const char *path)
{
    return path && path[0] && access(path, R_OK) == 0;
}

/* Whether this executable is the installed one (it lives in $(bindir)):
 * then the installed bridge is the one that matches it; a build tree's
 * executable takes its source tree's bridge first. */
static int running_installed(void)
{
    char exe[PATH_MAX], bindir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || !realpath(ICS_WANDB_BINDIR, bindir)) return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = '\0';
    return strcmp(exe, bindir) == 0;
}

static int find_bridge(char *out, size_t size)
{
    const char *env = getenv("ICSPARSE_WANDB_BRIDGE");
    if (env && env[0]) {
        if (!readable(env)) {
            ICS_WARN("log.wandb: ICSPARSE_WANDB_BRIDGE=%s cannot be read: no W&B run, training continues", env);
            return 0;
        }
        snprintf(out, size, "%s", env);
        return 1;
    }
    const char *installed = ICS_WANDB_PKGLIBEXECDIR "/wandb-bridge";
    const char *source = ICS_WANDB_TOP_SRCDIR "/tools/wandb-bridge";
    const char *order[2] = {source, installed};
    if (running_installed()) {
        order[0] = installed;
        order[1] = source;
    }
    for (int i = 0; i < 2; i++) {
        if (readable(order[i])) {
            snprintf(out, size, "%s", order[i]);
            return 1;
        }
    }
    ICS_WARN("log.wandb: wandb-bridge not found (looked for %s and %s; set ICSPARSE_WANDB_BRIDGE): "
             "no W&B run, training continues",
             order[0], order[1]);
    return 0;
}

/* Runs argv (PATH searched) with stdio on /dev/null; its exit status, or
 * -1 when it could not run. */
static int run_quietly(char *const argv[])
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) return -1;
    for (int fd = 0; fd <= 2; fd++)
        posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Whether python can find the wandb package (located, not imported: an
 * import takes seconds; a broken install makes the bridge exit 3 and say
 * so itself). */
static int python_has_wandb(const char *python)
{
    char *argv[] = {(char *)python, "-c",
                    "import importlib.util, sys; sys.exit(importlib.util.find_spec('wandb') is None)", NULL};
    return run_quietly(argv) == 0;
}

static int find_python(char *out, size_t size)
{
    const char *env = getenv("ICSPARSE_WANDB_PYTHON");
    if (env && env[0]) {
        if (!python_has_wandb(env)) {
            ICS_WARN("log.wandb: ICSPARSE_WANDB_PYTHON=%s cannot import wandb: no W&B run, training continues",
                     env);
            return 0;
        }
        snprintf(out, size, "%s", env);
        return 1;
    }
    const char *candidates[2] = {ICS_WANDB_PYTHON, "python3"};
    for (int i = 0; i < 2; i++) {
        if (candidates[i][0] && python_has_wandb(candidates[i])) {
            snprintf(out, size, "%s", candidates[i]);
            return 1;
        }
    }
    ICS_WARN("log.wandb: neither %s nor python3 can import wandb (set ICSPARSE_WANDB_PYTHON to a Python "
             "that can): no W&B run, training continues",
             ICS_WANDB_PYTHON);
    return 0;
}

/* The effective configuration (with each value's origin) for the W&B
 * run's config table: RUN/wandb-config.cfg, written to a temporary name
 * and renamed. 0 (after a warning) when it cannot be written. */
static int write_config(const ics_config *cfg, const char *path)
{
    ics_error err = {0};
    char *text = ics_config_to_string(cfg, ICS_CONFIG_PRINT_ORIGINS, &err);
    if (!text) {
        ICS_WARN("log.wandb: the configuration cannot be printed (%s): the W&B run has no config", err.message);
        return 0;
    }
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        ICS_WARN("log.wandb: %s: cannot write: %s: the W&B run has no config", path, strerror(errno));
        remove(tmp);
    }
    free(text);
    return ok;
}

ics_wandb_bridge *ics_wandb_bridge_start(const ics_config *cfg, const char *run_dir)
{
    if (!ics_config_bool(cfg, "log.jsonl")) {
        ICS_WARN("log.wandb needs log.jsonl = true (the W&B run is replayed from RUN/metrics.jsonl): "
                 "no W&B run, training continues");
        return NULL;
    }
    char bridge[PATH_MAX], python[PATH_MAX];
    if (!find_bridge(bridge, sizeof bridge) || !find_python(python, sizeof python)) return NULL;

    char pid_text[32], config_path[1100];
    snprintf(pid_text, sizeof pid_text, "%ld", (long)getpid());
    snprintf(config_path, sizeof config_path, "%s/wandb-config.cfg", run_dir);
    const char *project = ics_config_string(cfg, "log.wandb_project");
    const char *name = ics_config_string(cfg, "run.name");
    const char *recipe = ics_config_string(cfg, "recipe.path");

    const char *argv[20];
    int argc = 0;
    argv[argc++] = python;
    argv[argc++] = bridge;
    argv[argc++] = "--run-dir";
    argv[argc++] = run_dir;
    argv[argc++] = "--follow";
    argv[argc++] = "--pid";
    argv[argc++] = pid_text;
    argv[argc++] = "--project";
    argv[argc++] = project[0] ? project : "icsparse";
    if (name[0]) {
        argv[argc++] = "--name";
        argv[argc++] = name;
    }
    if (write_config(cfg, config_path)) {
        argv[argc++] = "--config";
        argv[argc++] = config_path;
    }
    /* a comma list is jobs/submit-pipeline's, one recipe per stage */
    if (recipe[0] && !strchr(recipe, ',') && readable(recipe)) {
        argv[argc++] = "--recipe";
        argv[argc++] = recipe;
    }
    argv[argc] = NULL;

    posix_spawnattr_t attr;
    sigset_t blocked, defaults;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    /* the trainer's own handlers are reset by exec anyway; ignored
     * signals would stay ignored */
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGUSR1);
    sigaddset(&defaults, SIGPIPE);
    pid_t pid;
    int rc = posix_spawnattr_init(&attr);
    if (rc == 0) {
        posix_spawnattr_setsigmask(&attr, &blocked);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        rc = posix_spawnp(&pid, python, NULL, &attr, (char *const *)argv, environ);
        posix_spawnattr_destroy(&attr);
    }
    if (rc != 0) {
        ICS_WARN("log.wandb: cannot start %s %s: %s: no W&B run, training continues", python, bridge,
                 strerror(rc));
        return NULL;
    }
    ics_wandb_bridge *b = calloc(1, sizeof *b);
    if (!b) {
        /* cannot track it: let it follow this process and end with it */
        ICS_WARN("log.wandb: out of memory: wandb-bridge (pid %ld) is not waited for", (long)pid);
        return NULL;
    }
    b->pid = pid;
    snprintf(b->run_dir, sizeof b->run_dir, "%s", run_dir);
    ICS_INFO("log.wandb: wandb-bridge (pid %ld) follows %s/metrics.jsonl into a W&B offline run (%s)", (long)pid,
             run_dir, python);
    return b;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ics_wandb_bridge_finish(ics_wandb_bridge *b, double wait_seconds)
{
    if (!b) return;
    kill(b->pid, SIGTERM);
    double deadline = monotonic_seconds() + wait_seconds;
    int status = 0;
    pid_t done = 0;
    for (;;) {
        done = waitpid(b->pid, &status, WNOHANG);
        if (done != 0 && !(done < 0 && errno == EINTR)) break;
        if (monotonic_seconds() >= deadline) break;
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (done == 0) {
        kill(b->pid, SIGKILL);
        while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR) {
        }
        ICS_WARN("log.wandb: wandb-bridge did not finish within %.0f s and was killed: the W&B offline run may be "
                 "incomplete (replay it after the job: tools/wandb-bridge --run-dir %s)",
                 wait_seconds, b->run_dir);
    } else if (done > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 3) {
        /* exit 3: wandb cannot be imported; the bridge said so itself */
    } else if (done > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        ICS_WARN("log.wandb: wandb-bridge exited with status %d: the W&B offline run may be incomplete "
                 "(replay it after the job: tools/wandb-bridge --run-dir %s)",
                 code, b->run_dir);
    }
    free(b);
}
