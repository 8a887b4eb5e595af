"""GraphNet: neurons plus weighted directed edges, the only network type of the library.

Storage is capacity-padded. All edge weights live in one flat Parameter `weight` and all
biases in one flat Parameter `bias`, each with spare room and a boolean mask of live slots.
Neuron ids index `bias`; an edge is a slot of `weight` with its `edge_src`/`edge_dst` (32-bit:
a net has far fewer than 2**31 neurons). So an edit inside capacity flips mask bits and zeroes
optimizer state for the touched slots; the set of Parameters never changes, and an optimizer
built once keeps working. Only an overflow reallocates (doubling) and then `surgery` carries
every surviving slot's state, and any pending gradient.

This module is the storage; `execute.py` holds the plans and kernels that run it, and
`edits.py` the only path that changes it (`apply_edits`).
"""
from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import ConfigError, CycleError
from . import execute
from .execute import ACTIVATION_MODULES, ACTIVATION_NAMES, ACTIVATIONS  # noqa: F401  (re-exported)
from .trace import Trace
from .validate import check_choice, check_device, check_int

MODES = ("dag", "recurrent")
KERNELS = ("auto", "dense", "sparse", "csr")
INDEX_DTYPE = torch.int32   # edge_src / edge_dst / uids: 4 bytes per edge instead of 8
UID_LIMIT = 2**31 - 1
_BUILD_CHUNK = 1 << 16  # edges written at a time while constructing: bounded scratch memory


def check_activation(name: str, what: str) -> str:
    if name == "linear":
        name = "identity"
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ConfigError(f"{what}={name!r} is not supported; expected one of {sorted(ACTIVATIONS)}")
    return name


def _neuron_ids(neurons) -> torch.Tensor:
    """Neuron ids as a 1-D long tensor, from an int, a list of ints or an integer tensor (a
    bool mask or fractional ids are refused, not read as numbers)."""
    if isinstance(neurons, (list, tuple, range, numbers.Number)) or neurons is None:
        items = list(neurons) if isinstance(neurons, (list, tuple, range)) else [neurons]
        if not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in items):
            raise ConfigError(f"neuron ids must be ints, not {neurons!r}")
        return torch.tensor([int(i) for i in items], dtype=torch.long)
    try:  # a tensor or an array
        ids = torch.as_tensor(neurons)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"neuron ids must be ints, not {neurons!r}") from None
    if not _is_integer(ids):
        raise ConfigError(f"neuron ids must be integers, not {ids.dtype}")
    return ids.reshape(-1).long().cpu()


def _is_integer(t: torch.Tensor) -> bool:
    return not (t.dtype == torch.bool or t.is_floating_point() or t.is_complex())


def _capacity_for(n: int) -> int:
    """Initial capacity: exactly what is asked (a padded Parameter costs optimizer time on
    every step), never below a small floor so the first few edits need no reallocation."""
    return max(16, n)


