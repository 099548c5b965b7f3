/*
 * Rank 0's view of training on stdout: on a terminal a progress bar with
 * ETA and images/s redrawn in place; in a batch log (or log.progress =
 * "lines") one line every log.every_steps optimizer steps.
 */
#include "ics_build_config.h"
#include "train/trainer_internal.h"

#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int use_bar(const ics_trainer *t)
{
    const char *mode = ics_config_string(t->cfg, "log.progress");
    if (strcmp(mode, "bar") == 0) return 1;
    if (strcmp(mode, "auto") == 0) return isatty(STDOUT_FILENO);
    return 0;
}

static void format_eta(double seconds, char *buf, size_t size)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
}

void ics_train_progress(ics_trainer *t, double loss, double top1, double lr, double images_per_sec,
                        double eta_seconds)
{
    const char *mode = ics_config_string(t->cfg, "log.progress");
    if (strcmp(mode, "none") == 0) return;
    double epoch = ics_train_epoch_of(t, t->global_step);
    char eta[32];
    format_eta(eta_seconds, eta, sizeof eta);
    if (use_bar(t)) {
        double frac = t->total_steps ? (double)t->global_step / (double)t->total_steps : 1;
        int width = 30, filled = (int)(frac * width);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
        bar[width] = '\0';
        printf("\r[%s] %5.1f%% epoch %.2f loss %.4f top-1 %.1f%% lr %.4g %.0f img/s ETA %s ", bar, 100 * frac,
               epoch, loss, top1, lr, images_per_sec, eta);
        fflush(stdout);
        t->progress_bar = 1;
    } else {
        ics_log_step("step %lld/%lld epoch %.2f loss %.4f top-1 %.2f%% lr %.5g %.0f img/s ETA %s",
                     (long long)t->global_step, (long long)t->total_steps, epoch, loss, top1, lr, images_per_sec, eta);
    }
}

void ics_train_progress_done(ics_trainer *t)
{
    if (t->progress_bar) {
        printf("\n");
        fflush(stdout);
        t->progress_bar = 0;
    }
}
