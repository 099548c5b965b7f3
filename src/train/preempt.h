/*
 * src/train/preempt.h: preemption. SIGTERM and SIGUSR1 (what Slurm sends
 * with --signal, or scancel --signal) only set a flag; the trainer checks it
 * after each optimizer step, agrees with the other ranks, writes a
 * checkpoint and stops with ICS_ERR_INTERRUPTED (exit code 75).
 */
#ifndef ICS_TRAIN_PREEMPT_H
#define ICS_TRAIN_PREEMPT_H

/* Installs the handlers (idempotent). */
void ics_preempt_install(void);
/* The signal received (0 if none). */
int ics_preempt_signal(void);
/* Forgets a received signal (tests). */
void ics_preempt_reset(void);

#endif
