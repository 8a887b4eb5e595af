"""GraphNet: neurons plus weighted directed edges, the only network type of the library.

Storage is capacity-padded. All edge weights live in one flat Parameter `weight` and all
biases in one flat Parameter `bias`, each with spare room and a boolean mask of live slots.
Neuron ids index `bias`; an edge is a slot of `weight` with its `edge_src`/`edge_dst`. So an
edit inside capacity flips mask bits and zeroes optimizer state for the touched slots; the
set of Parameters never changes, and an optimizer built once keeps working. Only an
overflow reallocates (doubling) and then `surgery` carries every surviving slot's state.

Execution (one executor, two modes):

* DAG: neurons are ordered by level (inputs 0, outputs always last). A level's sources fall in
  one contiguous range of earlier positions, so each level is one dense `addmm` with the block
  `W[level, lo:hi]`. For an MLP built by `GraphNet.mlp` those blocks are plain views of
  `weight` (no copy), which is why a layered GraphNet trains at MLP speed. Big, mostly empty
  blocks use a gather/index_add kernel instead.
* recurrent: `steps` synchronous sweeps h <- act(W h + b) over all live neurons, inputs
  written once at the start (or clamped every sweep).

The level plan is derived state: it is rebuilt lazily after an edit, never per forward pass.
Topology changes only through `apply_edits` (see `edits.py`).
"""
from __future__ import annotations

import bisect
import math
import numbers
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, CycleError

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda z: z,
}
# The same activations as torch.nn modules, for plain-torch models built from or beside a GraphNet.
ACTIVATION_MODULES = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "identity": nn.Identity}
MODES = ("dag", "recurrent")
KERNELS = ("auto", "dense", "sparse")


def _check_activation(name: str, what: str) -> str:
    if name == "linear":
        name = "identity"
    if name not in ACTIVATIONS:
        raise ConfigError(f"{what}={name!r} is not supported; expected one of {sorted(ACTIVATIONS)}")
    return name


