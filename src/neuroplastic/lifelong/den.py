"""Dynamically Expandable Networks (Yoon, Yang, Lee & Hwang, ICLR 2018) on a GraphNet.

A task sequence t = 0, 1, ... arrives one task at a time, each with its own output head (the
repo's setting: permuted digits keep all 10 classes per task, split digits 2). Per task:

1. t = 0: train the whole net with an L1 penalty (Eq. 2); the weights it drives to zero are
   removed from the GraphNet, so the net is sparse.
2. t > 0, selective retraining (Alg. 2): connect a new head for t to the top hidden layer and
   fit only it, with L1 (Eq. 3); walk down from the head along the non-zero edges to find the
   subnetwork S it uses (a breadth-first search, one tensor step per layer); retrain only the
   edges inside S with an L2 penalty (Eq. 4).
3. Dynamic expansion (Alg. 3): if the training loss is still above `loss_threshold` (τ), add
   `k` units to every hidden layer and train only their edges (and the head), with L1 and a
   group lasso on each new unit's incoming weights (Eq. 5); the new units the group lasso
   switches off are removed.
4. Split / duplication (Alg. 4): retrain with a penalty λ||W − W^{t−1}||² (Eq. 6); every
   older hidden unit whose incoming weights moved by ρ_i = ||w_i^t − w_i^{t−1}||₂ >
   `drift_threshold` (σ; at most `k` of them, the largest drifts) is duplicated: the copy
   keeps the new weights and the original gets its old ones back; then retrain (Eq. 6 again).
5. Timestamps: every unit records the task it was born in; task s is evaluated with the units
   born at s or before only (`view(s)`: the later ones removed from a copy of the net).

Every structural change (new heads, new units, their edges, removing zeroed edges and
switched-off units, duplicating) is one `Edits` applied to the GraphNet. Freezing is a mask
on the gradient of the flat weight Parameter; the L1 and group-lasso steps are proximal
(soft-thresholding after each Adam step, the repo's way, which makes weights exactly zero).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..core.edits import Edits
from ..core.graph import GraphNet
from ..core.validate import check_bool, check_int, check_number
from ..errors import ConfigError
from .data import inputs, labels, task_index


@dataclass
class DENConfig:
    """The DEN hyper-parameters; defaults from the authors' permuted-MNIST run (jaehong31/DEN):
    k = 10 units per expansion, τ = 0.01, σ = 0.05, L1 1e-5 and group lasso 1e-3 per step
    (proximal, not scaled by the learning rate), L2 1e-4, drift penalty 0.5, Adam 1e-3."""

    k: int = 10                    # units added to each hidden layer per expansion (and max. splits)
    loss_threshold: float = 0.01   # τ: expand when the loss after selective retraining is above it
    drift_threshold: float = 0.05  # σ: duplicate a unit whose incoming weights moved more
    l1: float = 1e-5               # proximal L1 step per optimizer step
    group_lasso: float = 1e-3      # proximal group-lasso step per optimizer step (new units' incoming weights)
    l2: float = 1e-4               # L2 penalty in selective retraining (Eq. 4)
    drift_penalty: float = 0.5     # λ of Eq. 6
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 20               # epochs of each training phase
    head_epochs: int = 5           # epochs fitting a new head alone (Alg. 2, step 1)
    split: bool = True
    expand: bool = True

    def __post_init__(self):
        self.k = check_int(self.k, "k", 1)
        self.loss_threshold = check_number(self.loss_threshold, "loss_threshold", minimum=0)
        self.drift_threshold = check_number(self.drift_threshold, "drift_threshold", above=0)
        for name in ("l1", "group_lasso", "l2", "drift_penalty"):
            setattr(self, name, check_number(getattr(self, name), name, minimum=0))
        self.lr = check_number(self.lr, "lr", above=0)
        for name in ("batch_size", "epochs", "head_epochs"):
            setattr(self, name, check_int(getattr(self, name), name, 1))
        self.split, self.expand = check_bool(self.split, "split"), check_bool(self.expand, "expand")


def _keys(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    return (src.long() << 32) | dst.long()


class DEN:
    """A DEN learner over `n_tasks` tasks of `n_classes` classes each, on an MLP trunk `hidden`.

    `learn(t, x, y)` learns task t (tasks in order 0, 1, ...); `predict(x, t)` gives task t's
    logits with the units born up to t; `history` holds one dict per task of what happened."""

    def __init__(self, n_in: int, hidden, n_classes: int, n_tasks: int, *, seed: int = 0, **config):
        self.n_in, self.n_classes = check_int(n_in, "n_in", 1), check_int(n_classes, "n_classes", 2)
        self.n_tasks = check_int(n_tasks, "n_tasks", 2)
        unknown = set(config) - set(DENConfig.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown DEN option(s) {sorted(unknown)}; known: "
                              f"{', '.join(DENConfig.__dataclass_fields__)}")
        self.config = DENConfig(**config)
        self.seed = check_int(seed, "seed", 0, 2**63 - 1)
        self.gen = torch.Generator().manual_seed(self.seed)
        net = GraphNet.mlp(n_in, hidden, n_tasks * n_classes, activation="relu", seed=seed)
        self.depth = len(net.plan().levels)   # hidden layers + the output layer
        level = net.levels().clone()
        self.layer = torch.where(level >= 0, level, -1)   # per neuron id: 0 inputs, 1.. hidden, depth outputs
        self.birth = torch.zeros(net.capacity, dtype=torch.long)
        src, dst, _ = net.edges()
        later = dst.long() >= n_in + n_classes        # heads of tasks > 0 start unconnected
        net.apply_edits(Edits().remove_edges(src[later & (dst.long() < n_in + net.n_out)],
                                             dst[later & (dst.long() < n_in + net.n_out)]))
        self.net = net
        self.tasks_seen = 0
        self.history: list[dict] = []

    # ------------------------------------------------------------------ bookkeeping
    def head(self, t: int) -> torch.Tensor:
        """Neuron ids of task t's output head."""
        return self.n_in + self.columns(t)

    def columns(self, t: int) -> torch.Tensor:
        """Columns of the net's output that are task t's logits."""
        return torch.arange(t * self.n_classes, (t + 1) * self.n_classes)

    def hidden_ids(self, layer: int | None = None) -> torch.Tensor:
        alive = self.net.neuron_alive.cpu()
        mask = alive & (self.layer > 0) & (self.layer < self.depth)
        if layer is not None:
            mask &= self.layer == layer
        return mask.nonzero().squeeze(1)

    def _fit_storage(self) -> None:
        """Per-neuron bookkeeping as long as the net's neuron storage (it doubles when full)."""
        cap = self.net.capacity
        if len(self.layer) < cap:
            grow = cap - len(self.layer)
            self.layer = torch.cat([self.layer, torch.full((grow,), -1, dtype=self.layer.dtype)])
            self.birth = torch.cat([self.birth, torch.zeros(grow, dtype=torch.long)])

    @property
    def n_params(self) -> int:
        """Live weights plus the biases of the hidden units and of the heads in use."""
        return self.net.n_edges + len(self.hidden_ids()) + self.tasks_seen * self.n_classes

    def units_per_layer(self) -> list[int]:
        return [len(self.hidden_ids(layer)) for layer in range(1, self.depth)]

    # ------------------------------------------------------------------ structure (all through Edits)
    def _add_units(self, counts: list[int], t: int) -> list[torch.Tensor]:
        """`counts[l]` unconnected hidden units for layer l + 1, born at t; their ids."""
        e = Edits.from_tensors(add_neurons=sum(counts))
        self.net.apply_edits(e)
        self._fit_storage()
        ids = torch.tensor([int(r) for r in e.new_neurons], dtype=torch.long)
        out, at = [], 0
        for layer, c in enumerate(counts, start=1):
            self.layer[ids[at:at + c]] = layer
            self.birth[ids[at:at + c]] = t
            out.append(ids[at:at + c])
            at += c
        return out

    def _init_weights(self, n: int, fan_in: torch.Tensor) -> torch.Tensor:
        """nn.Linear's U(±1/sqrt(fan_in)) for n edges with the given fan-ins."""
        return (torch.rand(n, generator=self.gen, dtype=torch.float64) * 2 - 1) * fan_in.double().clamp(min=1).rsqrt()

    def _connect(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """All pairs src x dst as edges (initial weights); returns (src, dst, w) tensors."""
        s = src.repeat(len(dst))
        d = dst.repeat_interleave(len(src))
        return s, d, self._init_weights(len(s), torch.full((len(s),), len(src)))

    def _open_head(self, t: int) -> None:
        top = self.hidden_ids(self.depth - 1)
        s, d, w = self._connect(top, self.head(t))
        self.net.apply_edits(Edits().add_edges(s, d, w))

    def _drop_zero_edges(self) -> int:
        """Edges the proximal steps set to exactly zero leave the graph (the net stays sparse)."""
        src, dst, w = self.net.edges()
        zero = w == 0
        if bool(zero.any()):
            self.net.apply_edits(Edits().remove_edges(src[zero], dst[zero]))
        return int(zero.sum())

    # ------------------------------------------------------------------ training
    def _slot_masks(self, trainable_dst: torch.Tensor, trainable_src: torch.Tensor | None = None) -> torch.Tensor:
        """Edge-slot mask: live edges whose target (and source, if given) the per-neuron masks allow."""
        net = self.net
        src, dst = net.edge_src.long().cpu(), net.edge_dst.long().cpu()
        alive = src >= 0
        s, d = src.clamp(min=0), dst.clamp(min=0)
        mask = alive & trainable_dst[d]
        if trainable_src is not None:
            mask &= trainable_src[s]
        return mask

    def _neuron_mask(self, ids: torch.Tensor) -> torch.Tensor:
        m = torch.zeros(self.net.capacity, dtype=torch.bool)
        m[ids] = True
        return m

    def _train(self, t: int, x: torch.Tensor, y: torch.Tensor, edge_mask: torch.Tensor, bias_mask: torch.Tensor,
               epochs: int, *, l1_mask=None, group_units=None, l2: float = 0.0, anchor=None) -> float:
        """Adam on the edges in `edge_mask` and biases in `bias_mask` only (the rest frozen by a
        gradient mask), cross-entropy on task t's head; proximal L1 on `l1_mask`, group lasso on
        the incoming weights of `group_units`; L2 `l2` on the trained edges; with `anchor` =
        (slots, old weights) the drift penalty of Eq. 6. Returns the final full-batch loss."""
        cfg, net = self.config, self.net
        dev = net.weight.device
        edge_mask, bias_mask = edge_mask.to(dev), bias_mask.to(dev)
        head = self.columns(t).to(dev)
        opt = torch.optim.Adam([net.weight, net.bias], lr=cfg.lr)
        gen = torch.Generator().manual_seed(self.seed * 1000 + t)
        l1_mask = None if l1_mask is None or cfg.l1 == 0 else l1_mask.to(dev)
        groups = None
        if group_units is not None and len(group_units) and cfg.group_lasso > 0:
            into = self._slot_masks(self._neuron_mask(group_units)).to(dev)
            groups = (into, net.edge_dst.long().clamp(min=0))
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                loss = nn.functional.cross_entropy(net(x[idx])[:, head], y[idx])
                if l2:
                    loss = loss + l2 * (net.weight[edge_mask] ** 2).sum()
                if anchor is not None:
                    slots, old = anchor
                    loss = loss + cfg.drift_penalty / 2 * ((net.weight[slots] - old) ** 2).sum()
                opt.zero_grad(set_to_none=False)
                loss.backward()
                with torch.no_grad():
                    net.weight.grad.mul_(edge_mask)
                    net.bias.grad.mul_(bias_mask)
                opt.step()
                with torch.no_grad():
                    if l1_mask is not None:   # soft threshold: small weights become exactly zero
                        w = net.weight[l1_mask]
                        net.weight[l1_mask] = w.sign() * (w.abs() - cfg.l1).clamp(min=0)
                    if groups is not None:    # each new unit's incoming group shrinks as one
                        into, dst = groups
                        sq = torch.zeros(net.capacity, device=dev).index_add_(
                            0, dst[into], net.weight[into].float() ** 2)
                        scale = (1 - cfg.group_lasso / sq.sqrt().clamp(min=1e-12)).clamp(min=0)
                        net.weight[into] *= scale[dst[into]].to(net.weight.dtype)
        net.weight.grad = net.bias.grad = None   # the phase's optimizer is done with them
        with torch.no_grad():
            return float(nn.functional.cross_entropy(net(x)[:, head], y))

    def expansion_needed(self, loss: float) -> bool:
        """Alg. 1: expand when the loss after selective retraining stays above τ."""
        return self.config.expand and loss > self.config.loss_threshold

    def _selected(self, t: int) -> torch.Tensor:
        """Alg. 2's breadth-first search: from task t's head down the non-zero edges, the
        hidden units the task uses (a per-neuron mask), one tensor step per layer."""
        src, dst, w = self.net.edges()
        src, dst, live = src.long().cpu(), dst.long().cpu(), (w != 0).cpu()
        selected = self._neuron_mask(self.head(t))
        for _ in range(self.depth - 1):
            hit = live & selected[dst]
            selected[src[hit]] = True
        selected[: self.n_in] = False
        return selected

    def _snapshot(self):
        src, dst, w = self.net.edges()
        keys = _keys(src.cpu(), dst.cpu())
        order = torch.argsort(keys)
        return keys[order], w.detach().cpu()[order].clone()

    def _anchor(self, snap, edge_mask: torch.Tensor):
        """(slots, old weights) of the trained edges that existed at t − 1 (Eq. 6's W^{t−1})."""
        keys, old = snap
        net = self.net
        slots = edge_mask.nonzero().squeeze(1)
        k = _keys(net.edge_src[slots].cpu(), net.edge_dst[slots].cpu())
        pos = torch.searchsorted(keys, k).clamp(max=max(len(keys) - 1, 0))
        found = keys[pos] == k if len(keys) else torch.zeros(len(k), dtype=torch.bool)
        dev = net.weight.device
        return slots[found].to(dev), old[pos[found]].to(dev, net.weight.dtype)

    def _drift(self, snap, t: int) -> torch.Tensor:
        """ρ_i = ||w_i^t − w_i^{t−1}||₂ over the incoming edges of every unit born before t
        (an edge present at one time only counts with its weight at the other as 0)."""
        keys_old, w_old = snap
        src, dst, w = self.net.edges()
        keys_now = _keys(src.cpu(), dst.cpu())
        keys = torch.cat([keys_old, keys_now])
        vals = torch.cat([-w_old.double(), w.detach().cpu().double()])
        uniq, inv = torch.unique(keys, return_inverse=True)
        diff = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inv, vals)
        targets = (uniq & 0xFFFFFFFF).long()
        rho = torch.zeros(self.net.capacity, dtype=torch.float64).index_add_(0, targets, diff ** 2).sqrt()
        old_hidden = torch.zeros(self.net.capacity, dtype=torch.bool)
        old_hidden[self.hidden_ids()] = True
        old_hidden &= self.birth < t
        return torch.where(old_hidden, rho, torch.zeros_like(rho))

    def _split(self, snap, t: int) -> torch.Tensor:
        """Alg. 4: duplicate the (at most k) units of largest drift above σ. The copy, born at
        t, takes the unit's current incoming and outgoing edges; the unit gets its incoming
        weights of t − 1 back, so the older tasks see it as they learnt it. Edges into task t's
        head and into units born at t move to the copy; between two split units, copy to copy.
        Returns the units that were split."""
        rho = self._drift(snap, t)
        over = (rho > self.config.drift_threshold).nonzero().squeeze(1)
        if not len(over):
            return over
        units = over[torch.argsort(rho[over], descending=True)[: self.config.k]]
        layers = self.layer[units]
        counts = [int((layers == layer).sum()) for layer in range(1, self.depth)]
        new = torch.cat(self._add_units(counts, t))
        order = torch.cat([units[layers == layer] for layer in range(1, self.depth)])
        copy_of = torch.full((self.net.capacity,), -1, dtype=torch.long)
        copy_of[order] = new
        with torch.no_grad():
            self.net.bias[new] = self.net.bias[order]
        src, dst, w = (a.cpu() for a in self.net.edges())
        src, dst, w = src.long(), dst.long(), w.detach()
        into = copy_of[dst] >= 0
        out = copy_of[src] >= 0
        moved = out & ((self.birth[dst] == t) | torch.isin(dst, self.head(t)))
        keys_old, w_old = snap
        k_in = _keys(src[into], dst[into])
        pos = torch.searchsorted(keys_old, k_in).clamp(max=len(keys_old) - 1)
        had = keys_old[pos] == k_in
        e = Edits()
        from_copy = torch.where(copy_of[src[into]] >= 0, copy_of[src[into]], src[into])
        e.add_edges(from_copy, copy_of[dst[into]], w[into])
        e.add_edges(copy_of[src[out]], dst[out], w[out])
        e.set_weights(src[into][had], dst[into][had], w_old[pos[had]])
        e.remove_edges(src[into][~had], dst[into][~had])   # edges the unit gained in task t stay with the copy
        e.remove_edges(src[moved], dst[moved])
        self.net.apply_edits(e)
        return units

    # ------------------------------------------------------------------ the algorithm
    def learn(self, t: int, x, y) -> dict:
        """Learn task t (0, 1, ... in order) from (x, y): y holds class ids 0..n_classes-1."""
        t = task_index(t)
        if t != self.tasks_seen or t >= self.n_tasks:
            raise ConfigError(f"task {t} is out of order: DEN has learnt {self.tasks_seen} of {self.n_tasks} tasks, "
                              f"so the next is task {self.tasks_seen}")
        x = inputs(x, self.n_in, f"task {t}", self.net.weight.dtype)
        y = labels(y, len(x), self.n_classes, f"task {t}")
        cfg = self.config
        log = {"task": t, "expanded": False, "added": [0] * (self.depth - 1), "removed_new": 0, "split": 0}
        cap = self.net.capacity
        all_edges = self._slot_masks(torch.ones(cap, dtype=torch.bool))
        other_heads = torch.zeros(cap, dtype=torch.bool)
        other_heads[self.n_in:self.n_in + self.net.n_out] = True
        other_heads[self.head(t)] = False
        if t == 0:
            # Eq. 2: the whole net with L1 (the heads of later tasks have no edges yet)
            biases = torch.ones(cap, dtype=torch.bool) & ~other_heads
            log["loss"] = self._train(t, x, y, all_edges, biases, cfg.epochs, l1_mask=all_edges)
            log["zeroed"] = self._drop_zero_edges()
        else:
            snap = self._snapshot()
            self._open_head(t)
            cap = self.net.capacity
            head = self._neuron_mask(self.head(t))
            into_head = self._slot_masks(head)
            # Alg. 2 step 1 (Eq. 3): the new head alone, with L1
            log["head_loss"] = self._train(t, x, y, into_head, head, cfg.head_epochs, l1_mask=into_head)
            # step 2: the subnetwork S the head reaches; step 3 (Eq. 4): retrain S only, with L2
            selected = self._selected(t)
            log["selected"] = int(selected[self.n_in + self.net.n_out:].sum())
            inside = self._slot_masks(selected, selected | (torch.arange(cap) < self.n_in))
            log["loss"] = self._train(t, x, y, inside, selected, cfg.epochs, l2=cfg.l2)
            log["expansion_loss"] = log["loss"]
            if self.expansion_needed(log["loss"]):
                log.update(self._expand(t, x, y))
            if cfg.split:
                # Eq. 6: everything but the other heads, pulled towards W^{t-1}; then split
                cap = self.net.capacity
                trainable = ~other_heads
                if len(trainable) < cap:
                    trainable = torch.cat([trainable, torch.ones(cap - len(trainable), dtype=torch.bool)])
                edges = self._slot_masks(trainable)
                self._train(t, x, y, edges, trainable, cfg.epochs, anchor=self._anchor(snap, edges))
                split = self._split(snap, t)
                log["split"], log["split_units"] = len(split), split.tolist()
                if len(split):  # Eq. 6 again; the originals keep the weights of t - 1
                    cap = self.net.capacity
                    trainable = torch.ones(cap, dtype=torch.bool)
                    trainable[self.n_in:self.n_in + self.net.n_out] = False
                    trainable[self.head(t)] = True
                    trainable[split] = False
                    edges = self._slot_masks(trainable)
                    self._train(t, x, y, edges, trainable, cfg.epochs, anchor=self._anchor(snap, edges))
            with torch.no_grad():
                log["loss"] = float(nn.functional.cross_entropy(self.net(x)[:, self.columns(t)], y))
            log["zeroed"] = self._drop_zero_edges()
        self.tasks_seen = t + 1
        log.update(units=self.units_per_layer(), n_params=self.n_params, n_edges=self.net.n_edges)
        self.history.append(log)
        return log

    def _expand(self, t: int, x, y) -> dict:
        """Alg. 3: k new units per hidden layer, each fed by every unit of the layer below (old
        and new), the top ones feeding task t's head; only their edges and the head train,
        with L1 and the group lasso; then the units it switched off go."""
        cfg = self.config
        new = self._add_units([cfg.k] * (self.depth - 1), t)
        e = Edits()
        for layer, ids in enumerate(new, start=1):
            below = torch.arange(self.n_in) if layer == 1 else self.hidden_ids(layer - 1)
            e.add_edges(*self._connect(below, ids))
        e.add_edges(*self._connect(new[-1], self.head(t)))
        self.net.apply_edits(e)
        cap = self.net.capacity
        units = torch.cat(new)
        train_dst = self._neuron_mask(torch.cat([units, self.head(t)]))
        # the new units' incoming and outgoing edges, and everything into task t's head
        edges = self._slot_masks(train_dst) | self._slot_masks(torch.ones(cap, dtype=torch.bool),
                                                               self._neuron_mask(units))
        loss = self._train(t, x, y, edges, train_dst, cfg.epochs, l1_mask=edges, group_units=units)
        src, dst, w = self.net.edges()
        group = torch.zeros(cap, dtype=torch.float64).index_add_(0, dst.long().cpu(), w.detach().cpu().double() ** 2)
        off = units[group[units] == 0]
        if len(off):
            self.net.apply_edits(Edits().remove_neurons(off))
        added = [int(len(ids)) - int(torch.isin(ids, off).sum()) for ids in new]
        return {"expanded": True, "added": added, "removed_new": int(len(off)), "expanded_loss": loss}

    # ------------------------------------------------------------------ inference
    def view(self, t: int) -> GraphNet:
        """The net as task t sees it: a copy without the units born after t (timestamped inference)."""
        net = copy.deepcopy(self.net)
        later = self.hidden_ids()
        later = later[self.birth[later] > t]
        if len(later):
            net.apply_edits(Edits().remove_neurons(later))
        return net

    @torch.no_grad()
    def predict(self, x, t: int) -> torch.Tensor:
        """Task t's logits (units born after t excluded)."""
        t = task_index(t)
        if not t < self.tasks_seen:
            raise ConfigError(f"task {t} has not been learnt (DEN has learnt {self.tasks_seen} tasks)")
        x = inputs(x, self.n_in, f"task {t}", self.net.weight.dtype)
        return self.view(t)(x)[:, self.columns(t)]

    def accuracy(self, x, y, t: int) -> float:
        """The share of rows whose largest logit of task t is their class id."""
        logits = self.predict(x, t)
        return float((logits.argmax(1) == labels(y, len(logits), self.n_classes, f"task {t}")).float().mean())

    def state(self) -> dict:
        return {"config": asdict(self.config), "units": self.units_per_layer(), "n_params": self.n_params,
                "tasks_seen": self.tasks_seen, "history": self.history}


def validate_tasks(n_tasks) -> int:
    n = check_int(n_tasks, "tasks", 1)
    if n < 2:
        raise ConfigError(f"tasks={n}: a task sequence needs at least 2 tasks")
    return n


__all__ = ["DEN", "DENConfig", "validate_tasks"]
