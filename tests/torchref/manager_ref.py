"""PyTorch references for test_manager_torch: SparseML's distillation loss
(value and gradient wrt the student logits) and the torch.optim.lr_scheduler
classes LearningRateModifier wraps, stepped once per optimizer step with
epoch arguments converted to steps (StepLR, MultiStepLR), once per epoch
(ExponentialLR), or with the fractional epoch (CosineAnnealingWarmRestarts).
Usage: manager_ref.py DIR (reads s.npy, t.npy, y.npy; writes results)."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

d = sys.argv[1]
s0 = torch.from_numpy(np.load(os.path.join(d, "s.npy")).astype(np.float64))
t = torch.from_numpy(np.load(os.path.join(d, "t.npy")).astype(np.float64))
y = torch.from_numpy(np.load(os.path.join(d, "y.npy")).astype(np.int64))

# (hardness, temperature, label_smoothing), same list as the C test
configs = [(0.5, 2.0, 0.0), (0.7, 3.0, 0.1), (1.0, 4.0, 0.0), (0.0, 2.0, 0.2), (0.3, 1.0, 0.05)]
for k, (h, temp, ls) in enumerate(configs):
    s = s0.clone().requires_grad_(True)
    task = F.cross_entropy(s, y, label_smoothing=ls)
    kd = F.kl_div(F.log_softmax(s / temp, dim=-1), F.softmax(t / temp, dim=-1),
                  reduction="batchmean") * temp * temp
    loss = (1.0 - h) * task + h * kd
    loss.backward()
    np.save(os.path.join(d, "loss_%d.npy" % k), np.array([loss.item()]))
    np.save(os.path.join(d, "grad_%d.npy" % k), s.grad.numpy())


def run(make, steps, step_fn):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = make(opt)
    out = []
    for k in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        step_fn(sched, k)
    return np.array(out)


spe = 4
every = lambda sched, k: sched.step()
# StepLR: init 0.1, step_size 0.5 epoch = 2 steps, gamma 0.5, from epoch 1
step_lr = run(lambda o: (o.param_groups[0].update(lr=0.1),
                         torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5))[1],
              12, every)
# MultiStepLR: init 0.05 from epoch 3, milestones epochs 4 and 5.5 -> steps 4, 10
multi = run(lambda o: (o.param_groups[0].update(lr=0.05),
                       torch.optim.lr_scheduler.MultiStepLR(o, milestones=[4, 10], gamma=0.1))[1],
            12, every)
# ExponentialLR: init 0.04, gamma 0.9, one step per epoch
expo = run(lambda o: (o.param_groups[0].update(lr=0.04),
                      torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9))[1],
           12, lambda sched, k: sched.step() if (k + 1) % spe == 0 else None)
# CosineAnnealingWarmRestarts: init 0.1, T_0 2 epochs, T_mult 2, eta_min 0.001,
# stepped with the fractional epoch
p = torch.nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([p], lr=0.1)
cawr = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.001)
cos = []
for k in range(40):
    cawr.step(k / spe)
    cos.append(opt.param_groups[0]["lr"])
for name, v in (("lr_step", step_lr), ("lr_multistep", multi), ("lr_exponential", expo),
                ("lr_cawr", np.array(cos))):
    np.save(os.path.join(d, name + ".npy"), v.astype(np.float64))