def _check_count(value, what: str, minimum: int) -> int:
    """An int (numpy integers too, bools never) >= minimum, as a Python int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{what}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_device(device) -> str:
    """'cpu', 'cuda' or 'cuda:N', and CUDA only where torch sees it."""
    device = str(device)
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:") and device[5:].isdigit()):
        raise ConfigError(f"device={device!r} must be 'cpu', 'cuda' or 'cuda:N'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but torch sees no CUDA device; use device='cpu' here")
    return device


def _capacity_for(n: int) -> int:
    """Initial capacity: exactly what is asked (a padded Parameter costs optimizer time on
    every step), never below a small floor so the first few edits need no reallocation."""
    return max(16, n)


@dataclass
class _Level:
    """One DAG level: its neurons, the edges into them, and how to run them."""

    row_ids: torch.Tensor      # neuron ids of the level, sorted
    bias_slice: tuple | None   # (lo, hi) when row_ids is a contiguous id range
    src_part: int              # index of the first earlier level output the sources touch
    src_offset: int            # column offset into the concatenation from src_part on
    width: int                 # number of source positions the block spans
    eids: torch.Tensor         # live edge slots into this level, in block (row-major) order
    weight_slice: tuple | None  # (lo, hi) when the block is exactly weight[lo:hi]
    flat: torch.Tensor         # dense kernel: flat position of each edge in the block
    src_local: torch.Tensor    # sparse kernel: source column of each edge
    dst_local: torch.Tensor    # sparse kernel: row of each edge
    sparse: bool
    is_output: bool


@dataclass
class _Plan:
    levels: list               # list[_Level] for DAG; empty for recurrent
    level_of: torch.Tensor     # (capacity,) level per neuron, -1 if dead (DAG)
    starts: list               # first position of each level's output, inputs included
    ids: torch.Tensor          # recurrent: live neuron ids in compact order
    r_eids: torch.Tensor       # recurrent: live edge slots
    r_src: torch.Tensor        # recurrent: compact source position of each edge
    r_dst: torch.Tensor        # recurrent: compact target position of each edge
    r_sparse: bool
    r_view: bool = False       # recurrent: every live edge in slot dst*m + src -> weight[:m*m].view
    r_dead: torch.Tensor | None = None  # recurrent view: the pairs with no edge (masked to 0)
    r_is_output: torch.Tensor | None = None  # recurrent: which compact positions are outputs
    compact_flat: torch.Tensor | None = None  # small nets: flat (row, col) position of every edge


class GraphNet(nn.Module):
    """A network of neurons and weighted directed edges whose topology can be edited.

    Neurons 0..n_in-1 are inputs, the next n_out are outputs, the rest hidden. `connect`
    picks the initial wiring: "dense" (every input to every output, a linear model) or
    "none". Use `GraphNet.mlp` for layered nets and `GraphNet.from_edges` for any graph.
    """

    # A level's block runs as dense addmm unless it is large and nearly empty, where the
    # gather/index_add kernel touches only live edges. Measured crossover on CPU.
    SPARSE_MIN_ENTRIES = 1 << 15
    SPARSE_MAX_DENSITY = 0.05
    # Recurrent sweeps run the gather/index_add kernel I times forward and back, so it pays off
    # only at lower density: compacted digits URNs (m ~ 230, density 3.6-4.7%) ran 2-3x slower
    # sparse than dense; the crossover measured there is ~1.5%.
    SPARSE_MAX_DENSITY_RECURRENT = 0.01
    # Small irregular nets (grown ones) build one dense position-ordered matrix per forward
    # and slice every level's block out of it: one scatter instead of one per level.
    COMPACT_MAX_ENTRIES = 1 << 18

    def __init__(self, n_in: int, n_out: int, activation: str = "tanh",
                 output_activation: str = "identity", *, mode: str = "dag", steps: int = 1,
                 clamp_inputs: bool = False, connect: str = "dense", kernel: str = "auto",
                 seed: int = 0, neuron_capacity: int | None = None,
                 edge_capacity: int | None = None, dtype: torch.dtype = torch.float32,
                 device=None):
        super().__init__()
        self.n_in = _check_count(n_in, "n_in", 1)
        self.n_out = _check_count(n_out, "n_out", 1)
        self.activation = _check_activation(activation, "activation")
        self.output_activation = _check_activation(output_activation, "output_activation")
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r} is not supported; expected one of {MODES}")
        if kernel not in KERNELS:
            raise ConfigError(f"kernel={kernel!r} is not supported; expected one of {KERNELS}")
        if connect not in ("dense", "none"):
            raise ConfigError(f"connect={connect!r} is not supported; expected 'dense' or 'none'")
        self.mode, self.kernel = mode, kernel
        self.steps = _check_count(steps, "steps", 1)
        self.clamp_inputs = bool(clamp_inputs)
        self.seed = seed
        n_fixed = n_in + n_out
        cap_n = _capacity_for(max(neuron_capacity or 0, n_fixed + 1))
        n_dense = n_in * n_out if connect == "dense" else 0
        cap_e = _capacity_for(max(edge_capacity or 0, n_dense))
        self.weight = nn.Parameter(torch.zeros(cap_e, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(cap_n, dtype=dtype, device=device))
        self.register_buffer("neuron_alive", torch.zeros(cap_n, dtype=torch.bool, device=device))
        self.register_buffer("neuron_uid", torch.full((cap_n,), -1, dtype=torch.long, device=device))
        self.register_buffer("edge_alive", torch.zeros(cap_e, dtype=torch.bool, device=device))
        self.register_buffer("edge_src", torch.zeros(cap_e, dtype=torch.long, device=device))
        self.register_buffer("edge_dst", torch.zeros(cap_e, dtype=torch.long, device=device))
        self.register_buffer("edge_uid", torch.full((cap_e,), -1, dtype=torch.long, device=device))
        self._next_uid = 0
        self._plan: _Plan | None = None
        self._topology = None  # edits._Topology, built on the first edit
        self.track_activity = False
        self.last_activity: torch.Tensor | None = None
        self._write_structure(new_neurons=torch.arange(n_fixed), new_bias=torch.zeros(n_fixed))
        if connect == "dense":
            self._add_initial_edges(torch.arange(n_in).repeat(n_out),
                                    torch.arange(n_in, n_fixed).repeat_interleave(n_in))
            self._init_uniform(torch.arange(n_in, n_fixed))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def mlp(cls, n_in: int, hidden, n_out: int, activation: str = "tanh",
            output_activation: str = "identity", seed: int = 0, **kwargs) -> "GraphNet":
        """Fully connected layers n_in -> hidden[0] -> ... -> n_out, initialised like nn.Linear.
        `hidden`: a list of widths (one int is one hidden layer)."""
        n_in, n_out = _check_count(n_in, "n_in", 1), _check_count(n_out, "n_out", 1)
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = [hidden]
        if isinstance(hidden, str) or not hasattr(hidden, "__iter__"):
            raise ConfigError(f"hidden={hidden!r} must be a list of layer widths, e.g. [64, 64]")
        hidden = [_check_count(h, "hidden width", 1) for h in hidden]
        src, dst, ids = [], [], []
        prev = torch.arange(n_in)
        first = n_in + n_out
        for width in hidden:
            layer = torch.arange(first, first + width)
            first += width
            src.append(prev.repeat(width))
            dst.append(layer.repeat_interleave(len(prev)))
            ids.append(layer)
            prev = layer
        out = torch.arange(n_in, n_in + n_out)
        src.append(prev.repeat(n_out))
        dst.append(out.repeat_interleave(len(prev)))
        n_edges = sum(len(s) for s in src)
        net = cls(n_in, n_out, activation, output_activation, connect="none", seed=seed,
                  neuron_capacity=max(first, kwargs.pop("neuron_capacity", None) or 0),
                  edge_capacity=max(n_edges, kwargs.pop("edge_capacity", None) or 0), **kwargs)
        if ids:
            net._write_structure(new_neurons=torch.cat(ids), new_bias=torch.zeros(first - n_in - n_out))
        net._add_initial_edges(torch.cat(src), torch.cat(dst))
        net._init_uniform(torch.arange(n_in, first))
        return net

    @classmethod
    def from_edges(cls, n_in: int, n_out: int, n_hidden: int, src, dst, weight=None,
                   bias=None, seed: int = 0, **kwargs) -> "GraphNet":
        """Any graph: hidden neurons get ids n_in+n_out .. n_in+n_out+n_hidden-1.

        Missing weights/biases are drawn like nn.Linear's (uniform, scaled by fan-in).
        """
        n_in, n_out = _check_count(n_in, "n_in", 1), _check_count(n_out, "n_out", 1)
        n_hidden = _check_count(n_hidden, "n_hidden", 0)
        src = torch.as_tensor(src, dtype=torch.long).reshape(-1)
        dst = torch.as_tensor(dst, dtype=torch.long).reshape(-1)
        n_total = n_in + n_out + n_hidden
        w = None if weight is None else torch.as_tensor(weight, dtype=torch.float64).reshape(-1)
        b = None if bias is None else torch.as_tensor(bias, dtype=torch.float64).reshape(-1)
        if len(dst) != len(src) or (w is not None and len(w) != len(src)):
            raise ConfigError(f"src, dst and weight must have one entry per edge; got {len(src)}, {len(dst)}"
                              + ("" if w is None else f" and {len(w)}"))
        if b is not None and len(b) != n_out + n_hidden:
            raise ConfigError(f"bias has {len(b)} entries; expected n_out + n_hidden = {n_out + n_hidden} "
                              "(the outputs' biases, then the hidden neurons')")
        net = cls(n_in, n_out, connect="none", seed=seed, neuron_capacity=n_total,
                  edge_capacity=len(src), **kwargs)
        hidden = torch.arange(n_in + n_out, n_total)
        net._write_structure(new_neurons=hidden, new_bias=torch.zeros(n_hidden))
        from .edits import Edits  # edges go through the edit path so they are validated
        e = Edits()
        for s, d, x in zip(src.tolist(), dst.tolist(), (w if w is not None else torch.zeros(len(src))).tolist()):
            e.add_edge(s, d, weight=x)
        net.apply_edits(e)
        saved = net.weight.detach().clone()
        net._init_uniform(torch.arange(n_in, n_total))
        with torch.no_grad():
            if weight is not None:
                net.weight.copy_(saved)
            if b is not None:
                net.bias[n_in:n_total] = b.to(net.bias.dtype)
        return net

    @classmethod
    def dense_recurrent(cls, n_in: int, n_out: int, n_hidden: int, steps: int, activation: str = "relu",
                        output_activation: str = "identity", clamp_inputs: bool = False, seed: int = 0,
                        init_std: float | None = None, **kwargs) -> "GraphNet":
        """Recurrent mode with every ordered pair of neurons connected (self loops included).

        Edge slot dst*m + src holds W[dst, src], so the executor runs `weight` as an m x m
        view with no scatter. Weights ~ N(0, init_std^2), He init sqrt(2/m) by default.
        """
        _check_count(n_hidden, "n_hidden", 0)
        m = n_in + n_out + n_hidden
        net = cls(n_in, n_out, activation, output_activation, mode="recurrent", steps=steps,
                  clamp_inputs=clamp_inputs, connect="none", seed=seed, neuron_capacity=m,
                  edge_capacity=m * m, **kwargs)
        net._connect_all_pairs(n_hidden, init_std)
        return net

    def _connect_all_pairs(self, n_hidden: int, init_std: float | None = None, io_edges: bool = True) -> None:
        """Constructor-only: add n_hidden neurons and every ordered pair as an edge, N(0, std^2).

        With io_edges=False, edges into inputs and out of outputs are left out: inputs are
        only written, outputs only read."""
        first = self.n_in + self.n_out
        m = first + n_hidden
        self._write_structure(new_neurons=torch.arange(first, m), new_bias=torch.zeros(n_hidden))
        src, dst = torch.arange(m).repeat(m), torch.arange(m).repeat_interleave(m)
        if not io_edges:
            keep = (dst >= self.n_in) & ((src < self.n_in) | (src >= first))
            src, dst = src[keep], dst[keep]
        if self.n_edges:
            raise RuntimeError("_connect_all_pairs runs on a network without edges")
        slots = dst * m + src  # the recurrent executor then reads W as a view of `weight`
        self._write_structure(new_edge_slots=slots, new_src=src, new_dst=dst, new_weight=torch.zeros(len(src)))
        self._topology = None
        gen = torch.Generator().manual_seed(int(self.seed))
        std = init_std if init_std is not None else math.sqrt(2.0 / m)
        with torch.no_grad():
            self.weight[slots.to(self.weight.device)] = (torch.randn(len(src), generator=gen) * std).to(self.weight)

    def _add_initial_edges(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Constructor-only: append edges in consecutive slots, so blocks are weight views."""
        live = self.edge_alive.nonzero()
        start = int(live.max()) + 1 if len(live) else 0
        self._write_structure(new_edge_slots=torch.arange(start, start + len(src)), new_src=src,
                              new_dst=dst, new_weight=torch.zeros(len(src)))
        self._topology = None

    def _init_uniform(self, bias_ids: torch.Tensor) -> None:
        """nn.Linear-style init of all live edges and of `bias_ids`: U(-1/sqrt(fan_in), +)."""
        gen = torch.Generator().manual_seed(int(self.seed))
        slots = self.edge_alive.nonzero().squeeze(1)
        dst = self.edge_dst[slots].cpu()
        fan_in = torch.bincount(dst, minlength=self.capacity).clamp(min=1).float()
        w = (torch.rand(len(slots), generator=gen) * 2 - 1) * fan_in[dst].rsqrt()
        b = (torch.rand(len(bias_ids), generator=gen) * 2 - 1) * fan_in[bias_ids].rsqrt()
        with torch.no_grad():
            self.weight[slots] = w.to(self.weight)
            self.bias[bias_ids.to(self.bias.device)] = b.to(self.bias)

    # ----------------------------------------------------------------- properties
    @property
    def capacity(self) -> int:
        """Neuron capacity (size of `bias`)."""
        return self.bias.numel()

    @property
    def edge_capacity(self) -> int:
        return self.weight.numel()

    @property
    def n_neurons(self) -> int:
        return int(self.neuron_alive.sum())

    @property
    def n_hidden(self) -> int:
        return self.n_neurons - self.n_in - self.n_out

    @property
    def n_edges(self) -> int:
        return int(self.edge_alive.sum())

    @property
    def n_params(self) -> int:
        """Live edge weights plus the biases that enter the computation."""
        n_bias = self.n_neurons - self.n_in
        if self.mode == "recurrent" and not self.clamp_inputs:
            n_bias = self.n_neurons
        return self.n_edges + n_bias

    def hidden_ids(self) -> torch.Tensor:
        alive = self.neuron_alive.clone()
        alive[: self.n_in + self.n_out] = False
        return alive.nonzero().squeeze(1)

    def edges(self):
        """(src, dst, weight) of the live edges, as 1-D tensors in slot order."""
        slots = self.edge_alive.nonzero().squeeze(1)
        return self.edge_src[slots], self.edge_dst[slots], self.weight.detach()[slots]

    def config(self) -> dict:
        """Constructor arguments that, with the tensors, fully describe the network."""
        return dict(n_in=self.n_in, n_out=self.n_out, activation=self.activation,
                    output_activation=self.output_activation, mode=self.mode,
                    steps=self.steps, clamp_inputs=self.clamp_inputs, kernel=self.kernel,
                    seed=self.seed)

    def extra_repr(self) -> str:
        return (f"n_in={self.n_in}, n_out={self.n_out}, n_hidden={self.n_hidden}, "
                f"n_edges={self.n_edges}, mode={self.mode!r}, activation={self.activation!r}")

    # ----------------------------------------------------------------- editing
    def apply_edits(self, edits, optimizer=None):
        """Apply a batch of structural changes; keep `optimizer`'s state for every survivor."""
        from .edits import apply_edits
        return apply_edits(self, edits, optimizer)

    def _take_uids(self, k: int) -> torch.Tensor:
        uids = torch.arange(self._next_uid, self._next_uid + k)
        self._next_uid += k
        return uids

    def _write_structure(self, *, new_neurons=None, new_bias=None, dead_neurons=None,
                         new_edge_slots=None, new_src=None, new_dst=None, new_weight=None,
                         dead_edge_slots=None, bias_ids=None, bias_delta=None,
                         optimizer=None) -> None:
        """The one place tensors change liveness (and, when full, shape; `pack_edges` is the
        other place shapes change). Removals first, then additions."""
        dev = self.weight.device

        def as_long(x):
            return torch.as_tensor(x, dtype=torch.long).reshape(-1).to(dev)

        def present(x) -> bool:
            return x is not None and len(x) > 0

        def highest(x) -> int:
            return int(as_long(x).max()) + 1 if present(x) else 0

        need_n, need_e = highest(new_neurons), highest(new_edge_slots)
        if need_n > self.capacity or need_e > self.edge_capacity:
            self._grow(need_n, need_e, optimizer)

        with torch.no_grad():
            if present(dead_edge_slots):
                self._retire(self.weight, self.edge_alive, self.edge_uid, as_long(dead_edge_slots), optimizer)
            if present(dead_neurons):
                self._retire(self.bias, self.neuron_alive, self.neuron_uid, as_long(dead_neurons), optimizer)
            if present(new_neurons):
                self._admit(self.bias, self.neuron_alive, self.neuron_uid, as_long(new_neurons), new_bias,
                            optimizer)
            if present(new_edge_slots):
                s = as_long(new_edge_slots)
                self.edge_src[s] = as_long(new_src)
                self.edge_dst[s] = as_long(new_dst)
                self._admit(self.weight, self.edge_alive, self.edge_uid, s, new_weight, optimizer)
            if present(bias_ids):
                self.bias.index_add_(0, as_long(bias_ids),
                                     torch.as_tensor(bias_delta, dtype=self.bias.dtype).to(dev))
        self._plan = None

    @staticmethod
    def _retire(param, alive, uid, slots, optimizer) -> None:
        """Free slots of a Parameter: value 0, dead, no owner, fresh optimizer state."""
        from .surgery import zero_slots
        param[slots] = 0
        alive[slots] = False
        uid[slots] = -1
        zero_slots(optimizer, param, slots)

    def _admit(self, param, alive, uid, slots, values, optimizer) -> None:
        """Occupy slots of a Parameter with `values`, a new owner id each, fresh optimizer state."""
        from .surgery import zero_slots
        param[slots] = torch.as_tensor(values, dtype=param.dtype).to(param.device)
        alive[slots] = True
        uid[slots] = self._take_uids(len(slots)).to(param.device)
        zero_slots(optimizer, param, slots)

    def _grow(self, need_neurons: int, need_edges: int, optimizer) -> None:
        """Reallocate to at least double capacity; optimizer state follows every slot."""
        from .surgery import replace_parameter

        def grown(t: torch.Tensor, size: int, fill) -> torch.Tensor:
            out = torch.full((size,), fill, dtype=t.dtype, device=t.device)
            out[: t.numel()] = t
            return out

        if need_neurons > self.capacity:
            size = max(2 * self.capacity, need_neurons)
            new = nn.Parameter(grown(self.bias.detach(), size, 0))
            replace_parameter(optimizer, self.bias, new)
            self.bias = new
            self._bias_replaced()
            self.neuron_alive = grown(self.neuron_alive, size, False)
            self.neuron_uid = grown(self.neuron_uid, size, -1)
        if need_edges > self.edge_capacity:
            every_slot = torch.arange(self.edge_capacity, device=self.weight.device)
            self._move_edges(max(2 * self.edge_capacity, need_edges), every_slot, optimizer)

    def _bias_replaced(self) -> None:
        """Called after `bias` became a new Parameter (subclasses re-attach hooks here)."""

    def pack_edges(self, optimizer=None) -> None:
        """Move the live edges to the front slots and shrink the edge storage to fit them.

        Growth only ever enlarges storage, and the padded `weight` costs optimizer time on
        every step; after heavy pruning (a compacted URN keeps ~0.1% of its S*S edges) packing
        makes each step cost what the live network costs. Edge slots are renumbered (order and
        uids kept); the SPM notices the smaller storage and restarts its per-slot windows.
        """
        live = self.edge_alive.nonzero().squeeze(1)
        size = _capacity_for(len(live))
        if size >= self.edge_capacity:
            return
        self._move_edges(size, live, optimizer)
        self._topology = None  # slot numbers changed
        self._plan = None

    def _move_edges(self, size: int, keep: torch.Tensor, optimizer) -> None:
        """New edge storage of `size` slots holding old slots `keep` at the front (growth keeps
        every slot, packing the live ones); values, grads and optimizer state move with them."""
        from .surgery import replace_parameter

        def moved(t: torch.Tensor, fill) -> torch.Tensor:
            out = torch.full((size,), fill, dtype=t.dtype, device=t.device)
            out[: len(keep)] = t[keep]
            return out

        new = nn.Parameter(moved(self.weight.detach(), 0), requires_grad=self.weight.requires_grad)
        if self.weight.grad is not None:  # an edit between backward() and step() loses nothing
            new.grad = moved(self.weight.grad, 0)
        replace_parameter(optimizer, self.weight, new, old_slots=keep)
        self.weight = new
        for name, fill in (("edge_alive", False), ("edge_src", 0), ("edge_dst", 0), ("edge_uid", -1)):
            setattr(self, name, moved(getattr(self, name), fill))

    # ----------------------------------------------------------------- planning
    def levels(self) -> torch.Tensor:
        """Level of every neuron slot (DAG mode): inputs 0, outputs last, -1 for dead slots."""
        return self._get_plan().level_of

    def _compute_levels(self) -> torch.Tensor:
        alive = self.neuron_alive
        n_fixed = self.n_in + self.n_out
        slots = self.edge_alive.nonzero().squeeze(1)
        src, dst = self.edge_src[slots], self.edge_dst[slots]
        hidden_edge = dst >= n_fixed
        src_h, dst_h = src[hidden_edge], dst[hidden_edge]
        level = torch.where(alive, 1, -1).to(torch.long)
        level[: self.n_in] = 0
        # Longest-path relaxation, vectorised over edges; converges in depth+1 rounds.
        for _ in range(int(alive.sum()) + 1):
            new = level.scatter_reduce(0, dst_h, level[src_h] + 1, reduce="amax")
            if torch.equal(new, level):
                break
            level = new
        else:
            raise CycleError("the graph has a cycle, so it cannot run in DAG mode")
        hidden = alive.clone()
        hidden[:n_fixed] = False
        top = int(level[hidden].max()) if bool(hidden.any()) else 0
        level[self.n_in:n_fixed] = top + 1
        return level

    def _apply(self, fn, *args, **kwargs):
        self._plan = None  # the plan holds index tensors on the old device
        return super()._apply(fn, *args, **kwargs)

    def _get_plan(self) -> _Plan:
        if self._plan is None:
            self._plan = self._build_dag_plan() if self.mode == "dag" else self._build_recurrent_plan()
        return self._plan

    def _use_sparse(self, n_edges: int, entries: int, recurrent: bool = False) -> bool:
        if self.kernel != "auto":
            return self.kernel == "sparse"
        max_density = self.SPARSE_MAX_DENSITY_RECURRENT if recurrent else self.SPARSE_MAX_DENSITY
        return entries >= self.SPARSE_MIN_ENTRIES and n_edges < max_density * entries

    def _build_recurrent_plan(self) -> _Plan:
        dev = self.weight.device
        ids = self.neuron_alive.nonzero().squeeze(1)
        pos = torch.full((self.capacity,), -1, dtype=torch.long, device=dev)
        pos[ids] = torch.arange(len(ids), device=dev)
        eids = self.edge_alive.nonzero().squeeze(1)
        m = len(ids)
        r_src, r_dst = pos[self.edge_src[eids]], pos[self.edge_dst[eids]]
        # Every live edge in slot dst*m + src (how dense_recurrent and URN lay them out): W is a
        # view of `weight`. Missing pairs are masked, so their gradient is zero and they stay 0.
        view = bool(m and len(eids) and m * m <= self.edge_capacity and int(ids[-1]) == m - 1
                    and torch.equal(r_dst * m + r_src, eids))
        dead = ~self.edge_alive[: m * m] if view and len(eids) < m * m else None
        is_output = torch.zeros(m, dtype=torch.bool, device=dev)
        is_output[self.n_in:self.n_in + self.n_out] = True
        sparse = self._use_sparse(len(eids), m * m, recurrent=True)
        return _Plan([], pos, [], ids, eids, r_src, r_dst, sparse, view, r_dead=dead, r_is_output=is_output)

    def _build_dag_plan(self) -> _Plan:
        dev = self.weight.device
        level = self._compute_levels()
        ids = self.neuron_alive.nonzero().squeeze(1)
        order = ids[torch.argsort(level[ids] * self.capacity + ids)]
        pos = torch.full((self.capacity,), -1, dtype=torch.long, device=dev)
        pos[order] = torch.arange(len(order), device=dev)
        counts = torch.bincount(level[order]).tolist()
        starts = [0]
        for c in counts:
            starts.append(starts[-1] + c)
        eids = self.edge_alive.nonzero().squeeze(1)
        e_dst_pos, e_src_pos = pos[self.edge_dst[eids]], pos[self.edge_src[eids]]
        e_level = level[self.edge_dst[eids]]
        # Sort edges by (level, row, column): each level's edges then come out in block order.
        key = e_dst_pos * len(order) + e_src_pos
        perm = torch.argsort(key)
        eids, e_dst_pos, e_src_pos, e_level = eids[perm], e_dst_pos[perm], e_src_pos[perm], e_level[perm]
        per_level = torch.bincount(e_level, minlength=len(counts)).tolist()
        edge_start = 0
        levels = []
        top = len(counts) - 1
        for lv in range(1, len(counts)):
            a, b = starts[lv], starts[lv + 1]
            k = per_level[lv]
            le = eids[edge_start:edge_start + k]
            ps = e_src_pos[edge_start:edge_start + k]
            pd = e_dst_pos[edge_start:edge_start + k]
            edge_start += k
            lo = int(ps.min()) if k else a
            width, rows = a - lo, b - a
            part = bisect.bisect_right(starts, lo) - 1
            flat = (pd - a) * width + (ps - lo)
            row_ids = order[a:b]
            weight_slice = None
            if k == rows * width and k and int(le[-1] - le[0]) == k - 1 and bool((le[1:] - le[:-1] == 1).all()):
                weight_slice = (int(le[0]), int(le[-1]) + 1)
            bias_slice = None
            if int(row_ids[-1] - row_ids[0]) == rows - 1:
                bias_slice = (int(row_ids[0]), int(row_ids[-1]) + 1)
            levels.append(_Level(row_ids, bias_slice, part, lo - starts[part], width, le,
                                 weight_slice, flat, ps - lo, pd - a,
                                 self._use_sparse(k, rows * width), lv == top))
        compact = None
        m = len(order)
        if m * m <= self.COMPACT_MAX_ENTRIES and self.kernel == "auto" \
                and not all(lv.weight_slice for lv in levels):
            compact = e_dst_pos * m + e_src_pos
        return _Plan(levels, level, starts, order, eids, e_src_pos, e_dst_pos, False, compact_flat=compact)

    # ----------------------------------------------------------------- execution
    def forward(self, x: torch.Tensor, return_states: bool = False):
        """x: (batch, n_in) -> (batch, n_out). A 1-D x gives a 1-D result.

        With `return_states=True` also returns the list of per-step neuron states
        (recurrent mode: `steps` tensors of shape (batch, n_live) in compact id order).
        """
        if not torch.is_tensor(x):  # a numpy array or a list of numbers
            x = torch.as_tensor(x, dtype=self.weight.dtype, device=self.weight.device)
        if x.shape[-1:] != (self.n_in,) or x.dim() not in (1, 2):
            raise ConfigError(f"input of shape {tuple(x.shape)} does not fit n_in={self.n_in}; "
                              f"expected (batch, {self.n_in})")
        squeeze = x.dim() == 1
        x = x.reshape(-1, self.n_in).to(self.weight.dtype)
        plan = self._get_plan()
        if self.mode == "dag":
            y, states = self._forward_dag(x, plan), None
        else:
            y, states = self._forward_recurrent(x, plan)
        if squeeze:
            y = y[0]
        return (y, states) if return_states else y

    def _level_block(self, lv: _Level) -> tuple[torch.Tensor, torch.Tensor]:
        bias = self.bias[lv.bias_slice[0]:lv.bias_slice[1]] if lv.bias_slice else self.bias[lv.row_ids]
        if lv.sparse:
            return self.weight[lv.eids], bias
        rows = len(lv.row_ids)
        if lv.weight_slice:
            w = self.weight[lv.weight_slice[0]:lv.weight_slice[1]]
        else:
            w = self.weight.new_zeros(rows * lv.width).index_put((lv.flat,), self.weight[lv.eids])
        return w.view(rows, lv.width), bias

    def _forward_dag(self, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        if plan.compact_flat is not None:
            return self._forward_dag_compact(x, plan)
        outs = [x]
        act, out_act = ACTIVATIONS[self.activation], ACTIVATIONS[self.output_activation]
        activity = None
        if self.track_activity:
            activity = x.new_zeros(self.capacity)
            activity[: self.n_in] = x.detach().abs().mean(0)
        for lv in plan.levels:
            rows = len(lv.row_ids)
            w, b = self._level_block(lv)
            if lv.width == 0:
                z = b.expand(x.shape[0], rows)
            else:
                parts = outs[lv.src_part:]
                src = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
                if lv.src_offset or src.shape[1] != lv.width:
                    src = src[:, lv.src_offset:lv.src_offset + lv.width]
                if lv.sparse:
                    z = b.expand(x.shape[0], rows).index_add(1, lv.dst_local, src[:, lv.src_local] * w)
                else:
                    z = torch.addmm(b, src, w.t())
            h = (out_act if lv.is_output else act)(z)
            if activity is not None:
                activity[lv.row_ids] = h.detach().abs().mean(0)
            outs.append(h)
        if activity is not None:
            self.last_activity = activity
        return outs[-1]

    def _forward_dag_compact(self, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        """Small irregular DAGs (grown nets): one dense (m, m) matrix in level order and one
        (batch, m) state that each level writes its slice into. Every level reads the whole
        state (columns not yet computed meet zero weights), so a deep net costs a constant
        number of autograd nodes per level instead of a concatenation of all earlier levels."""
        m = len(plan.ids)
        sizes = [b - a for a, b in zip(plan.starts, plan.starts[1:])]
        w_all = self.weight.new_zeros(m * m).index_put((plan.compact_flat,), self.weight[plan.r_eids])
        w_rows, b_rows = w_all.view(m, m).split(sizes), self.bias[plan.ids].split(sizes)
        act, out_act = ACTIVATIONS[self.activation], ACTIVATIONS[self.output_activation]
        state = torch.cat([x, x.new_zeros(x.shape[0], m - sizes[0])], 1)
        top = len(sizes) - 1
        for i in range(1, top + 1):
            h = (out_act if i == top else act)(torch.addmm(b_rows[i], state, w_rows[i].t()))
            if i < top or self.track_activity:
                state = state.slice_scatter(h, 1, plan.starts[i], plan.starts[i + 1])
        if self.track_activity:
            activity = x.new_zeros(self.capacity)
            activity[plan.ids] = state.detach().abs().mean(0)
            self.last_activity = activity
        return h

    def _forward_recurrent(self, x: torch.Tensor, plan: _Plan):
        m = len(plan.ids)
        n_in, n_fixed = self.n_in, self.n_in + self.n_out
        b = self.bias[:m] if plan.r_view else self.bias[plan.ids]
        if plan.r_view:
            w_flat = self.weight[: m * m]
            if plan.r_dead is not None:
                w_flat = w_flat.masked_fill(plan.r_dead, 0)
            w_dense = w_flat.view(m, m)
        else:
            w = self.weight[plan.r_eids]
            if not plan.r_sparse:
                w_dense = w.new_zeros(m * m).index_put((plan.r_dst * m + plan.r_src,), w).view(m, m)
        act, out_act = ACTIVATIONS[self.activation], ACTIVATIONS[self.output_activation]
        if not plan.r_sparse:
            # Transposed once, outside the sweeps: the I weight gradients then meet and sum in
            # the layout mm produces them in (summing I strided S x S views was 2x slower).
            w_t = w_dense.t()
        h = torch.cat([x, x.new_zeros(x.shape[0], m - n_in)], 1)
        states = []
        for _ in range(self.steps):
            if plan.r_sparse:
                z = b.expand(x.shape[0], m).index_add(1, plan.r_dst, h[:, plan.r_src] * w)
            else:
                z = torch.addmm(b, h, w_t)
            # one select rather than slicing z into inputs, outputs and hidden and concatenating
            # them again: fewer autograd nodes per sweep, which is most of a small net's step
            h = torch.where(plan.r_is_output, out_act(z), act(z))
            if self.clamp_inputs:
                h = torch.cat([x, h[:, n_in:]], 1)
            states.append(h)
        if self.track_activity:
            activity = x.new_zeros(self.capacity)
            activity[plan.ids] = torch.stack([s.detach().abs().mean(0) for s in states]).mean(0)
            self.last_activity = activity
        return h[:, n_in:n_fixed], states

    # ----------------------------------------------------------------- export
    def to_module(self) -> nn.Module:
        """A plain `torch.nn.Module` (a torch.fx GraphModule) computing the same function.

        It holds copies of the weights as ordinary dense Parameters and depends on nothing
        but torch, so `torch.save(module)` can be loaded without this library installed.
        """
        from .export import export_module
        return export_module(self)

    def export_onnx(self, path, batch_size: int = 1) -> None:
        """Write an ONNX file of `to_module()` (needs the `onnx` extra)."""
        from .export import export_onnx
        export_onnx(self, path, batch_size)
