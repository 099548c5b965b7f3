/*
 * log.wandb = true: rank 0 of icsparse-train runs tools/wandb-bridge beside
 * itself, which replays RUN/metrics.jsonl into a Weights & Biases offline
 * run while training goes on, and at the end asks it to finish and waits
 * for it, so the offline run is complete when the job ends. W&B is
 * optional: when the bridge or a Python with wandb cannot be found, one
 * warning line and training continues without it.
 */
#ifndef ICS_TRAIN_WANDB_LAUNCH_H
#define ICS_TRAIN_WANDB_LAUNCH_H

#include <icsparse/config.h>

/* How long ics_wandb_bridge_finish waits for the bridge to close its run. */
#define ICS_WANDB_FINISH_SECONDS 60.0

typedef struct ics_wandb_bridge ics_wandb_bridge;

/* Starts `PYTHON wandb-bridge --run-dir RUN_DIR --follow --pid <this
 * process>` with the project, name, effective configuration (written to
 * RUN_DIR/wandb-config.cfg) and recipe of cfg. Where things are looked for:
 *   the bridge: $ICSPARSE_WANDB_BRIDGE, else the installed copy
 *     ($(pkglibexecdir)/wandb-bridge) and the source tree's tools/wandb-bridge
 *     (the installed one first when this executable is installed);
 *   Python: $ICSPARSE_WANDB_PYTHON, else configure's PYTHON_TORCH, then
 *     python3 on PATH: the first that finds the wandb package.
 * Returns NULL, after one warning line, when it cannot start it. */
ics_wandb_bridge *ics_wandb_bridge_start(const ics_config *cfg, const char *run_dir);

/* Asks the bridge to finish (SIGTERM: it reads the rest of metrics.jsonl
 * and closes the run), waits up to wait_seconds, then kills it with a
 * warning. Call after the loggers are closed. Frees b; NULL is a no-op. */
void ics_wandb_bridge_finish(ics_wandb_bridge *b, double wait_seconds);

#endif
