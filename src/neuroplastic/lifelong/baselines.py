"""The baselines DEN is compared with (the paper's DNN-L2/fine-tuning, DNN-EWC and DNN-STL), as
plain torch multi-head MLPs: one trunk shared by the tasks and one output head per task.

* FineTune: every task trains the trunk and its own head from where the last task left them.
* EWC (Kirkpatrick et al. 2017): fine-tuning plus λ/2 Σ_s Σ_i F_s,i (θ_i − θ*_s,i)² for every
  earlier task s, with F_s the diagonal empirical Fisher (squared per-sample gradients of the
  log-likelihood of the true labels, `torch.func`) at the end of task s.
* NetPerTask: a fresh trunk and head per task (no sharing, no forgetting, T times the size).
"""
from __future__ import annotations

import torch
from torch import nn

from ..core.validate import check_int, check_number
from ..errors import ConfigError
from .data import inputs, labels, task_index


class MultiHead(nn.Module):
    def __init__(self, n_in: int, hidden: list[int], n_classes: int, n_heads: int):
        super().__init__()
        layers, width = [], n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(width, n_classes) for _ in range(n_heads))

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.heads[t](self.trunk(x))


def _check_task(learner, t, x, y):
    t = task_index(t)
    if t != learner.tasks_seen or t >= learner.n_tasks:
        raise ConfigError(f"task {t} is out of order: {learner.tasks_seen} of {learner.n_tasks} tasks learnt, "
                          f"so the next is task {learner.tasks_seen}")
    x = inputs(x, learner.n_in, f"task {t}")
    return x, labels(y, len(x), learner.n_classes, f"task {t}")


class FineTune:
    """Sequential fine-tuning of a shared trunk with one head per task."""

    def __init__(self, n_in: int, hidden, n_classes: int, n_tasks: int, *, seed: int = 0, lr: float = 1e-3,
                 batch_size: int = 64, epochs: int = 20):
        self.n_in, self.hidden = check_int(n_in, "n_in", 1), [check_int(h, "hidden width", 1) for h in hidden]
        self.n_classes, self.n_tasks = check_int(n_classes, "n_classes", 2), check_int(n_tasks, "n_tasks", 2)
        self.lr, self.batch_size = check_number(lr, "lr", above=0), check_int(batch_size, "batch_size", 1)
        self.epochs, self.seed = check_int(epochs, "epochs", 1), check_int(seed, "seed", 0, 2**63 - 1)
        torch.manual_seed(seed)
        self.model = MultiHead(self.n_in, self.hidden, self.n_classes, self.n_tasks)
        self.tasks_seen = 0

    def penalty(self, model: MultiHead) -> torch.Tensor | float:
        return 0.0

    def _fit(self, model: MultiHead, t: int, x, y) -> float:
        params = list(model.trunk.parameters()) + list(model.heads[t].parameters())
        opt = torch.optim.Adam(params, lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed * 1000 + t)
        for _ in range(self.epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), self.batch_size):
                idx = order[i:i + self.batch_size]
                loss = nn.functional.cross_entropy(model(x[idx], t), y[idx]) + self.penalty(model)
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            return float(nn.functional.cross_entropy(model(x, t), y))

    def learn(self, t: int, x, y) -> dict:
        x, y = _check_task(self, t, x, y)
        loss = self._fit(self.model, t, x, y)
        self.after_task(t, x, y)
        self.tasks_seen = t + 1
        return {"task": t, "loss": loss, "n_params": self.n_params}

    def after_task(self, t: int, x, y) -> None:
        pass

    def model_for(self, t: int) -> MultiHead:
        return self.model

    @torch.no_grad()
    def predict(self, x, t: int) -> torch.Tensor:
        t = task_index(t)
        if not t < self.tasks_seen:
            raise ConfigError(f"task {t} has not been learnt ({self.tasks_seen} tasks learnt)")
        return self.model_for(t)(inputs(x, self.n_in, f"task {t}"), t)

    def accuracy(self, x, y, t: int) -> float:
        logits = self.predict(x, t)
        return float((logits.argmax(1) == labels(y, len(logits), self.n_classes, f"task {t}")).float().mean())

    @property
    def n_params(self) -> int:
        """The trunk and the heads of the tasks seen so far."""
        trunk = sum(p.numel() for p in self.model.trunk.parameters())
        return trunk + max(self.tasks_seen, 1) * sum(p.numel() for p in self.model.heads[0].parameters())


class EWC(FineTune):
    """Fine-tuning with the elastic weight consolidation penalty on the shared trunk."""

    def __init__(self, *args, lam: float = 100.0, fisher_samples: int = 1000, **kwargs):
        super().__init__(*args, **kwargs)
        self.lam = check_number(lam, "ewc_lambda", minimum=0)
        self.fisher_samples = check_int(fisher_samples, "fisher_samples", 1)
        self.anchors: list[tuple[dict, dict]] = []   # per earlier task: (θ*, F) of the trunk

    def penalty(self, model: MultiHead):
        if not self.anchors:
            return 0.0
        total = 0.0
        for star, fisher in self.anchors:
            for name, p in model.trunk.named_parameters():
                total = total + (fisher[name] * (p - star[name]) ** 2).sum()
        return self.lam / 2 * total

    def after_task(self, t: int, x, y) -> None:
        from torch.func import functional_call, grad, vmap
        model = self.model
        params = {k: v.detach() for k, v in model.named_parameters() if k.startswith("trunk.") or
                  k.startswith(f"heads.{t}.")}

        def log_lik(p, xi, yi):
            out = functional_call(model, p, (xi[None], t))
            return nn.functional.log_softmax(out, 1).gather(1, yi.view(1, 1)).sum()
        n = min(self.fisher_samples, len(x))
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed + t))[:n]
        grads = vmap(grad(log_lik), in_dims=(None, 0, 0))(params, x[idx], y[idx])
        fisher = {k[len("trunk."):]: (g ** 2).mean(0) for k, g in grads.items() if k.startswith("trunk.")}
        star = {k: v.detach().clone() for k, v in model.trunk.named_parameters()}
        self.anchors.append((star, fisher))


class NetPerTask(FineTune):
    """A separate network (trunk and head) for every task."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.models: list[MultiHead] = []

    def learn(self, t: int, x, y) -> dict:
        x, y = _check_task(self, t, x, y)
        torch.manual_seed(self.seed * 1000 + t)
        model = MultiHead(self.n_in, self.hidden, self.n_classes, self.n_tasks)
        loss = self._fit(model, t, x, y)
        self.models.append(model)
        self.tasks_seen = t + 1
        return {"task": t, "loss": loss, "n_params": self.n_params}

    def model_for(self, t: int) -> MultiHead:
        return self.models[t]

    @property
    def n_params(self) -> int:
        one = sum(p.numel() for p in self.model.trunk.parameters()) + \
            sum(p.numel() for p in self.model.heads[0].parameters())
        return max(self.tasks_seen, 1) * one