def resized(t: torch.Tensor, size: int, fill, keep: torch.Tensor | None = None) -> torch.Tensor:
    """A new 1-D tensor of `size` holding t[keep] (default: all of t) at the front, `fill` after."""
    out = torch.full((size,), fill, dtype=t.dtype, device=t.device)
    if keep is None:
        out[: t.numel()] = t
    else:
        out[: len(keep)] = t[keep]
    return out


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
    # DAG levels below this density run as CSR sparse products (auto). Measured on one CPU
    # thread, MLP 784-2048-2048-10 pruned uniformly, batch 256: against the dense masked
    # kernel, CSR trained faster at 18% density, even at 25%, slower at 30% (`bench prune`'s net).
    CSR_MAX_DENSITY = 0.25
    # Recurrent sweeps below this density run W as one CSR matrix (the CsrLinear products of
    # the DAG levels, I times forward and back). Measured on one CPU thread, Adam steps of a
    # URN with random edges, batch 128, I=4: m=2000 neurons, CSR over dense 9.8x at 0.5%,
    # 5.5x at 2%, 1.9x at 5%, 2.3x at 10%, 0.65x at 20%; m=300: 1.35x at 4%, 1.17x at 10%.
    SPARSE_MAX_DENSITY_RECURRENT = 0.1
    # Small irregular nets (grown ones) build one dense position-ordered matrix per forward
    # and slice every level's block out of it: one scatter instead of one per level.
    COMPACT_MAX_ENTRIES = 1 << 18
    # Subclasses by name, so a checkpoint restores the class it was saved from (`from_saved`).
    _classes: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        GraphNet._classes[cls.__name__] = cls

    @classmethod
    def registered_class(cls, name: str) -> type:
        from ..errors import CheckpointError
        if name == "GraphNet":
            return GraphNet
        if name not in GraphNet._classes:
            raise CheckpointError(f"the checkpoint holds a {name!r}, which is not a known GraphNet class")
        return GraphNet._classes[name]

    @classmethod
    def from_saved(cls, net: GraphNet, config: dict, positions) -> GraphNet:
        """A subclass's instance holding `net`'s graph, from the `config()` it was saved with."""
        return net

    def __init__(self, n_in: int, n_out: int, activation: str = "tanh",
                 output_activation: str = "identity", *, mode: str = "dag", steps: int = 1,
                 clamp_inputs: bool = False, connect: str = "dense", kernel: str = "auto",
                 seed: int = 0, neuron_capacity: int | None = None,
                 edge_capacity: int | None = None, dtype: torch.dtype = torch.float32,
                 device=None):
        super().__init__()
        if device is not None:
            device = check_device(device)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ConfigError(f"dtype={dtype!r} must be a floating-point torch dtype (torch.float32, torch.float64)")
        self.n_in = check_int(n_in, "n_in", 1)
        self.n_out = check_int(n_out, "n_out", 1)
        self.activation = check_activation(activation, "activation")
        self.output_activation = check_activation(output_activation, "output_activation")
        check_choice(mode, "mode", MODES)
        check_choice(kernel, "kernel", KERNELS)
        if kernel == "csr" and mode != "dag":
            raise ConfigError("kernel='csr' runs DAG levels; a recurrent net takes 'auto', 'dense' or 'sparse'")
        check_choice(connect, "connect", ("dense", "none"))
        self.mode, self.kernel = mode, kernel
        self.steps = check_int(steps, "steps", 1)
        self.clamp_inputs = bool(clamp_inputs)
        self.seed = seed
        n_fixed = n_in + n_out
        cap_n = _capacity_for(max(neuron_capacity or 0, n_fixed + 1))
        n_dense = n_in * n_out if connect == "dense" else 0
        cap_e = _capacity_for(max(edge_capacity or 0, n_dense))
        self.weight = nn.Parameter(torch.zeros(cap_e, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(cap_n, dtype=dtype, device=device))
        self.register_buffer("neuron_alive", torch.zeros(cap_n, dtype=torch.bool, device=device))
        self.register_buffer("neuron_uid", torch.full((cap_n,), -1, dtype=INDEX_DTYPE, device=device))
        # a free edge slot has source -1: liveness is derived, not stored (`edge_alive`)
        self.register_buffer("edge_src", torch.full((cap_e,), -1, dtype=INDEX_DTYPE, device=device))
        self.register_buffer("edge_dst", torch.zeros(cap_e, dtype=INDEX_DTYPE, device=device))
        # Edge owner ids cost 4 bytes an edge and only rules that follow edges over time read
        # them (the SPM's windows), so they exist from the first `track_edge_owners()` on.
        self.register_buffer("edge_uid", torch.empty(0, dtype=INDEX_DTYPE, device=device))
        # Per-neuron activation codes (ACTIVATION_NAMES) exist from the first `set_activations`
        # on (a NEAT genome that mixes them); until then every neuron runs `activation`, the
        # outputs `output_activation`, and nothing per neuron is stored or looked up.
        self.register_buffer("neuron_activation", torch.empty(0, dtype=torch.int8, device=device))
        self.next_uid = 0          # owner ids: a slot's uid changes whenever it gets a new edge
        self._plan: execute.Plan | None = None
        self.edit_index = None     # edits.EditIndex, built on the first edit, dropped on refusal
        self._trace_hooks: OrderedDict = OrderedDict()  # RemovableHandle needs a weak-referable dict
        self.write_structure(new_neurons=torch.arange(n_fixed), new_bias=torch.zeros(n_fixed))
        if connect == "dense":
            self._add_initial_edges(torch.arange(n_in).repeat(n_out),
                                    torch.arange(n_in, n_fixed).repeat_interleave(n_in))
            self._init_uniform(torch.arange(n_in, n_fixed))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def mlp(cls, n_in: int, hidden, n_out: int, activation: str = "tanh",
            output_activation: str = "identity", seed: int = 0, **kwargs) -> GraphNet:
        """Fully connected layers n_in -> hidden[0] -> ... -> n_out, initialised like nn.Linear.
        `hidden`: a list of widths (one int is one hidden layer)."""
        n_in, n_out = check_int(n_in, "n_in", 1), check_int(n_out, "n_out", 1)
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = [hidden]
        if isinstance(hidden, str) or not hasattr(hidden, "__iter__"):
            raise ConfigError(f"hidden={hidden!r} must be a list of layer widths, e.g. [64, 64]")
        hidden = [check_int(h, "hidden width", 1) for h in hidden]
        widths = [n_in, *hidden, n_out]
        n_edges = sum(a * b for a, b in zip(widths, widths[1:]))
        first = n_in + n_out + sum(hidden)
        net = cls(n_in, n_out, activation, output_activation, connect="none", seed=seed,
                  neuron_capacity=max(first, kwargs.pop("neuron_capacity", None) or 0),
                  edge_capacity=max(n_edges, kwargs.pop("edge_capacity", None) or 0), **kwargs)
        if hidden:
            net.write_structure(new_neurons=torch.arange(n_in + n_out, first),
                                new_bias=torch.zeros(first - n_in - n_out))
        # layer by layer and a chunk of edges at a time, in 32-bit ids: a big MLP's
        # construction then needs little more memory than the network itself
        prev, start = torch.arange(n_in, dtype=INDEX_DTYPE), n_in + n_out
        for width in [*hidden, None]:
            layer = (torch.arange(n_in, n_in + n_out) if width is None
                     else torch.arange(start, start + width)).to(INDEX_DTYPE)
            start += width or 0
            for lo in range(0, len(prev) * len(layer), _BUILD_CHUNK):
                edge = torch.arange(lo, min(lo + _BUILD_CHUNK, len(prev) * len(layer)))
                net._add_initial_edges(prev[edge % len(prev)], layer[edge // len(prev)])
            prev = layer
        net._init_uniform(torch.arange(n_in, first))
        return net

    @classmethod
    def from_edges(cls, n_in: int, n_out: int, n_hidden: int, src, dst, weight=None,
                   bias=None, seed: int = 0, **kwargs) -> GraphNet:
        """Any graph: hidden neurons get ids n_in+n_out .. n_in+n_out+n_hidden-1.

        Missing weights/biases are drawn like nn.Linear's (uniform, scaled by fan-in).
        """
        n_in, n_out = check_int(n_in, "n_in", 1), check_int(n_out, "n_out", 1)
        n_hidden = check_int(n_hidden, "n_hidden", 0)
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
        net.write_structure(new_neurons=hidden, new_bias=torch.zeros(n_hidden))
        from .edits import Edits  # edges go through the edit path so they are validated
        net.apply_edits(Edits().add_edges(src, dst, w if w is not None else torch.zeros(len(src))))
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
                        init_std: float | None = None, **kwargs) -> GraphNet:
        """Recurrent mode with every ordered pair of neurons connected (self loops included).

        Edge slot dst*m + src holds W[dst, src], so the executor runs `weight` as an m x m
        view with no scatter. Weights ~ N(0, init_std^2), He init sqrt(2/m) by default.
        """
        check_int(n_hidden, "n_hidden", 0)
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
        self.write_structure(new_neurons=torch.arange(first, m), new_bias=torch.zeros(n_hidden))
        src, dst = torch.arange(m).repeat(m), torch.arange(m).repeat_interleave(m)
        if not io_edges:
            keep = (dst >= self.n_in) & ((src < self.n_in) | (src >= first))
            src, dst = src[keep], dst[keep]
        if self.n_edges:
            raise RuntimeError("_connect_all_pairs runs on a network without edges")
        slots = dst * m + src  # the recurrent executor then reads W as a view of `weight`
        self.write_structure(new_edge_slots=slots, new_src=src, new_dst=dst, new_weight=torch.zeros(len(src)))
        self.edit_index = None
        gen = torch.Generator().manual_seed(int(self.seed))
        std = init_std if init_std is not None else math.sqrt(2.0 / m)
        with torch.no_grad():
            self.weight[slots.to(self.weight.device)] = (torch.randn(len(src), generator=gen) * std).to(self.weight)

    def _add_initial_edges(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Constructor-only: append edges in consecutive slots, so blocks are weight views."""
        live = self.edge_alive.nonzero()
        start = int(live.max()) + 1 if len(live) else 0
        self.write_structure(new_edge_slots=torch.arange(start, start + len(src)), new_src=src,
                             new_dst=dst, new_weight=0.0)
        self.edit_index = None

    def _init_uniform(self, bias_ids: torch.Tensor) -> None:
        """nn.Linear-style init of all live edges and of `bias_ids`: U(-1/sqrt(fan_in), +)."""
        gen = torch.Generator().manual_seed(int(self.seed))
        n = self.n_edges
        # the usual case (constructors): the live edges are exactly the first n slots
        slots = torch.arange(n) if bool((self.edge_src[:n] >= 0).all()) else self.edge_alive.nonzero().squeeze(1)
        fan_in = torch.zeros(self.capacity)
        for lo in range(0, n, _BUILD_CHUNK):  # a chunk at a time; the draws are the same either way
            fan_in += torch.bincount(self.edge_dst[slots[lo:lo + _BUILD_CHUNK]].cpu(), minlength=self.capacity)
        fan_in = fan_in.clamp(min=1).rsqrt()
        with torch.no_grad():
            for lo in range(0, n, _BUILD_CHUNK):
                chunk = slots[lo:lo + _BUILD_CHUNK]
                w = torch.rand(len(chunk), generator=gen).mul_(2).sub_(1).mul_(fan_in[self.edge_dst[chunk].cpu()])
                self.weight[chunk.to(self.weight.device)] = w.to(self.weight)
            b = (torch.rand(len(bias_ids), generator=gen) * 2 - 1) * fan_in[bias_ids]
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
    def edge_alive(self) -> torch.Tensor:
        """Which edge slots hold an edge (derived from the sources: -1 marks a free slot)."""
        return self.edge_src >= 0

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

    @property
    def mixed_activations(self) -> bool:
        """Whether the neurons carry activations of their own (`set_activations`)."""
        return self.neuron_activation.numel() > 0

    def neuron_activations(self) -> dict[int, str]:
        """The activation of every live neuron, by id (inputs too: they are computed only in
        recurrent mode without clamped inputs)."""
        ids = self.neuron_alive.nonzero().squeeze(1)
        codes = self._activation_codes()[ids].tolist()
        return {int(i): ACTIVATION_NAMES[c] for i, c in zip(ids.tolist(), codes)}

    def set_activations(self, neurons, activation) -> GraphNet:
        """Give live neurons activations of their own: `activation` is one name for all of
        `neurons` (an int, a list or a tensor of ids) or a list of names, one each. Neurons
        added later get the net's `activation`. Not an edit: the topology stays as it is."""
        ids = _neuron_ids(neurons)
        if isinstance(activation, str):
            names = [activation] * len(ids)
        elif isinstance(activation, (list, tuple)):
            names = list(activation)
        else:
            raise ConfigError(f"set_activations: activation must be a name or a list of names, not {activation!r}")
        if len(names) != len(ids):
            raise ConfigError(f"set_activations got {len(ids)} neurons but {len(names)} activations")
        codes = torch.tensor([ACTIVATION_NAMES.index(check_activation(a, "activation")) for a in names],
                             dtype=torch.int8)
        if len(ids) and (bool((ids < 0).any()) or bool((ids >= self.capacity).any())
                         or not bool(self.neuron_alive.cpu()[ids.clamp(0, self.capacity - 1)].all())):
            raise ConfigError("set_activations: every neuron must be a live neuron of the net")
        dev = self.bias.device
        if not self.mixed_activations:
            self.neuron_activation = self._activation_codes()
        self.neuron_activation[ids.to(dev)] = codes.to(dev)
        self._plan = None
        return self

    def _activation_codes(self) -> torch.Tensor:
        """(capacity,) int8 codes of every slot: the stored ones, else the net's defaults."""
        if self.mixed_activations:
            return self.neuron_activation.clone()
        codes = torch.full((self.capacity,), ACTIVATION_NAMES.index(self.activation), dtype=torch.int8,
                           device=self.bias.device)
        codes[self.n_in:self.n_in + self.n_out] = ACTIVATION_NAMES.index(self.output_activation)
        return codes

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
        # uids only tell whether a slot changed owner between two looks at it, so they wrap
        # around within 32 bits instead of costing 8 bytes per edge
        if self.next_uid + k <= UID_LIMIT:
            uids = torch.arange(self.next_uid, self.next_uid + k, dtype=INDEX_DTYPE)
        else:
            uids = (torch.arange(self.next_uid, self.next_uid + k) % UID_LIMIT).to(INDEX_DTYPE)
        self.next_uid = (self.next_uid + k) % UID_LIMIT
        return uids

    def write_structure(self, *, new_neurons=None, new_bias=None, dead_neurons=None,
                        new_edge_slots=None, new_src=None, new_dst=None, new_weight=None,
                        dead_edge_slots=None, bias_ids=None, bias_delta=None,
                        weight_slots=None, weight_values=None, optimizer=None) -> None:
        """The one place tensors change liveness (and, when full, shape; `pack_edges` is the
        other place shapes change), called by `apply_edits` once a batch is checked. Removals
        first, then additions. Not for direct use: it checks nothing."""
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
                self._retire(self.weight, self.edge_src, self.edge_uid, as_long(dead_edge_slots), optimizer)
            if present(dead_neurons):
                self._retire(self.bias, self.neuron_alive, self.neuron_uid, as_long(dead_neurons), optimizer)
                if self.mixed_activations:  # a free slot holds the default, as a new one does
                    self.neuron_activation[as_long(dead_neurons)] = ACTIVATION_NAMES.index(self.activation)
            if present(new_neurons):
                self._admit(self.bias, self.neuron_alive, self.neuron_uid, as_long(new_neurons), new_bias,
                            optimizer)
                if self.mixed_activations:  # a new neuron runs the net's activation
                    self.neuron_activation[as_long(new_neurons)] = ACTIVATION_NAMES.index(self.activation)
            if present(new_edge_slots):
                slots = as_long(new_edge_slots)
                self.edge_src[slots] = torch.as_tensor(new_src).reshape(-1).to(dev, INDEX_DTYPE)
                self.edge_dst[slots] = torch.as_tensor(new_dst).reshape(-1).to(dev, INDEX_DTYPE)
                self._admit(self.weight, None, self.edge_uid, slots, new_weight, optimizer)
            if present(bias_ids):
                self.bias.index_add_(0, as_long(bias_ids),
                                     torch.as_tensor(bias_delta, dtype=self.bias.dtype).to(dev))
            if present(weight_slots):  # value changes of existing edges (set_weights), last
                self.weight[as_long(weight_slots)] = torch.as_tensor(weight_values).to(dev, self.weight.dtype)
        structural = (new_neurons, dead_neurons, new_edge_slots, dead_edge_slots)
        if any(present(x) for x in structural):
            self._plan = None  # weight and bias values alone leave the plan as it is
            self._structure_changed()

    @staticmethod
    def _retire(param, alive, uid, slots, optimizer) -> None:
        """Free slots of a Parameter: value 0, dead (`alive`: a mask, or the edge sources, where
        -1 means free), no owner, fresh optimizer state."""
        from .surgery import zero_slots
        param[slots] = 0
        alive[slots] = False if alive.dtype == torch.bool else -1
        if uid.numel():
            uid[slots] = -1
        zero_slots(optimizer, param, slots)

    def _admit(self, param, alive, uid, slots, values, optimizer) -> None:
        """Occupy slots of a Parameter with `values`, a new owner id each, fresh optimizer state."""
        from .surgery import zero_slots
        if not isinstance(values, float):
            values = torch.as_tensor(values, dtype=param.dtype).to(param.device)
        param[slots] = values
        if alive is not None:  # (an edge is alive by its source, written before)
            alive[slots] = True
        if uid.numel():
            uid[slots] = self._take_uids(len(slots)).to(param.device)
        zero_slots(optimizer, param, slots)

    def _grow(self, need_neurons: int, need_edges: int, optimizer) -> None:
        """Reallocate to at least double capacity; optimizer state and gradients follow every slot."""
        if need_neurons > self.capacity:
            self._move_neurons(max(2 * self.capacity, need_neurons), None, optimizer)
        if need_edges > self.edge_capacity:
            self._move_edges(max(2 * self.edge_capacity, need_edges), None, optimizer)

    def _replace_parameter(self, name: str, size: int, keep: torch.Tensor | None, optimizer) -> None:
        """`name` as a new Parameter of `size` slots holding the old slots `keep` (default:
        all) at the front: values, gradient, requires_grad and optimizer state move along, so
        an edit between backward() and step() loses nothing."""
        from .surgery import replace_parameter
        old = getattr(self, name)
        new = nn.Parameter(resized(old.detach(), size, 0, keep), requires_grad=old.requires_grad)
        if old.grad is not None:
            new.grad = resized(old.grad, size, 0, keep)
        slots = keep if keep is not None else torch.arange(old.numel(), device=old.device)
        replace_parameter(optimizer, old, new, old_slots=slots)
        setattr(self, name, new)

    def _move_neurons(self, size: int, keep: torch.Tensor | None, optimizer) -> None:
        """New neuron storage of `size` slots holding old slots `keep` (default: all) at the front."""
        self._replace_parameter("bias", size, keep, optimizer)
        self._bias_replaced()
        self.neuron_alive = resized(self.neuron_alive, size, False, keep)
        self.neuron_uid = resized(self.neuron_uid, size, -1, keep)
        if self.mixed_activations:
            self.neuron_activation = resized(self.neuron_activation, size, ACTIVATION_NAMES.index(self.activation),
                                             keep)
        self._storage_resized()

    def _move_edges(self, size: int, keep: torch.Tensor | None, optimizer) -> None:
        """New edge storage of `size` slots holding old slots `keep` at the front (growth keeps
        every slot, packing the live ones)."""
        self._replace_parameter("weight", size, keep, optimizer)
        for name, fill in (("edge_src", -1), ("edge_dst", 0), ("edge_uid", -1)):
            if name != "edge_uid" or self.tracks_edge_owners:
                setattr(self, name, resized(getattr(self, name), size, fill, keep))
        self._storage_resized()

    @property
    def tracks_edge_owners(self) -> bool:
        return self.edge_uid.numel() > 0

    def track_edge_owners(self) -> GraphNet:
        """From now on keep `edge_uid`: an id per live edge slot that changes whenever the slot
        gets a new edge (and moves with the edge when slots are packed). Rules that keep
        statistics per edge over time call this; live edges get their ids now, in slot order."""
        if not self.tracks_edge_owners:
            uid = torch.full((self.edge_capacity,), -1, dtype=INDEX_DTYPE, device=self.weight.device)
            live = self.edge_alive.nonzero().squeeze(1)
            uid[live] = self._take_uids(len(live)).to(uid.device)
            self.edge_uid = uid
        return self

    def _bias_replaced(self) -> None:
        """Called after `bias` became a new Parameter (subclasses re-attach hooks here)."""

    def _storage_resized(self) -> None:
        """Called after the neuron or edge storage changed size or slot order."""
        self._structure_changed()

    def _structure_changed(self) -> None:
        """Called after neurons or edges came or went (subclasses drop what they derive from
        the topology here)."""

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
        self.edit_index = None  # slot numbers changed
        self._plan = None

    # ----------------------------------------------------------------- state dicts
    def get_extra_state(self) -> dict:
        return {"next_uid": self.next_uid, "config": self.config()}

    def set_extra_state(self, state) -> None:
        self.next_uid = int(state["next_uid"]) if isinstance(state, dict) and "next_uid" in state else 0

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """Adopt the saved topology and capacity: a grown net's state dict loads into a freshly
        built one (the usual `torch.save(net.state_dict())` / Lightning checkpoints). The storage
        is reallocated to the saved sizes first; an optimizer must be built after loading."""
        weight, bias = state_dict.get(prefix + "weight"), state_dict.get(prefix + "bias")
        self._check_loadable(state_dict, prefix)  # before anything is changed
        alive, src = state_dict.pop(prefix + "edge_alive", None), state_dict.get(prefix + "edge_src")
        if torch.is_tensor(alive) and torch.is_tensor(src):  # saved when liveness was a stored mask
            state_dict[prefix + "edge_src"] = torch.where(alive.to(src.device), src, -1)
        uid = state_dict.get(prefix + "edge_uid")
        if torch.is_tensor(uid) and uid.numel() != self.edge_uid.numel():  # owners kept or not, as saved
            self.edge_uid = torch.full((uid.numel(),), -1, dtype=INDEX_DTYPE, device=self.weight.device)
        if torch.is_tensor(src):  # a whole graph saved before per-neuron activations: a uniform net
            state_dict.setdefault(prefix + "neuron_activation", torch.empty(0, dtype=torch.int8))
        codes = state_dict.get(prefix + "neuron_activation")
        if torch.is_tensor(codes) and codes.numel() != self.neuron_activation.numel():  # per neuron, as saved
            self.neuron_activation = torch.zeros(codes.numel(), dtype=torch.int8, device=self.weight.device)
        if torch.is_tensor(weight) and torch.is_tensor(bias) and weight.dim() == bias.dim() == 1:
            # storage of the saved sizes; the values come with the state dict right after
            if bias.numel() != self.capacity:
                self._move_neurons(bias.numel(), self._first_slots(bias.numel(), self.capacity), None)
            if weight.numel() != self.edge_capacity:
                self._move_edges(weight.numel(), self._first_slots(weight.numel(), self.edge_capacity), None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self._plan = None
        self.edit_index = None

    _SHAPE_KEYS = ("n_in", "n_out", "mode", "steps", "clamp_inputs", "activation", "output_activation")

    def _check_loadable(self, state_dict, prefix: str) -> None:
        """A state dict of another kind of net, or one whose tensors do not make a graph, is one
        CheckpointError, before anything is loaded."""
        from ..errors import CheckpointError
        extra = state_dict.get(prefix + "_extra_state")
        saved = extra.get("config") if isinstance(extra, dict) else None
        if isinstance(saved, dict):
            mine = self.config()
            differ = [k for k in self._SHAPE_KEYS if k in saved and saved[k] != mine[k]]
            if differ:
                k = differ[0]
                raise CheckpointError(f"the state dict is of a net with {k}={saved[k]!r}, this one has "
                                      f"{k}={mine[k]!r}; build the net with the saved settings first")
        codes = state_dict.get(prefix + "neuron_activation")
        if codes is not None and not (torch.is_tensor(codes) and codes.dim() == 1 and _is_integer(codes)):
            raise CheckpointError("the state dict's neuron_activation must be a 1-D tensor of activation codes")
        tensors = {k: state_dict.get(prefix + k) for k in ("weight", "bias", "edge_src", "edge_dst", "neuron_alive")}
        if not all(torch.is_tensor(t) for t in tensors.values()):
            return  # a partial state dict: torch's own strict checks report what is missing
        alive = state_dict.get(prefix + "edge_alive")
        src, dst = tensors["edge_src"].long(), tensors["edge_dst"].long()
        if bool((src < -1).any()):  # -1 marks a free slot; any other negative source is no slot at all
            raise CheckpointError("the state dict has edge sources below -1 (a free edge slot's source is -1)")
        live = (src >= 0) if not torch.is_tensor(alive) else alive.bool() & (src >= 0)
        n = tensors["bias"].numel()
        src, dst = src[live], dst[live]
        neurons = tensors["neuron_alive"].bool()
        if len(neurons) != n or len(tensors["edge_src"]) != tensors["weight"].numel():
            raise CheckpointError("the state dict's tensors do not fit together (capacities differ)")
        outside = bool((src >= n).any() | (dst < 0).any() | (dst >= n).any())
        if outside or not bool(neurons[src].all() & neurons[dst].all()):
            raise CheckpointError("the state dict has edges between neurons that do not exist")
        if len(torch.unique(src * n + dst)) != len(src):  # as Edits.add_edge refuses a second one
            raise CheckpointError("the state dict has two edges between the same pair of neurons")
        if not bool(torch.isfinite(tensors["weight"]).all() & torch.isfinite(tensors["bias"]).all()):
            raise CheckpointError("the state dict holds weights or biases that are not finite")
        if torch.is_tensor(codes) and codes.numel() and (
                codes.numel() != n or bool((codes < 0).any() | (codes >= len(ACTIVATION_NAMES)).any())):
            raise CheckpointError("the state dict's per-neuron activations do not fit its neurons")
        n_in, n_fixed = self.n_in, self.n_in + self.n_out
        if not bool(neurons[:n_fixed].all()):
            raise CheckpointError(f"the state dict lacks some of the {n_fixed} input and output neurons")
        if self.mode == "dag":
            if bool((dst < n_in).any()) or bool(((src >= n_in) & (src < n_fixed)).any()):
                raise CheckpointError("the state dict has edges into inputs or out of outputs, which a DAG cannot run")
            try:
                execute.longest_path_levels(neurons, src, dst, n_in, self.n_out)
            except CycleError:
                raise CheckpointError("the state dict's edges form a cycle; this net runs as a DAG") from None

    def _first_slots(self, size: int, current: int) -> torch.Tensor | None:
        """What a resize to `size` keeps: every slot when growing, else the first `size`."""
        return None if size >= current else torch.arange(size, device=self.weight.device)

    # ----------------------------------------------------------------- planning
    def levels(self) -> torch.Tensor:
        """Level of every neuron slot: inputs 0, hidden 1 + the longest path from a source,
        outputs last, -1 for dead slots. In recurrent mode too, as long as the graph is
        acyclic (a CycleError otherwise: a recurrent net's layers are `analysis.structure`'s)."""
        if self.mode == "dag":
            return self.plan().level_of
        return execute.longest_path_levels(self.neuron_alive, self.edge_src, self.edge_dst, self.n_in, self.n_out)

    def _apply(self, fn, *args, **kwargs):
        self._plan = None  # the plan holds index tensors on the old device
        return super()._apply(fn, *args, **kwargs)

    def plan(self) -> execute.Plan:
        """The execution plan of the current topology (built once after each edit)."""
        if self._plan is None:
            build = execute.build_dag_plan if self.mode == "dag" else execute.build_recurrent_plan
            self._plan = build(self)
        return self._plan

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
        plan = self.plan()
        traced = bool(self._trace_hooks)
        if self.mode == "dag":
            y, state = execute.forward_dag(self, x, plan, keep=traced)
            states = [state] if traced else None
        else:
            y, states = execute.forward_recurrent(self, x, plan)
            if traced:
                start = torch.cat([x, x.new_zeros(x.shape[0], len(plan.ids) - self.n_in)], 1)
                trace_states = [start, *states]
        if traced:
            trace = Trace(x, plan.ids, states if self.mode == "dag" else trace_states, self.capacity,
                          recurrent=self.mode == "recurrent")
            for hook in list(self._trace_hooks.values()):
                hook(self, trace)
        if squeeze:
            y = y[0]
        return (y, states) if return_states else y

    def register_trace_hook(self, hook) -> RemovableHandle:
        """Call `hook(net, trace)` after every forward pass with the per-sample activity of every
        live neuron (a `Trace`); `handle.remove()` stops it. What local rules read."""
        handle = RemovableHandle(self._trace_hooks)
        self._trace_hooks[handle.id] = hook
        return handle

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

