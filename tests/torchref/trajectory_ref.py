"""PyTorch reference for tests/unit/test_train_trajectory.c: whole-model
training trajectories (20 optimizer steps) from the same weights and the
same batches as the C side.

Usage: trajectory_ref.py DIR. DIR/cases.txt has one line per case:
  CASE ARCH NUM_CLASSES IN_CHANNELS H W CIFAR_STEM STEPS BATCH
       OPTIM LR MOMENTUM NESTEROV WD NO_DECAY_1D LABEL_SMOOTHING
       SCHED STEPS_PER_EPOCH WARMUP_EPOCHS WARMUP_START T_MAX ETA_MIN STEP_SIZE GAMMA
The architectures are models_ref.py's (torchvision's, re-declared). DIR/CASE/
holds <key>.npy for every state_dict entry (the C side's initial weights,
counters as float), x.npy ([steps, batch, H, W, C], NHWC) and y.npy
([steps, batch] int32 labels). For each case the script trains twice in
float64 and writes, with prefix "" (the truth) and "probe_":
  loss.npy   [steps] the mean cross-entropy of each step's batch, computed
             before that step's update (what the trainer logs)
  lr.npy     [steps] the lr each step used (float64)
  delta_<key>.npy every state_dict entry after the last step minus its
             initial value (<key>.npy), differenced in float64 so that the
             float32 file keeps the update's own precision (num_batches_tracked:
             the count itself).
The probe run starts from the same weights times (1 + PROBE * r), r uniform
in [-1, 1] per element: an initial error of float32-rounding size. How far
its trajectory drifts from the truth is the trajectory's own amplification
of rounding, measured in exact arithmetic; the C test allows a multiple of
it (see test_train_trajectory.c).
"""
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models_ref import build  # noqa: E402  (the same architectures as test_models_torch)

torch.set_num_threads(1)
# SequentialLR calls its main scheduler's step(0) at the milestone.
warnings.filterwarnings("ignore", message="The epoch parameter")

# Relative size of the probe's initial perturbation: 16 float32 ulps
# (2^-24 = 6e-8 each), about what one float32 forward/backward of these
# models gets wrong in a gradient (test_models_torch measures 1e-6).
PROBE = 1e-6


def make_scheduler(opt, kind, spe, warmup, warm_start, t_max, eta_min, step_size, gamma):
    """torch's schedulers stepped once per iteration, with epoch-measured
    lengths scaled by spe iterations per epoch: what the C side's per-step
    schedule (ICS_SCHED_PER_STEP) evaluates in closed form."""
    if kind == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=round(t_max * spe),
                                                          eta_min=eta_min)
    elif kind == "step":
        main = torch.optim.lr_scheduler.StepLR(opt, step_size=round(step_size * spe), gamma=gamma)
    else:
        raise SystemExit("trajectory_ref.py: unknown schedule " + kind)
    if warmup <= 0:
        return main
    iters = round(warmup * spe)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=warm_start, total_iters=iters)
    return torch.optim.lr_scheduler.SequentialLR(opt, schedulers=[warm, main], milestones=[iters])


def make_optimizer(model, kind, lr, momentum, nesterov, wd, no_decay_1d):
    # The parameter-group convention of icsparse's trainer
    # (optim.no_decay_bn_bias): 1-D tensors (BN weights and biases, linear
    # biases) in a group without weight decay.
    params = list(model.parameters())
    if no_decay_1d:
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": wd},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": wd}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=bool(nesterov))
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise SystemExit("trajectory_ref.py: unknown optimizer " + kind)


def run(case_dir, f, prefix, probe):
    arch = f[1]
    classes, in_c, h, w, cifar, steps, batch = (int(v) for v in f[2:9])
    kind, lr, momentum, nesterov = f[9], float(f[10]), float(f[11]), int(f[12])
    wd, no_decay_1d, smoothing = float(f[13]), int(f[14]), float(f[15])
    sched_kind, spe = f[16], int(f[17])
    warmup, warm_start, t_max, eta_min, step_size, gamma = (float(v) for v in f[18:24])

    model = build(arch, classes, in_c, h, w, cifar, 1.0)
    state, init = {}, {}
    for key, t in model.state_dict().items():
        a = np.load(os.path.join(case_dir, key + ".npy"))
        init[key] = a.astype(np.float64).reshape(-1)
        state[key] = torch.from_numpy(a.reshape(tuple(t.shape))).to(t.dtype)
    model.load_state_dict(state)
    model.to(torch.float64)
    if probe:
        rng = np.random.default_rng(12345)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.0 + probe * torch.from_numpy(rng.uniform(-1.0, 1.0, tuple(p.shape))))
    model.train()
    opt = make_optimizer(model, kind, lr, momentum, nesterov, wd, no_decay_1d)
    sched = make_scheduler(opt, sched_kind, spe, warmup, warm_start, t_max, eta_min, step_size,
                           gamma)

    xs = np.load(os.path.join(case_dir, "x.npy"))
    ys = np.load(os.path.join(case_dir, "y.npy")).astype(np.int64)
    assert xs.shape == (steps, batch, h, w, in_c), xs.shape
    losses, lrs = [], []
    for s in range(steps):
        x = torch.from_numpy(xs[s]).permute(0, 3, 1, 2).contiguous().to(torch.float64)
        y = torch.from_numpy(ys[s])
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, label_smoothing=smoothing)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    np.save(os.path.join(case_dir, prefix + "loss.npy"), np.array(losses, np.float64))
    np.save(os.path.join(case_dir, prefix + "lr.npy"), np.array(lrs, np.float64))
    for key, t in model.state_dict().items():
        final = t.detach().numpy().astype(np.float64).reshape(-1)
        delta = final if key.endswith("num_batches_tracked") else final - init[key]
        np.save(os.path.join(case_dir, prefix + "delta_%s.npy" % key), delta.astype(np.float32))


def main():
    root = sys.argv[1]
    with open(os.path.join(root, "cases.txt")) as fh:
        for line in fh:
            f = line.split()
            if not f:
                continue
            case_dir = os.path.join(root, f[0])
            run(case_dir, f, "", 0.0)
            run(case_dir, f, "probe_", PROBE)


if __name__ == "__main__":
    main()
