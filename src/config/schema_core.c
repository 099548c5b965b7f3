/*
 * Schema sections owned by the foundation: run, log, model, train, recipe,
 * distill, eval, export, consolidate, pipeline, site, slurm, mpi.
 * Fields: key, type, default (text), min, max (min > max: no range),
 * choices (strings), one-line doc.
 */
#include "ics_build_config.h"
#include "config/schema.h"

#define NO_RANGE 1, 0
#define BIG 1e15

const ics_config_key ics_schema_core[] = {
    /* run */
    {"run.dir", ICS_CFG_STRING, "runs/fashion-mnist", NO_RANGE, NULL,
     "run directory: checkpoints, logs, metrics, exports"},
    {"run.name", ICS_CFG_STRING, "", NO_RANGE, NULL, "run name shown in logs (empty: the directory's name)"},
    {"run.seed", ICS_CFG_INT, "42", 0, 2147483647, NULL, "seed of every random stream (init, shuffle, augmentation)"},

    /* log */
    {"log.level", ICS_CFG_STRING, "info", NO_RANGE, "debug|info|warn|error|quiet", "lowest level printed"},
    {"log.every_steps", ICS_CFG_INT, "50", 1, 1e9, NULL, "one progress line every N optimizer steps in batch logs"},
    {"log.progress", ICS_CFG_STRING, "auto", NO_RANGE, "auto|bar|lines|none",
     "progress bar on a terminal, lines in batch logs (auto picks)"},
    {"log.jsonl", ICS_CFG_BOOL, "true", NO_RANGE, NULL, "write RUN/metrics.jsonl"},
    {"log.tensorboard", ICS_CFG_BOOL, "true", NO_RANGE, NULL, "write TensorBoard event files under RUN/tensorboard"},
    {"log.wandb", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "write a Weights & Biases offline run (needs the wandb package)"},
    {"log.wandb_project", ICS_CFG_STRING, "icsparse", NO_RANGE, NULL, "W&B project name"},

    /* model */
    {"model.arch", ICS_CFG_STRING, "simple_cnn", NO_RANGE,
     "simple_cnn|lenet|resnet18|resnet34|resnet50|resnet101|mobilenet_v2|vgg11_bn|vgg16_bn", "architecture key"},
    {"model.num_classes", ICS_CFG_INT, "0", 0, 1000000, NULL, "classes (0: from the dataset)"},
    {"model.in_channels", ICS_CFG_INT, "0", 0, 64, NULL, "input channels (0: from the dataset)"},
    {"model.width_mult", ICS_CFG_FLOAT, "1.0", 0.05, 8, NULL, "width multiplier (mobilenet_v2)"},
    {"model.cifar_stem", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "ResNet stem for small images: 3x3 conv1, no max pool"},
    {"model.dropout", ICS_CFG_FLOAT, "-1", -1, 0.99, NULL, "classifier dropout (-1: the architecture's default)"},
    {"model.init_from", ICS_CFG_STRING, "", NO_RANGE, NULL,
     "initial weights: an icsparse checkpoint (.h5) or a PyTorch/SparseZoo file (.pth)"},

    /* train */
    {"train.epochs", ICS_CFG_FLOAT, "5", 0, 1e6, NULL, "epochs to train (a recipe's epoch range takes precedence)"},
    {"train.batch_size", ICS_CFG_INT, "128", 1, 1 << 20, NULL, "micro-batch size per rank"},
    {"train.grad_accum_steps", ICS_CFG_INT, "1", 1, 4096, NULL, "micro-batches per optimizer step"},
    {"train.threads", ICS_CFG_INT, "0", 0, 1024, NULL, "compute threads per rank (0: cores / local ranks)"},
    {"train.label_smoothing", ICS_CFG_FLOAT, "0", 0, 0.999, NULL, "cross-entropy label smoothing"},
    {"train.amp", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "mixed precision (switched off while QAT is active)"},
    {"train.device", ICS_CFG_STRING, "cpu", NO_RANGE, "cpu|cuda", "compute device"},
    {"train.dp_devices", ICS_CFG_INT, "1", 1, 64, NULL,
     "data-parallel replicas driven by one process (threads on CPU, GPUs with CUDA)"},
    {"train.sync_bn", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "synchronize BatchNorm statistics across ranks"},
    {"train.eval_every_steps", ICS_CFG_INT, "0", 0, 1e12, NULL, "also evaluate every N optimizer steps (0: per epoch only)"},
    {"train.eval_batch_size", ICS_CFG_INT, "256", 1, 1 << 20, NULL, "batch size for evaluation"},
    {"train.test_at_end", ICS_CFG_BOOL, "true", NO_RANGE, NULL, "evaluate the test split after the last epoch"},
    {"train.checkpoint_every_minutes", ICS_CFG_FLOAT, "30", 0, 1e6, NULL,
     "also write the last checkpoint every N minutes (0: per epoch only)"},
    {"train.checkpoint_sharded", ICS_CFG_BOOL, "false", NO_RANGE, NULL,
     "every rank writes its part of the optimizer state (NAME.part-K-of-N.ID beside the checkpoint)"},
    {"train.keep_last", ICS_CFG_INT, "2", 0, 1000000, NULL, "per-epoch checkpoints to keep (0: only last and best)"},
    {"train.save_best_after", ICS_CFG_FLOAT, "1", 0, 1e6, NULL, "best checkpoints only from this epoch on"},
    {"train.resume", ICS_CFG_STRING, "auto", NO_RANGE, NULL,
     "auto: continue from RUN/ckpt/last.h5 if present; never; or a checkpoint path"},
    {"train.max_steps_per_epoch", ICS_CFG_INT, "0", 0, 1e12, NULL, "cap optimizer steps per epoch (0: whole epoch)"},

    /* recipe */
    {"recipe.path", ICS_CFG_STRING, "", NO_RANGE, NULL,
     "SparseML recipe (.yaml or .md); empty: dense training. jobs/submit-pipeline also takes a comma list, one recipe "
     "per stage"},
    {"recipe.args", ICS_CFG_STRING, "", NO_RANGE, NULL, "recipe variable overrides, a JSON or YAML mapping"},
    {"recipe.stage", ICS_CFG_INT, "-1", -1, 1000, NULL, "train only this stage of a staged recipe (-1: all)"},

    /* distillation */
    {"distill.teacher", ICS_CFG_STRING, "", NO_RANGE, NULL,
     "teacher for a DistillationModifier: a checkpoint path or \"self\""},
    {"distill.teacher_arch", ICS_CFG_STRING, "", NO_RANGE, NULL, "teacher architecture (empty: from its checkpoint)"},

    /* eval */
    {"eval.checkpoint", ICS_CFG_STRING, "", NO_RANGE, NULL, "checkpoint to evaluate (empty: RUN/model.h5, else RUN/ckpt/best.h5, else last.h5)"},
    {"eval.split", ICS_CFG_STRING, "test", NO_RANGE, "train|val|test", "dataset split to evaluate"},

    /* export */
    {"export.dir", ICS_CFG_STRING, "", NO_RANGE, NULL, "output directory (empty: RUN/export)"},
    {"export.opset", ICS_CFG_INT, "13", 13, 17, NULL, "ONNX opset"},
    {"export.batch_size", ICS_CFG_INT, "0", 0, 1 << 20, NULL, "static batch size (0: dynamic axis \"batch\")"},
    {"export.dynamic_shape", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "dynamic height and width"},
    {"export.fold_bn", ICS_CFG_BOOL, "true", NO_RANGE, NULL, "fold BatchNorm into the preceding convolution"},

    /* consolidate */
    {"consolidate.strip_training_state", ICS_CFG_BOOL, "false", NO_RANGE, NULL,
     "drop optimizer state, EMA and RNG state from the merged checkpoint"},

    /* pipeline (jobs/) */
    {"pipeline.ranks", ICS_CFG_INT, "2", 1, 100000, NULL, "MPI ranks for the training steps"},
    {"pipeline.shard_ranks", ICS_CFG_INT, "2", 1, 100000, NULL, "MPI ranks for the shard step"},
    {"pipeline.steps", ICS_CFG_STRING, "convert,shard,train,consolidate,eval,export", NO_RANGE, NULL,
     "steps jobs/submit-pipeline runs, in this order (train repeats per recipe stage, compose between)"},
    {"pipeline.max_restarts", ICS_CFG_INT, "3", 0, 1000, NULL, "requeues of a preempted training job before giving up"},

    /* site (set by sysadmins in the site file) */
    {"site.data_dir", ICS_CFG_STRING, "", NO_RANGE, NULL, "shared dataset directory (empty: data.dir)"},
    {"site.scratch_dir", ICS_CFG_STRING, "", NO_RANGE, NULL,
     "node-local scratch to stage shards to (empty: no staging); $SLURM_JOB_ID is expanded"},
    {"slurm.partition", ICS_CFG_STRING, "", NO_RANGE, NULL, "default partition (empty: the cluster's default)"},
    {"slurm.account", ICS_CFG_STRING, "", NO_RANGE, NULL, "default account"},
    {"slurm.qos", ICS_CFG_STRING, "", NO_RANGE, NULL, "default QOS"},
    {"slurm.time", ICS_CFG_STRING, "01:00:00", NO_RANGE, NULL, "time limit of a training job"},
    {"slurm.nodes", ICS_CFG_INT, "1", 1, 100000, NULL, "nodes per training job"},
    {"slurm.cpus_per_task", ICS_CFG_INT, "1", 1, 4096, NULL, "cores per rank"},
    {"slurm.mem", ICS_CFG_STRING, "", NO_RANGE, NULL, "memory per node (sbatch --mem; empty: the default)"},
    {"slurm.gpus_per_node", ICS_CFG_INT, "0", 0, 64, NULL, "GPUs per node"},
    {"slurm.mpi", ICS_CFG_STRING, "pmix", NO_RANGE, "pmix|pmi2|none", "srun --mpi plugin"},
    {"slurm.signal_seconds", ICS_CFG_INT, "120", 0, 86400, NULL,
     "seconds before the time limit when USR1 asks training to checkpoint and requeue"},
    {"slurm.extra_args", ICS_CFG_STRING, "", NO_RANGE, NULL, "extra sbatch arguments for every job"},
    {"mpi.mpirun_args", ICS_CFG_STRING, "--oversubscribe", NO_RANGE, NULL, "extra mpirun arguments (local executor)"},
    {"nccl.socket_ifname", ICS_CFG_STRING, "", NO_RANGE, NULL, "NCCL_SOCKET_IFNAME for GPU jobs"},
    {"nccl.ib_disable", ICS_CFG_BOOL, "false", NO_RANGE, NULL, "NCCL_IB_DISABLE for GPU jobs"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
