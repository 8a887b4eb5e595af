"""GraphBatch: P graphs with the same inputs and outputs, run as one tensor program.

Layout (population axis first, padded to the largest member):

* edges, `(P, E_cap)`: `src`, `dst` (int32), `weight`, `edge_alive`;
* neurons, `(P, N_cap)`: `bias`, `activation` (an int8 code, see `ACTIVATION_NAMES`),
  `neuron_alive`.

A member's neuron ids are its own GraphNet ids (gaps left by removed neurons stay gaps), so
`from_nets` / `to_nets` convert exactly and Edits name the same neurons in both forms.

Execution, two kernels with the same results (`kernel="auto"` picks one):

* dense: the live weights are scattered once per forward into a padded `(P, m, m)` block
  holding W^T, and each synchronous sweep h <- act(h W^T + b) is one `torch.baddbmm` over all
  members plus one `torch.where` per activation kind present. In DAG mode inputs are clamped
  and depth-many sweeps reach the exact topological result; members run in order of
  decreasing depth, so sweep k only touches the prefix of members still deeper than k.
  The choice on CUDA.
* sparse: the live neurons of all members are the rows of one state matrix, grouped by DAG
  level, and each level is one sparse (CSR) product with the edges into it, so a forward
  touches every live edge once instead of m^2 slots per sweep. NEAT-sized populations are
  mostly empty blocks; it is the CPU choice (faster there even for fully connected members).

In recurrent mode every member runs `steps` synchronous sweeps, as GraphNet's recurrent mode.
No kernel loops over members: the loops are over sweeps and over the few activation kinds.

Derived state (depth, the scatter index, activation masks) is cached and rebuilt only when a
topology tensor changes, never per forward.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, CycleError, EditError
from .edits import Edits
from .graph import ACTIVATION_NAMES, ACTIVATIONS, GraphNet
from .validate import check_bool, check_choice, check_int

# Activation codes: position in ACTIVATION_NAMES (tanh 0, relu 1, sigmoid 2, identity 3).
_ALIASES = {"linear": "identity"}


def activation_code(name: str) -> int:
    """The int code of an activation name (a key of ACTIVATIONS; 'linear' is 'identity')."""
    name = _ALIASES.get(name, name)
    if name not in ACTIVATION_NAMES:
        raise ConfigError(f"activation={name!r} is not supported; expected one of {sorted(ACTIVATION_NAMES)}")
    return ACTIVATION_NAMES.index(name)


# In-place forms, for the no-gradient path (that is all of a population evaluation).
_IN_PLACE = {"tanh": torch.tanh_, "relu": torch.relu_, "sigmoid": torch.sigmoid_, "identity": None}


def _activate_(name: str, z: torch.Tensor) -> None:
    if name not in _IN_PLACE:
        z.copy_(ACTIVATIONS[name](z))
    elif _IN_PLACE[name] is not None:
        _IN_PLACE[name](z)


@dataclass
class _DensePlan:
    order: torch.Tensor | None   # members by decreasing depth (DAG); None: stored order
    inverse: torch.Tensor | None  # position of each member in `order`
    active: list                 # per sweep: how many leading (sorted) members run it
    w_index: torch.Tensor        # flat positions of the live edges in weight.view(-1)
    w_target: torch.Tensor       # their flat positions in the (P, m, m) block of W^T
    kinds: list                  # (function, (P, 1, m) mask of the neurons computed with it)


@dataclass
class _Stage:
    ra: int                      # state rows [ra, rb) computed by this stage
    rb: int
    ea: int                      # edges [ea, eb) into them (sorted by target row)
    eb: int
    kinds: list                  # (activation name, lo, hi): rows ra+lo..ra+hi use it
    csr: torch.Tensor            # (rb - ra, rows) CSR matrix whose values alias the plan's


@dataclass
class _SparsePlan:
    n_rows: int                  # live neurons of all members
    in_rows: torch.Tensor        # (P * n_in,) rows of the inputs, member-major
    inputs_first: bool           # in_rows is 0..P*n_in-1 (DAG)
    out_rows: torch.Tensor       # (P * n_out,) rows of the outputs, member-major
    bias_index: torch.Tensor     # per row: its position in bias.view(-1)
    w_index: torch.Tensor        # per edge (sorted by target row): position in weight.view(-1)
    src_row: torch.Tensor        # per edge: state row of its source
    dst_row: torch.Tensor        # per edge: state row of its target
    values: torch.Tensor         # the edge weights in CSR order, refreshed every forward
    schedule: list               # the stages in execution order


@dataclass
class _Plan:
    """What a forward needs that depends only on topology; rebuilt when that changes."""

    key: tuple
    levels: torch.Tensor | None  # (P, N_cap) GraphNet level of every neuron (DAG)
    depth: torch.Tensor | None   # (P,) sweeps each member needs (DAG)
    kernel: str                  # "dense" or "sparse"
    dense: _DensePlan | None = None
    sparse: _SparsePlan | None = None


class GraphBatch(nn.Module):
    """P graphs with the same n_in and n_out in padded tensors, run together.

    Build one with `GraphBatch.from_nets(nets)`, or straight from tensors:
    `GraphBatch(n_in, n_out, src, dst, weight, edge_alive, bias, activation, neuron_alive,
    mode="dag", steps=1, clamp_inputs=False)` with edge tensors of shape (P, E_cap) and
    neuron tensors of shape (P, N_cap); `activation` holds codes from `ACTIVATION_NAMES`
    (use `activation_code(name)`). The tensors are copied; all live on `weight`'s device.
    Member semantics are GraphNet's: neurons 0..n_in-1 inputs, the next n_out outputs, the
    rest hidden; in DAG mode inputs take no incoming edges and outputs have no outgoing ones.

    All state is in buffers, so `.to(device)` / `.double()` and `state_dict()` work. The
    forward is differentiable in `weight` and `bias` once you set `requires_grad` on them;
    by default (population evaluation) no autograd graph is built. `kernel`: "auto",
    "dense" or "sparse" (see the module docstring); all give the same outputs.

    `validate=False` is for a caller that builds the tensors itself and vouches for them:
    the same device, dtypes as above, dead slots already zero, every structure rule of a
    GraphNet already holding (inputs and outputs alive, edges between live neurons, no
    duplicate pairs, in DAG mode none into an input or out of an output). They are then used
    as given (not copied) and only the cycle check runs; anything else is undefined.
    """

    KERNELS = ("auto", "dense", "sparse")

    def __init__(self, n_in: int, n_out: int, src, dst, weight, edge_alive, bias, activation,
                 neuron_alive, *, mode: str = "dag", steps: int = 1, clamp_inputs: bool = False,
                 kernel: str = "auto", validate: bool = True):
        super().__init__()
        self.n_in = check_int(n_in, "n_in", 1)
        self.n_out = check_int(n_out, "n_out", 1)
        self.mode = check_choice(mode, "mode", ("dag", "recurrent"))
        self.steps = check_int(steps, "steps", 1)
        self.clamp_inputs = check_bool(clamp_inputs, "clamp_inputs")
        self.kernel = check_choice(kernel, "kernel", self.KERNELS)
        if not check_bool(validate, "validate"):
            self._adopt(src, dst, weight, edge_alive, bias, activation, neuron_alive)
            return
        weight = torch.as_tensor(weight)
        if not weight.is_floating_point():
            weight = weight.to(torch.get_default_dtype())
        dev, dtype = weight.device, weight.dtype

        def take(t, name, kind):
            t = torch.as_tensor(t).to(dev)
            if t.dim() != 2:
                raise ConfigError(f"{name} has shape {tuple(t.shape)}; expected 2-D (P, E_cap) or (P, N_cap)")
            if kind == "int" and (t.is_floating_point() or t.dtype == torch.bool or t.is_complex()):
                raise ConfigError(f"{name} must hold integers, got {t.dtype}")
            if kind == "bool" and t.dtype != torch.bool:
                raise ConfigError(f"{name} must be a bool tensor, got {t.dtype}")
            return t.clone()

        src, dst = take(src, "src", "int"), take(dst, "dst", "int")
        edge_alive, neuron_alive = take(edge_alive, "edge_alive", "bool"), take(neuron_alive, "neuron_alive", "bool")
        activation, weight = take(activation, "activation", "int"), take(weight, "weight", "float")
        bad = (activation < 0) | (activation >= len(ACTIVATION_NAMES))
        if bool(bad.any()):
            raise ConfigError(f"member {int(bad.nonzero()[0, 0])}: activation codes must be in "
                              f"0..{len(ACTIVATION_NAMES) - 1} ({', '.join(ACTIVATION_NAMES)})")
        bias = take(bias, "bias", "float").to(dtype)
        P, E = weight.shape
        if P < 1:
            raise ConfigError("a GraphBatch needs at least one member (P >= 1)")
        for name, t in (("src", src), ("dst", dst), ("edge_alive", edge_alive)):
            if t.shape != (P, E):
                raise ConfigError(f"{name} has shape {tuple(t.shape)}; expected {(P, E)} like weight")
        N = bias.shape[1]
        for name, t in (("bias", bias), ("activation", activation), ("neuron_alive", neuron_alive)):
            if t.shape != (P, N):
                raise ConfigError(f"{name} has shape {tuple(t.shape)}; expected {(P, N)} like bias")
        if N < self.n_in + self.n_out:
            raise ConfigError(f"N_cap={N} is smaller than n_in + n_out = {self.n_in + self.n_out}")
        # Dead slots are normalised to zeros so that storage compares and round-trips cleanly.
        src, dst = src.masked_fill(~edge_alive, 0), dst.masked_fill(~edge_alive, 0)
        self.register_buffer("src", src.to(torch.int32))
        self.register_buffer("dst", dst.to(torch.int32))
        self.register_buffer("weight", weight.masked_fill(~edge_alive, 0))
        self.register_buffer("edge_alive", edge_alive)
        self.register_buffer("bias", bias.masked_fill(~neuron_alive, 0))
        self.register_buffer("activation", activation.to(torch.int8))
        self.register_buffer("neuron_alive", neuron_alive)
        self._plan: _Plan | None = None
        self._check_structure(src.long(), dst.long())
        self._get_plan()  # a DAG with a cycle is refused here, not at the first forward

    def _adopt(self, src, dst, weight, edge_alive, bias, activation, neuron_alive) -> None:
        """validate=False: tensors a caller builds fresh and vouches for (a population built in
        bulk, e.g. NEAT's phenotypes) are kept as they are, without the copies, the dead-slot
        zeroing and the structure checks; only a DAG's cycle check (the plan) still runs."""
        self.register_buffer("src", src.to(torch.int32))
        self.register_buffer("dst", dst.to(torch.int32))
        self.register_buffer("weight", weight)
        self.register_buffer("edge_alive", edge_alive)
        self.register_buffer("bias", bias.to(weight.dtype))
        self.register_buffer("activation", activation.to(torch.int8))
        self.register_buffer("neuron_alive", neuron_alive)
        self._plan = None
        self._get_plan()

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_nets(cls, nets, kernel: str = "auto") -> GraphBatch:
        """Pack GraphNets with the same n_in, n_out and mode (and steps / clamp_inputs in
        recurrent mode) into one batch. Every neuron keeps its activation (the net's, its
        output_activation, or its own after `set_activations`); everything lands on the first
        net's device."""
        if isinstance(nets, GraphNet) or not hasattr(nets, "__len__") or len(nets) == 0:
            raise ConfigError("from_nets needs a non-empty list of GraphNets")
        nets = list(nets)
        for i, net in enumerate(nets):
            if not isinstance(net, GraphNet):
                raise ConfigError(f"member {i} is a {type(net).__name__}, not a GraphNet")
        first = nets[0]
        keys = ("n_in", "n_out", "mode") + (("steps", "clamp_inputs") if first.mode == "recurrent" else ())
        for i, net in enumerate(nets):
            for k in keys:
                if getattr(net, k) != getattr(first, k):
                    raise ConfigError(f"member {i} has {k}={getattr(net, k)!r} but member 0 has "
                                      f"{k}={getattr(first, k)!r}; a GraphBatch needs them equal")
            if net.bias.dtype != first.bias.dtype:
                raise ConfigError(f"member {i} is {net.bias.dtype} but member 0 is {first.bias.dtype}")
        dev = first.bias.device
        srcs, dsts, ws, alives, biases, codes = [], [], [], [], [], []
        for net in nets:  # reading P nets is a loop by nature; packing below is vectorised
            s, d, w = net.edges()
            srcs.append(s.to(dev, torch.int32))
            dsts.append(d.to(dev, torch.int32))
            ws.append(w.to(dev))
            alive = net.neuron_alive.to(dev)
            high = int(alive.nonzero().max()) + 1
            alives.append(alive[:high])
            biases.append(net.bias.detach().to(dev)[:high])
            codes.append(net._activation_codes()[:high].to(dev))
        pad = nn.utils.rnn.pad_sequence
        counts = torch.tensor([len(s) for s in srcs], device=dev)
        e_cap = max(1, int(counts.max()))  # one dead slot keeps shapes non-degenerate
        edge_alive = torch.arange(e_cap, device=dev) < counts[:, None]

        def pad_edges(rows):
            out = pad(rows, batch_first=True)
            return torch.cat([out, out.new_zeros(len(rows), e_cap - out.shape[1])], 1)

        return cls(first.n_in, first.n_out, pad_edges(srcs), pad_edges(dsts), pad_edges(ws), edge_alive,
                   pad(biases, batch_first=True), pad(codes, batch_first=True),
                   pad(alives, batch_first=True), mode=first.mode, steps=first.steps,
                   clamp_inputs=first.clamp_inputs, kernel=kernel)

    def to_net(self, member: int) -> GraphNet:
        """Member `member` as a GraphNet (same neuron ids, edges, biases, activations,
        outputs). A member whose neurons mix activations keeps them as the net's per-neuron
        ones (`GraphNet.set_activations`)."""
        return self._member_net(self._member(member)).to(self.weight.device)

    def to_nets(self) -> list[GraphNet]:
        """Every member as a GraphNet: the exact inverse of `from_nets`."""
        return [self.to_net(i) for i in range(len(self))]

    # ----------------------------------------------------------------- properties
    def __len__(self) -> int:
        return self.weight.shape[0]

    @property
    def n_edges(self) -> torch.Tensor:
        """(P,) live edges per member."""
        return self.edge_alive.sum(1)

    @property
    def n_hidden(self) -> torch.Tensor:
        """(P,) live hidden neurons per member."""
        return self.neuron_alive.sum(1) - self.n_in - self.n_out

    @property
    def neuron_capacity(self) -> int:
        return self.bias.shape[1]

    @property
    def edge_capacity(self) -> int:
        return self.weight.shape[1]

    def depth(self) -> torch.Tensor:
        """(P,) synchronous sweeps each member runs: in DAG mode its depth (the levels after the
        inputs, outputs last, as GraphNet.levels() numbers them), in recurrent mode `steps`."""
        plan = self._get_plan()
        if plan.depth is None:
            return torch.full((len(self),), self.steps, dtype=torch.long, device=self.weight.device)
        return plan.depth.clone()

    def levels(self) -> torch.Tensor:
        """(P, N_cap) level of every neuron slot, numbered as GraphNet.levels() numbers them
        (inputs 0, outputs last, dead -1); DAG mode only. Cached with the plan."""
        plan = self._get_plan()
        if plan.levels is None:
            raise ConfigError("levels() needs DAG mode; a recurrent batch has no layers")
        return plan.levels

    def extra_repr(self) -> str:
        return (f"P={len(self)}, n_in={self.n_in}, n_out={self.n_out}, mode={self.mode!r}, "
                f"N_cap={self.neuron_capacity}, E_cap={self.edge_capacity}")

    # ----------------------------------------------------------------- checks and planning
    def _member(self, i) -> int:
        return check_int(i, "member", 0, len(self) - 1)

    def _check_structure(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Refuse tensors no GraphNet could hold, naming the first member that breaks a rule."""
        N, n_in, n_fixed = self.neuron_capacity, self.n_in, self.n_in + self.n_out

        def refuse(bad_rows: torch.Tensor, message: str):
            if bool(bad_rows.any()):
                raise ConfigError(f"member {int(bad_rows.nonzero()[0, 0])}: {message}")

        refuse(~self.neuron_alive[:, :n_fixed].all(1), "input and output neurons must be alive")
        live = self.edge_alive
        refuse((live & ((src < 0) | (src >= N) | (dst < 0) | (dst >= N))).any(1),
               f"a live edge names a neuron outside 0..{N - 1}")
        ends_alive = self.neuron_alive.gather(1, src) & self.neuron_alive.gather(1, dst)
        refuse((live & ~ends_alive).any(1), "a live edge touches a dead neuron")
        if self.mode == "dag":
            refuse((live & (dst < n_in)).any(1), "input neurons take no incoming edges in DAG mode")
            refuse((live & (src >= n_in) & (src < n_fixed)).any(1),
                   "output neurons have no outgoing edges in DAG mode")
        # duplicates: sort each member's (src, dst) keys; equal neighbours among live edges
        key = torch.where(live, src * N + dst, -1 - torch.arange(live.shape[1], device=live.device))
        key = key.sort(1).values
        refuse((key[:, 1:] == key[:, :-1]).any(1), "two live edges join the same (src, dst) pair")

    def _plan_key(self) -> tuple:
        # `_version` counts in-place writes, so edits made straight into the buffers are seen
        # too (tensors made under inference_mode have no counter; apply_edits still resets)
        def version(t):
            return -1 if t.is_inference() else t._version

        tensors = (self.src, self.dst, self.edge_alive, self.neuron_alive, self.activation)
        return (tuple((t.data_ptr(), version(t)) for t in tensors)
                + (tuple(self.bias.shape), self.weight.dtype, self.weight.device, self.kernel))

    def _get_plan(self) -> _Plan:
        key = self._plan_key()
        if self._plan is None or self._plan.key != key:
            # plan tensors are ordinary ones even when first needed under inference_mode, so
            # that a later forward outside it can still refresh them in place
            with torch.inference_mode(False):
                self._plan = self._build_plan(key)
        return self._plan

    def _apply(self, fn, *args, **kwargs):
        self._plan = None  # the plan holds index tensors on the old device
        return super()._apply(fn, *args, **kwargs)

    def _levels(self) -> torch.Tensor:
        """(P, N_cap) GraphNet levels of every member at once: inputs 0, hidden neurons the
        longest path from a source (1 without incoming edges), outputs one above the deepest
        hidden neuron, dead -1. Longest-path relaxation over all members' edges into hidden
        neurons at once, as flat (member, neuron) positions (outputs are placed afterwards)."""
        P, N = self.bias.shape
        n_in, n_fixed = self.n_in, self.n_in + self.n_out
        level = torch.where(self.neuron_alive, 1, -1)
        level[:, :n_in] = 0
        into_hidden = (self.edge_alive & (self.dst >= n_fixed)).reshape(-1).nonzero().squeeze(1)
        base = into_hidden // self.edge_capacity * N
        src = base + self.src.reshape(-1).index_select(0, into_hidden)
        dst = base + self.dst.reshape(-1).index_select(0, into_hidden)
        flat = level.reshape(-1)
        # a longest path has fewer edges than a member has neurons: N + 1 sweeps settle any DAG
        for _ in range(N + 1):
            new = flat.scatter_reduce(0, dst, flat.index_select(0, src) + 1, reduce="amax")
            if torch.equal(new, flat):
                break
            flat, last = new, flat
        else:  # still rising means a cycle
            cyclic = (flat != last).view(P, N).any(1).nonzero().squeeze(1).tolist()
            raise CycleError(f"member(s) {cyclic[:10]} have a cycle, so they cannot run in DAG mode")
        level = flat.view(P, N)
        top = level[:, n_fixed:].clamp(min=0).amax(1) if N > n_fixed else level.new_zeros(P)
        level[:, n_in:n_fixed] = (top + 1)[:, None]
        return level

    def _build_plan(self, key) -> _Plan:
        levels = self._levels() if self.mode == "dag" else None
        depth = None if levels is None else levels.max(1).values
        kernel = self.kernel
        if kernel == "auto":
            # Measured on CPU (1 thread, B = 4 and 64): the sparse kernel was faster for random
            # NEAT-sized DAGs (10-60x), for full MLPs (3-13x) and even for fully connected
            # recurrent members (0.8-3x), since bmm on tiny blocks and the per-slot selects cost
            # more than the CSR products. On CUDA the dense kernel's few large launches win.
            kernel = "dense" if self.weight.is_cuda else "sparse"
        return _Plan(key, levels, depth, kernel)

    def _dense_plan(self, plan: _Plan) -> _DensePlan:
        """Members sorted by decreasing depth (DAG), the scatter index of W^T, activation masks."""
        if plan.dense is not None:
            return plan.dense
        P, N = self.bias.shape
        dev = self.bias.device
        order = inverse = None
        if self.mode == "dag":
            sweeps, order = plan.depth.sort(descending=True, stable=True)
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(P, device=dev)
            # sweep k runs the members of depth >= k: a prefix of the sorted order
            at_least = torch.bincount(sweeps, minlength=int(sweeps[0]) + 1).flip(0).cumsum(0).flip(0)
            active = at_least[1:int(sweeps[0]) + 1].tolist()
            if bool((sweeps == sweeps[0]).all()):
                order = inverse = None  # all alike: no reordering needed
        else:
            active = [P] * self.steps
        rank = inverse if inverse is not None else torch.arange(P, device=dev)
        p, slot = self.edge_alive.nonzero(as_tuple=True)
        w_index = p * self.edge_capacity + slot
        w_target = (rank[p] * N + self.src[p, slot].long()) * N + self.dst[p, slot].long()  # W^T[p, src, dst]
        codes, computed = self.activation.long(), self._computed()
        if order is not None:
            codes, computed = codes[order], computed[order]
        kinds = []
        for c, name in enumerate(ACTIVATION_NAMES):
            mask = computed & (codes == c)
            if bool(mask.any()):
                kinds.append((ACTIVATIONS[name], mask[:, None, :]))
        plan.dense = _DensePlan(order, inverse, active, w_index, w_target, kinds)
        return plan.dense

    def _computed(self) -> torch.Tensor:
        """(P, N_cap) neurons a sweep computes: live ones, but not inputs when they are clamped
        (always in DAG mode). Everything else keeps its initial value: x or 0."""
        computed = self.neuron_alive.clone()
        if self.mode == "dag" or self.clamp_inputs:
            computed[:, :self.n_in] = False
        return computed

    def _sparse_plan(self, plan: _Plan) -> _SparsePlan:
        """Live neurons of all members as the rows of one state matrix, grouped by stage (DAG:
        level; recurrent: inputs when clamped, then the rest) and, within a stage, by
        activation; the edges into each stage as a CSR matrix over those rows. Neurons and
        edges are named by their flat positions in the (P, N_cap) and (P, E_cap) tensors."""
        if plan.sparse is not None:
            return plan.sparse
        P, m = self.bias.shape
        E = self.edge_capacity
        dev = self.bias.device
        K = len(ACTIVATION_NAMES)
        dag = self.mode == "dag"
        cell = self.neuron_alive.reshape(-1).nonzero().squeeze(1)   # (member, neuron), ascending
        if dag or self.clamp_inputs:  # live neurons are computed, except clamped inputs
            computed = cell % m >= self.n_in
        else:
            computed = torch.ones_like(cell, dtype=torch.bool)
        stage = plan.levels.reshape(-1).index_select(0, cell) if dag else computed.long()
        code = torch.where(computed, self.activation.reshape(-1).index_select(0, cell).long(), 0)
        # rows by (stage, activation), then (member, neuron); inputs (stage 0) come first in
        # (member, id) order, so x is written as one block
        group = stage * K + code
        # the keys are distinct, so any sort gives this order; the stable one is faster here
        perm = torch.argsort(group * (P * m) + cell, stable=True)
        cell, group = cell.index_select(0, perm), group.index_select(0, perm)
        n_rows = len(cell)
        row_of = torch.full((P * m,), -1, dtype=torch.long, device=dev)
        row_of[cell] = torch.arange(n_rows, device=dev)
        edge = self.edge_alive.reshape(-1).nonzero().squeeze(1)
        base = edge // E * m
        src_row = row_of.index_select(0, base + self.src.reshape(-1).index_select(0, edge))
        dst_row = row_of.index_select(0, base + self.dst.reshape(-1).index_select(0, edge))
        if not dag:  # edges into clamped inputs change nothing (a DAG has none into inputs)
            keep = (group.index_select(0, dst_row) >= K).nonzero().squeeze(1)
            edge, src_row, dst_row = edge[keep], src_row[keep], dst_row[keep]
        eperm = torch.argsort(dst_row * n_rows + src_row)
        edge, src_row, dst_row = edge[eperm], src_row[eperm], dst_row[eperm]
        values = self.weight.new_zeros(len(edge))
        n_stages = int(group[-1]) // K + 1 if n_rows else 1
        # first row of each (stage, activation) group; a stage's rows start at its group 0
        kind_bounds = torch.searchsorted(group, torch.arange(n_stages * K + 1, device=dev))
        # first edge into each row (CSR row pointers): counts per target row, summed up
        edge_at = torch.zeros(n_rows + 1, dtype=torch.int32, device=dev)
        torch.cumsum(torch.bincount(dst_row, minlength=n_rows), 0, out=edge_at[1:])
        stage_edges = edge_at.index_select(0, kind_bounds[::K]).tolist()
        kind_bounds = kind_bounds.tolist()
        cols = src_row.int()  # int32 indices: MKL's own, so the product does not convert them on every call
        stages = []
        with warnings.catch_warnings():  # torch calls sparse CSR "beta"; the product is stable
            warnings.simplefilter("ignore")
            for s in range(1, n_stages):
                ra, rb = kind_bounds[s * K], kind_bounds[(s + 1) * K]
                if ra == rb:
                    continue
                ea, eb = stage_edges[s], stage_edges[s + 1]
                kinds = [(ACTIVATION_NAMES[c], kind_bounds[s * K + c] - ra, kind_bounds[s * K + c + 1] - ra)
                         for c in range(K) if kind_bounds[s * K + c + 1] > kind_bounds[s * K + c]]
                csr = torch.sparse_csr_tensor(edge_at[ra:rb + 1] - ea, cols[ea:eb], values[ea:eb],
                                              (rb - ra, n_rows), check_invariants=False)
                stages.append(_Stage(ra, rb, ea, eb, kinds, csr))
        schedule = stages if dag else stages * self.steps
        row_of = row_of.view(P, m)
        in_rows = row_of[:, :self.n_in].reshape(-1)
        # DAG and clamped inputs: stage 0 is every input, in (member, id) order
        inputs_first = dag or self.clamp_inputs or bool(torch.equal(in_rows, torch.arange(len(in_rows), device=dev)))
        out_rows = row_of[:, self.n_in:self.n_in + self.n_out].reshape(-1)
        plan.sparse = _SparsePlan(n_rows, in_rows, inputs_first, out_rows, cell, edge, src_row, dst_row, values,
                                  schedule)
        return plan.sparse

    # ----------------------------------------------------------------- execution
    def _input(self, x) -> tuple[torch.Tensor, bool]:
        if not torch.is_tensor(x):  # a numpy array or nested lists
            x = torch.as_tensor(np.asarray(x), dtype=self.weight.dtype, device=self.weight.device)
        P, n_in = len(self), self.n_in
        shared = x.dim() == 2 and x.shape[1] == n_in
        if not (shared or (x.dim() == 3 and x.shape[0] == P and x.shape[2] == n_in)):
            raise ConfigError(f"input of shape {tuple(x.shape)} does not fit this batch; expected "
                              f"(batch, {n_in}) shared by all members or ({P}, batch, {n_in}) per member")
        if x.device != self.weight.device:
            raise ConfigError(f"input is on {x.device} but the GraphBatch is on {self.weight.device}; "
                              "move one of them with .to(device)")
        return x.to(self.weight.dtype), shared

    def forward(self, x, return_activity: bool = False):
        """x: (B, n_in) shared by all members, or (P, B, n_in) one per member -> (P, B, n_out).

        `return_activity=True` returns `(y, activity)` with `activity` (P, B, N_cap), the value
        of every neuron slot after the pass (inputs as written, 0 for dead or padding slots):
        what local rules such as Hebbian ones read."""
        x, shared = self._input(x)
        plan = self._get_plan()
        # Without a gradient to carry, states are overwritten in place and the fused CSR
        # product is used; with one, every step stays out of place and differentiable.
        grad = torch.is_grad_enabled() and (self.weight.requires_grad or self.bias.requires_grad
                                            or x.requires_grad)
        sub = plan.dense if plan.kernel == "dense" else plan.sparse
        if sub is None:  # built once per plan; the context costs about a tenth of a small forward
            with torch.inference_mode(False):  # see _get_plan
                sub = self._dense_plan(plan) if plan.kernel == "dense" else self._sparse_plan(plan)
        forward = self._forward_dense if plan.kernel == "dense" else self._forward_sparse
        y, activity = forward(x, shared, sub, grad)
        return (y, activity()) if return_activity else y

    def _forward_dense(self, x, shared: bool, plan: _DensePlan, grad: bool) -> torch.Tensor:
        """One baddbmm per sweep over the (P, m, m) block of W^T; sweep k runs only the leading
        members (sorted by depth) that still need it."""
        P, m = self.bias.shape
        B, n_in = x.shape[-2], self.n_in
        w = self.weight.reshape(-1)[plan.w_index]
        w_t = self.weight.new_zeros(P * m * m).index_put_((plan.w_target,), w).view(P, m, m)
        bias = (self.bias if plan.order is None else self.bias[plan.order]).unsqueeze(1)
        if not shared and plan.order is not None:
            x = x[plan.order]
        # h0: inputs written, everything else 0. A neuron a sweep does not compute (clamped
        # input, dead or padding slot) takes its h0 value, so dead neurons stay at 0.
        h0 = x.new_zeros(P, B, m)
        h0[:, :, :n_in] = x
        h = h0
        for n in plan.active:  # the first sweep always runs every member
            z = torch.baddbmm(bias[:n], h[:n], w_t[:n])
            new = h0[:n]
            for fn, mask in plan.kinds:
                new = torch.where(mask[:n], fn(z), new)
            if n == P:
                h = new  # a fresh tensor: outputs are always computed, so `where` ran
            elif grad:
                h = torch.cat([new, h[n:]])
            else:
                h[:n] = new
        if plan.inverse is not None:
            h = h[plan.inverse]
        return h[:, :, n_in:n_in + self.n_out], lambda: h

    def _forward_sparse(self, x, shared: bool, plan: _SparsePlan, grad: bool) -> torch.Tensor:
        """State (rows, B), one row per live neuron of every member; stage by stage, rows
        [ra, rb) <- act(W[ra:rb] @ state + b). In DAG mode a stage reads only earlier stages,
        so every edge is used once per forward; in recurrent mode the one stage runs `steps`
        times, each reading the whole previous state (a synchronous sweep)."""
        P, n_in, n_out = len(self), self.n_in, self.n_out
        B = x.shape[-2]
        xs = x.t().repeat(P, 1) if shared else x.transpose(1, 2).reshape(P * n_in, B)
        b = self.bias.reshape(-1).index_select(0, plan.bias_index)[:, None]  # index_select: a third of t[index]'s cost
        if grad:
            h = self._sparse_sweeps_autograd(xs, b, plan)
        else:
            h = self._sparse_sweeps_in_place(xs, b, plan)

        def activity():  # the rows back in (member, neuron) slots
            m = self.bias.shape[1]
            full = h.new_zeros(P * m, B).index_copy(0, plan.bias_index, h)
            return full.view(P, m, B).transpose(1, 2)
        return h.index_select(0, plan.out_rows).view(P, n_out, B).transpose(1, 2), activity

    def _write_inputs(self, h: torch.Tensor, xs: torch.Tensor, plan: _SparsePlan) -> torch.Tensor:
        if plan.inputs_first:  # DAG: the inputs are rows 0..P*n_in-1, member-major
            h[:len(xs)] = xs
            return h
        return h.index_copy_(0, plan.in_rows, xs)

    def _sparse_sweeps_in_place(self, xs, b, plan: _SparsePlan) -> torch.Tensor:
        """No gradient: each stage's CSR product writes straight into its rows of the state."""
        torch.index_select(self.weight.reshape(-1), 0, plan.w_index, out=plan.values)  # the CSRs' values
        B = xs.shape[1]
        if self.mode == "dag":
            # every computed row is written before a later stage reads it, and a stage reads
            # only earlier rows, so the product may write into the state it reads
            h = self._write_inputs(xs.new_empty(plan.n_rows, B), xs, plan)
            for st in plan.schedule:
                z = h[st.ra:st.rb]
                torch.addmm(b[st.ra:st.rb], st.csr, h, out=z)
                for name, lo, hi in st.kinds:
                    _activate_(name, z[lo:hi])
            return h
        # recurrent: a sweep reads the whole previous state, so two buffers take turns
        h = self._write_inputs(xs.new_zeros(plan.n_rows, B), xs, plan)
        h_next = h.clone()
        for st in plan.schedule:
            z = h_next[st.ra:st.rb]
            torch.addmm(b[st.ra:st.rb], st.csr, h, out=z)
            for name, lo, hi in st.kinds:
                _activate_(name, z[lo:hi])
            h, h_next = h_next, h
        return h

    def _sparse_sweeps_autograd(self, xs, b, plan: _SparsePlan) -> torch.Tensor:
        """With a gradient: gather, multiply, index_add; every state out of place."""
        w = self.weight.reshape(-1)[plan.w_index][:, None]
        B = xs.shape[1]
        h = xs.new_zeros(plan.n_rows, B).index_copy(0, plan.in_rows, xs)
        for st in plan.schedule:
            z = b[st.ra:st.rb].expand(st.rb - st.ra, B).index_add(
                0, plan.dst_row[st.ea:st.eb] - st.ra, h.index_select(0, plan.src_row[st.ea:st.eb]) * w[st.ea:st.eb])
            z = torch.cat([ACTIVATIONS[name](z[lo:hi]) for name, lo, hi in st.kinds])
            h = torch.cat([h[:st.ra], z, h[st.rb:]])
        return h

    # ----------------------------------------------------------------- editing
    def apply_edits(self, edits, member: int | None = None, *, activation: str | None = None):
        """Apply Edits to some members, rewriting only their rows.

        `pop.apply_edits(edits, member=i)` or `pop.apply_edits({i: edits_i, j: edits_j})`.
        Each edited member goes through GraphNet.apply_edits (the one edit path, with its
        checks); N_cap / E_cap grow for everyone only when an edited member no longer fits.
        All-or-nothing: if any member's edits are refused, no row changes. New neurons get
        `activation` (default: the member's hidden activation; for a member with mixed
        activations, that of its input neurons). Returns the applied Edits (the dict form
        returns the dict), whose neuron references resolve to the member's neuron ids.
        """
        if isinstance(edits, dict):
            if member is not None:
                raise ConfigError("pass either Edits with member=i or a dict {member: Edits}, not both")
            todo = {self._member(i): e for i, e in edits.items()}
        else:
            if member is None:
                raise ConfigError("apply_edits(edits, member=i) needs the member index i")
            todo = {self._member(member): edits}
        for i, e in todo.items():
            if not isinstance(e, Edits):
                raise EditError(f"member {i}: expected an Edits object, got {type(e).__name__}")
        new_code = None if activation is None else activation_code(activation)
        # 1. edit a GraphNet copy of each member (nothing in the batch changes if one fails)
        edited = {}
        for i, e in todo.items():
            net = self._member_net(i)
            owners = net.neuron_uid.clone()
            net.apply_edits(e)
            # the edit's new neurons: every slot whose owner changed, a freed and refilled one too
            born = net.neuron_alive.clone()
            born[:len(owners)] &= net.neuron_uid[:len(owners)] != owners
            edited[i] = (net, born, activation_code(net.activation) if new_code is None else new_code)
        # 2. grow once if needed, then rewrite the edited rows (in place, so a batch built
        # under inference_mode first gets ordinary tensors that may be written outside it)
        with torch.inference_mode(False):
            for name, t in list(self.named_buffers()):
                if t.is_inference():
                    setattr(self, name, t.clone())
        need_n = max(int(net.neuron_alive.nonzero().max()) + 1 for net, _, _ in edited.values())
        need_e = max(net.n_edges for net, _, _ in edited.values())
        self._grow(need_n, need_e)
        for i, (net, born, code) in edited.items():
            self._write_row(i, net, born, code)
        self._plan = None
        return edits

    def apply_edit_arrays(self, *, split=None, remove=None, add=None, set_weights=None) -> torch.Tensor:
        """Edit many members at once from tensors with a member column (a population's own
        commands): `split=(member, src, dst, weight_in, weight_out)` (a relay neuron,
        `Edits.add_neuron(between=...)`), `remove=(member, src, dst)`, `add=(member, src, dst,
        weight)`, `set_weights=(member, src, dst, weight)`, applied in that order. The same
        result and checks as `apply_edits({i: Edits with those ops})` (see core/batch_edits.py),
        in tensor operations instead of a GraphNet round trip per member; all-or-nothing.
        Returns the new neurons' ids, one per split row."""
        from .batch_edits import edit_arrays
        tensors, new = edit_arrays(self, split, remove, add, set_weights)
        old = {name: getattr(self, name) for name in tensors}
        with torch.inference_mode(False):
            for name, t in tensors.items():
                setattr(self, name, t)
        self._plan = None
        try:
            self._get_plan()  # a cycle is refused here
        except CycleError:
            for name, t in old.items():
                setattr(self, name, t)
            self._plan = None
            raise
        return new

    def _grow(self, need_n: int, need_e: int) -> None:
        """Pad every member's rows to at least need_n neurons / need_e edges."""
        def padded(t, size, fill=0):
            return torch.cat([t, t.new_full((t.shape[0], size - t.shape[1]), fill)], 1)

        if need_n > self.neuron_capacity:
            for name in ("bias", "activation", "neuron_alive"):
                setattr(self, name, padded(getattr(self, name), need_n))
        if need_e > self.edge_capacity:
            for name in ("src", "dst", "weight", "edge_alive"):
                setattr(self, name, padded(getattr(self, name), need_e))

    def _write_row(self, i: int, net: GraphNet, born: torch.Tensor, new_code: int) -> None:
        """Member i's row from its edited GraphNet; the neurons `born` (a mask over the net's
        slots) get `new_code`, every other neuron keeps its code."""
        dev = self.weight.device
        s, d, w = net.edges()
        k = len(s)
        with torch.no_grad():
            for name, values in (("src", s), ("dst", d), ("weight", w)):
                row = getattr(self, name)[i]
                row.zero_()
                row[:k] = values.to(dev, row.dtype)
            self.edge_alive[i] = torch.arange(self.edge_capacity, device=dev) < k
            alive = torch.zeros(self.neuron_capacity, dtype=torch.bool, device=dev)
            high = min(net.capacity, self.neuron_capacity)
            alive[:high] = net.neuron_alive[:high].to(dev)
            new = torch.zeros_like(alive)
            new[:high] = born[:high].to(dev)
            self.activation[i] = self.activation[i].masked_fill(new, new_code)
            self.neuron_alive[i] = alive
            bias = torch.zeros(self.neuron_capacity, dtype=self.bias.dtype, device=dev)
            bias[:high] = net.bias.detach()[:high].to(dev, bias.dtype)
            self.bias[i] = bias.masked_fill(~alive, 0)

    # ----------------------------------------------------------------- members as GraphNets
    def _member_net(self, i: int) -> GraphNet:
        """Member i as a GraphNet on the CPU. Its `activation` is its inputs' code (where
        from_nets stores the net's own), its `output_activation` the outputs' shared one; a
        member with a computed neuron of another code keeps every code as the net's
        per-neuron activations, so the round trip from a GraphNet is exact either way."""
        n_in, n_fixed = self.n_in, self.n_in + self.n_out
        codes, alive = self.activation[i].long().cpu(), self.neuron_alive[i].cpu()
        act, out_codes = int(codes[0]), codes[n_in:n_fixed]
        out_act = int(out_codes[0])
        computed = alive.clone()
        if self.mode == "dag" or self.clamp_inputs:  # inputs are only written: their codes never run
            computed[:n_in] = False
        default = torch.full_like(codes, act)
        default[n_in:n_fixed] = out_act
        net = self._build_net(i, ACTIVATION_NAMES[act], ACTIVATION_NAMES[out_act])
        if bool((computed & (codes != default)).any()):
            ids = net.neuron_alive.nonzero().squeeze(1)
            net.set_activations(ids, [ACTIVATION_NAMES[c] for c in codes[ids].tolist()])
        return net

    def _build_net(self, i: int, activation: str, output_activation: str) -> GraphNet:
        """Member i as a GraphNet on the CPU with the same neuron ids (gaps removed again).

        Built through GraphNet.from_edges and Edits only: GraphNet offers no constructor that
        places neurons at given ids, so the id range is filled and the gaps then removed."""
        n_in, n_fixed = self.n_in, self.n_in + self.n_out
        alive = self.neuron_alive[i].cpu()
        high = int(alive.nonzero().max()) + 1
        live = self.edge_alive[i].cpu()
        src, dst = self.src[i].cpu()[live].long(), self.dst[i].cpu()[live].long()
        w = self.weight[i].detach().cpu()[live]
        b = self.bias[i].detach().cpu()
        net = GraphNet.from_edges(n_in, self.n_out, high - n_fixed, src, dst, weight=w, bias=b[n_in:high],
                                  activation=activation, output_activation=output_activation,
                                  mode=self.mode, steps=self.steps, clamp_inputs=self.clamp_inputs,
                                  dtype=self.weight.dtype)
        gaps = (~alive[:high]).nonzero().squeeze(1).tolist()
        if gaps:
            e = Edits()
            for g in gaps:
                e.remove_neuron(g)
            net.apply_edits(e)
        with torch.no_grad():  # input biases count in recurrent mode; from_edges leaves them 0
            net.bias[:n_in] = b[:n_in].to(net.bias.dtype)
        return net
