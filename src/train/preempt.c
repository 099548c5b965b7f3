/* Preemption flag set by SIGTERM/SIGUSR1: see preempt.h. */
#include "ics_build_config.h"
#include "train/preempt.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t received;

static void on_signal(int sig)
{
    received = sig;
}

void ics_preempt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: a read interrupted by the signal resumes; the step in
     * progress finishes before the flag is looked at. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int ics_preempt_signal(void) { return (int)received; }
void ics_preempt_reset(void) { received = 0; }
