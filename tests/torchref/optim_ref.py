"""PyTorch reference for tests/unit/test_optim.c.

Usage: optim_ref.py DIR. Reads what the C test wrote to DIR and writes the
reference results next to it (.npy):
  * optim_cases.txt + p<j>.npy (initial params) + g<j>.npy ([steps, numel]
    gradients): for each case c, runs torch.optim over the same gradients
    and writes traj_<c>_<j>.npy ([steps, numel] params after every step)
    and state_<c>_<j>_<slot>.npy (final optimizer state).
  * clip_cases.txt + clip_g<j>.npy: clip_grad_norm_ results
    (clip_<c>_<j>.npy, clip_norm_<c>.npy).
  * sched_cases.txt: lr per epoch (sched_epoch_<c>.npy) with one
    scheduler.step() per epoch, and lr per iteration (sched_iter_<c>.npy)
    for the same schedule with epoch-measured parameters scaled by
    steps_per_epoch and one scheduler.step() per iteration.
"""
import os
import sys
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")  # SequentialLR's step(0) deprecation notice
torch.set_num_threads(1)
out = sys.argv[1]


def load(name):
    return np.load(os.path.join(out, name + ".npy"))


def save(name, array):
    np.save(os.path.join(out, name + ".npy"), np.ascontiguousarray(array))


def optimizer_cases():
    path = os.path.join(out, "optim_cases.txt")
    if not os.path.exists(path):
        return
    lines = [l.split() for l in open(path) if l.strip()]
    n_params, steps, lr_change_step, lr_change_factor = int(lines[0][0]), int(lines[0][1]), int(lines[0][2]), float(lines[0][3])
    groups_of = [int(x) for x in lines[1]]
    init = [load("p%d" % j) for j in range(n_params)]
    grads = [load("g%d" % j) for j in range(n_params)]
    for c, f in enumerate(lines[2:]):
        kind = f[0]
        lr, momentum, dampening, nesterov = float(f[1]), float(f[2]), float(f[3]), int(f[4])
        beta1, beta2, eps = float(f[5]), float(f[6]), float(f[7])
        wd0, wd1, scale1, zero_at = float(f[8]), float(f[9]), float(f[10]), int(f[11])
        params = [torch.tensor(p.copy(), requires_grad=True) for p in init]
        scales = [1.0, scale1]
        groups = [
            {"params": [p for p, g in zip(params, groups_of) if g == 0], "lr": lr, "weight_decay": wd0},
            {"params": [p for p, g in zip(params, groups_of) if g == 1], "lr": lr * scale1, "weight_decay": wd1},
        ]
        if kind == "sgd":
            opt = torch.optim.SGD(groups, lr=lr, momentum=momentum, dampening=dampening, nesterov=bool(nesterov))
        elif kind == "adam":
            opt = torch.optim.Adam(groups, lr=lr, betas=(beta1, beta2), eps=eps)
        else:
            opt = torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2), eps=eps)
        traj = [np.zeros((steps, p.numel()), np.float32) for p in params]
        for s in range(steps):
            if s == lr_change_step:
                for gi, group in enumerate(opt.param_groups):
                    group["lr"] = lr * lr_change_factor * scales[gi]
            if zero_at and s == zero_at:
                # AC/DC's momentum reset: SparseML multiplies the buffer by 0.
                for p in params:
                    st = opt.state[p]
                    if "momentum_buffer" in st and st["momentum_buffer"] is not None:
                        st["momentum_buffer"].mul_(0.0)
                    if "exp_avg" in st:
                        st["exp_avg"].mul_(0.0)
            for j, p in enumerate(params):
                p.grad = torch.tensor(grads[j][s].reshape(p.shape).copy())
            opt.step()
            for j, p in enumerate(params):
                traj[j][s] = p.detach().numpy().reshape(-1)
        for j, p in enumerate(params):
            save("traj_%d_%d" % (c, j), traj[j])
            for slot in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
                t = opt.state[p].get(slot)
                if t is not None:
                    save("state_%d_%d_%s" % (c, j, slot), t.detach().numpy().reshape(-1))


def clip_cases():
    path = os.path.join(out, "clip_cases.txt")
    if not os.path.exists(path):
        return
    lines = [l.split() for l in open(path) if l.strip()]
    n_params = int(lines[0][0])
    for c, f in enumerate(lines[1:]):
        max_norm = float(f[0])
        params = []
        for j in range(n_params):
            p = torch.zeros(load("clip_g%d" % j).shape, requires_grad=True)
            p.grad = torch.tensor(load("clip_g%d" % j))
            params.append(p)
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        save("clip_norm_%d" % c, np.array([float(norm)], np.float64))
        for j, p in enumerate(params):
            save("clip_%d_%d" % (c, j), p.grad.numpy().reshape(-1))


def make_scheduler(opt, f, spe):
    """f: kind base step_size gamma t_max eta_min warmup warmup_method start_factor epochs milestones...
    spe: iterations per epoch (1: the per-epoch scheduler)."""
    kind, step_size, gamma = f[0], float(f[2]), float(f[3])
    t_max, eta_min, warmup, method, start = float(f[4]), float(f[5]), float(f[6]), f[7], float(f[8])
    milestones = [float(x) for x in f[10:]]
    if kind == "constant":
        main = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    elif kind == "step":
        main = torch.optim.lr_scheduler.StepLR(opt, step_size=round(step_size * spe), gamma=gamma)
    elif kind == "multistep":
        main = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[round(m * spe) for m in milestones], gamma=gamma)
    elif kind == "exponential":
        main = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma ** (1.0 / spe))
    elif kind == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=round(t_max * spe), eta_min=eta_min)
    else:
        raise SystemExit("unknown schedule " + kind)
    if warmup <= 0:
        return main
    iters = round(warmup * spe)
    if method == "linear":
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, total_iters=iters)
    else:
        warm = torch.optim.lr_scheduler.ConstantLR(opt, factor=start, total_iters=iters)
    return torch.optim.lr_scheduler.SequentialLR(opt, schedulers=[warm, main], milestones=[iters])


def schedule_cases():
    path = os.path.join(out, "sched_cases.txt")
    if not os.path.exists(path):
        return
    lines = [l.split() for l in open(path) if l.strip()]
    spe = int(lines[0][0])
    for c, f in enumerate(lines[1:]):
        epochs = int(f[9])
        for tag, per in (("epoch", 1), ("iter", spe)):
            p = torch.zeros(1, requires_grad=True)
            opt = torch.optim.SGD([p], lr=float(f[1]))
            sched = make_scheduler(opt, f, per)
            lrs = []
            for _ in range(epochs * per):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
            save("sched_%s_%d" % (tag, c), np.array(lrs, np.float64))


optimizer_cases()
clip_cases()
schedule_cases()
