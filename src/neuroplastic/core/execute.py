"""Plans and kernels: how a GraphNet's storage is run, and the one executor export reuses.

* DAG: neurons are ordered by level (inputs 0, outputs always last). A level's sources fall in
  one contiguous range of earlier positions, so each level is one dense `addmm` with the block
  `W[level, lo:hi]`. For an MLP built by `GraphNet.mlp` those blocks are plain views of
  `weight` (no copy, and no index tensor kept), which is why a layered GraphNet trains at MLP
  speed. Big, mostly empty blocks (a pruned net) run as a CSR sparse matrix product
  (`CsrLinear`: sparse x dense forward and input gradient, a sampled dense x dense product
  for the weight gradient), which touches only the live edges; `kernel="sparse"` picks the
  older gather/index_add kernel instead.
* recurrent: `steps` synchronous sweeps h <- act(W h + b) over all live neurons, inputs
  written once at the start (or clamped every sweep). W is a dense (m, m) matrix (a view of
  `weight` for a URN's all-pairs layout), or below `SPARSE_MAX_DENSITY_RECURRENT` one CSR
  matrix run through the same `CsrLinear` products: a URN cut down during training then
  costs what its live edges cost.

A plan is derived state: built lazily after an edit, never per forward pass. `run_levels` and
`run_sweeps` are pure torch functions of (input, weights, layout): GraphNet's forward and the
exported module both call them, so there is one executor.
"""
from __future__ import annotations

import bisect
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CycleError

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda z: z,
}
# Activation codes (a net's per-neuron activations, a GraphBatch's): the position in this tuple.
ACTIVATION_NAMES = tuple(ACTIVATIONS)
# The same activations as torch.nn modules, for plain-torch models built from or beside a GraphNet.
ACTIVATION_MODULES = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


class MixedActivation:
    """Per-column activations of a (batch, k) pre-activation, from k activation codes: the
    most common kind on all columns, then one select per other kind present. A plain callable
    of torch operations, so torch.fx traces it inline (masks that are a module's buffers
    become its attributes)."""

    def __init__(self, codes: torch.Tensor):
        kinds = torch.bincount(codes.long().cpu(), minlength=len(ACTIVATION_NAMES))
        order = [int(c) for c in torch.argsort(kinds, descending=True, stable=True) if kinds[c] > 0]
        self.base = ACTIVATIONS[ACTIVATION_NAMES[order[0]]]
        self.others = [(ACTIVATIONS[ACTIVATION_NAMES[c]], codes == c) for c in order[1:]]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        h = self.base(z)
        for fn, mask in self.others:
            h = torch.where(mask, fn(z), h)
        return h


def activation_for(codes: torch.Tensor):
    """The activation of a group of neurons with these codes: one function when they share it."""
    if len(codes) and bool((codes == codes[0]).all()):
        return ACTIVATIONS[ACTIVATION_NAMES[int(codes[0])]]
    return MixedActivation(codes)


@dataclass
class CsrLayout:
    """The sparsity pattern of a (rows, width) block with its edges in row-major order, and
    of its transpose (`t_perm` puts the edge weights in the transpose's order)."""

    crow: torch.Tensor
    col: torch.Tensor
    t_perm: torch.Tensor
    t_crow: torch.Tensor
    t_col: torch.Tensor
    rows: int
    width: int

    @classmethod
    def of(cls, dst_local: torch.Tensor, src_local: torch.Tensor, rows: int, width: int) -> CsrLayout:
        """From row and column of every edge, sorted by (row, column)."""
        dst_local, src_local = dst_local.long(), src_local.long()
        index = torch.int32 if len(dst_local) < 2**31 else torch.long

        def compressed(major, n):
            ptr = torch.zeros(n + 1, dtype=torch.long, device=major.device)
            ptr[1:] = torch.bincount(major, minlength=n).cumsum(0)
            return ptr.to(index)
        t_perm = torch.argsort(src_local * rows + dst_local)
        return cls(compressed(dst_local, rows), src_local.to(index), t_perm, compressed(src_local, width),
                   dst_local[t_perm].to(index), rows, width)

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(self.crow, self.col, values, (self.rows, self.width))

    def to_dense(self, values: torch.Tensor) -> torch.Tensor:
        return self.matrix(values).to_dense()


class CsrLinear(torch.autograd.Function):
    """x (batch, width) -> x @ W.T (batch, rows) for a CSR block W with edge weights `values`.
    Forward and the input gradient are sparse x dense products (W and its transpose); the
    weight gradient is the dense product grad.T @ x sampled at W's pattern only."""

    @staticmethod
    def forward(ctx, x, values, layout: CsrLayout):
        ctx.save_for_backward(x, values)
        ctx.layout = layout
        with warnings.catch_warnings():  # "sparse CSR support is in beta": its results are tested here
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse.mm(layout.matrix(values), x.t().contiguous()).t()

    @staticmethod
    def backward(ctx, grad):
        x, values = ctx.saved_tensors
        lay = ctx.layout
        grad_t = grad.t().contiguous()
        grad_x = grad_values = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if ctx.needs_input_grad[0]:
                w_t = torch.sparse_csr_tensor(lay.t_crow, lay.t_col, values[lay.t_perm], (lay.width, lay.rows))
                grad_x = torch.sparse.mm(w_t, grad_t).t()
            if ctx.needs_input_grad[1]:
                pattern = lay.matrix(torch.zeros_like(values))
                grad_values = torch.sparse.sampled_addmm(pattern, grad_t, x.contiguous(), beta=0.0).values()
        return grad_x, grad_values, None


@dataclass
class Level:
    """One DAG level: its neurons, the edges into them, and how to run them. Index tensors are
    kept only for the kernel that needs them (a weight-view level needs none)."""

    row_ids: torch.Tensor        # neuron ids of the level, sorted
    bias_slice: tuple | None     # (lo, hi) when row_ids is a contiguous id range
    src_part: int                # index of the first earlier level output the sources touch
    src_offset: int              # column offset into the concatenation from src_part on
    width: int                   # number of source positions the block spans
    weight_slice: tuple | None   # (lo, hi) when the block is exactly weight[lo:hi]
    sparse: bool
    is_output: bool
    eids: torch.Tensor | None = None       # live edge slots into this level, in block order
    flat: torch.Tensor | None = None       # dense kernel: flat position of each edge in the block
    src_local: torch.Tensor | None = None  # sparse kernel: source column of each edge
    dst_local: torch.Tensor | None = None  # sparse kernel: row of each edge
    csr: CsrLayout | None = None           # csr kernel: the block's sparsity pattern
    edge_range: tuple | None = None        # csr kernel: (lo, hi) when the edges are weight[lo:hi]

    @property
    def kernel(self) -> str:
        return "csr" if self.csr is not None else "sparse" if self.sparse else "dense"

    @property
    def layout(self) -> tuple:
        return self.src_part, self.src_offset, self.width, len(self.row_ids), self.is_output


@dataclass
class Plan:
    mode: str
    ids: torch.Tensor                      # live neuron ids in execution (level / compact) order
    levels: list = field(default_factory=list)   # DAG: list[Level]
    level_of: torch.Tensor | None = None   # DAG: level per neuron slot, -1 if dead
    starts: list = field(default_factory=list)   # DAG: first position of each level's output
    eids: torch.Tensor | None = None       # live edge slots (recurrent gather; DAG compact kernel)
    src_pos: torch.Tensor | None = None    # position of each edge's source in `ids`
    dst_pos: torch.Tensor | None = None
    sparse: bool = False                   # recurrent: CSR kernel (edges in eids, sorted by dst, src)
    csr: CsrLayout | None = None           # recurrent sparse: the pattern of W
    view: bool = False                     # recurrent: weight[:m*m] is W (slot dst*m + src)
    dead: torch.Tensor | None = None       # recurrent view: the pairs with no edge (masked to 0)
    is_output: torch.Tensor | None = None  # recurrent: which positions are outputs
    compact: bool = False                  # DAG: small irregular net, one (m, m) matrix
    # DAG: `weight.split(weight_split)` yields every weight-view level's block as one piece
    # (piece weight_piece[i] for level i), and likewise for biases: a split's backward writes
    # one gradient, where one slice per level would each allocate a zeroed full-size one.
    weight_split: list | None = None
    weight_piece: list | None = None
    bias_split: list | None = None
    bias_piece: list | None = None
    # per-neuron activations (a net that sets them): DAG, one callable per level; recurrent,
    # one MixedActivation over all positions. None: the net's activation and output_activation.
    acts: list | None = None


def _pieces(ranges: list, total: int) -> tuple[list, list]:
    """Split sizes covering [0, total) so that each (lo, hi) in `ranges` (or None) is one
    piece, and the piece index of each range (None for None)."""
    cuts = sorted({0, total, *(x for r in ranges if r for x in r)})
    sizes = [b - a for a, b in zip(cuts, cuts[1:])]
    where = {lo: i for i, lo in enumerate(cuts[:-1])}
    return sizes, [where[r[0]] if r else None for r in ranges]


def longest_path_levels(alive: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, n_in: int,
                        n_out: int) -> torch.Tensor:
    """Level of every neuron slot of a DAG: inputs 0, hidden 1 + longest path from a source,
    outputs all on one level after the deepest hidden one, -1 for dead slots. The edges are
    src[i] -> dst[i], skipping free slots (src -1). CycleError if they close a cycle."""
    n_fixed = n_in + n_out
    level = torch.where(alive, 1, -1).to(torch.int32)
    level[:n_in] = 0
    # Longest-path relaxation, vectorised over edges and in place, a chunk of edges at a time
    # (the int64 scatter index of a whole million-edge net would cost more than its weights);
    # converges in at most depth + 1 rounds.
    for _ in range(int(alive.sum()) + 1):
        before = level.clone()
        for lo in range(0, len(src), _CHUNK):
            s, d = src[lo:lo + _CHUNK], dst[lo:lo + _CHUNK]
            into_hidden = (d >= n_fixed) & (s >= 0)
            s, d = s[into_hidden], d[into_hidden]
            level.scatter_reduce_(0, d.long(), level[s] + 1, reduce="amax")
        if torch.equal(before, level):
            break
    else:
        raise CycleError("the graph has a cycle, so it cannot run in DAG mode")
    hidden = alive.clone()
    hidden[:n_fixed] = False
    top = int(level[hidden].max()) if bool(hidden.any()) else 0
    level[n_in:n_fixed] = top + 1
    return level.long()


def use_sparse(kernel: str, n_edges: int, entries: int, max_density: float, min_entries: int) -> bool:
    if kernel != "auto":
        return kernel == "sparse"
    return entries >= min_entries and n_edges < max_density * entries


def level_kernel(net, n_edges: int, entries: int) -> str:
    """dense, sparse (gather/index_add) or csr for a DAG level that is not a weight view.
    auto: csr for a big block below `CSR_MAX_DENSITY`, dense otherwise. A level without
    edges is its biases alone, whatever the kernel (dense with an empty block)."""
    if n_edges == 0:
        return "dense"
    if net.kernel != "auto":
        return net.kernel
    if n_edges and entries >= net.SPARSE_MIN_ENTRIES and n_edges < net.CSR_MAX_DENSITY * entries:
        return "csr"
    return "dense"


def build_recurrent_plan(net) -> Plan:
    dev = net.weight.device
    ids = net.neuron_alive.nonzero().squeeze(1)
    pos = torch.full((net.capacity,), -1, dtype=torch.long, device=dev)
    pos[ids] = torch.arange(len(ids), device=dev)
    eids = net.edge_alive.nonzero().squeeze(1)
    m = len(ids)
    src_pos, dst_pos = pos[net.edge_src[eids]], pos[net.edge_dst[eids]]
    # Every live edge in slot dst*m + src (how dense_recurrent and URN lay them out): W is a
    # view of `weight`. Missing pairs are masked, so their gradient is zero and they stay 0.
    view = bool(m and len(eids) and m * m <= net.edge_capacity and int(ids[-1]) == m - 1
                and torch.equal(dst_pos * m + src_pos, eids))
    dead = ~net.edge_alive[: m * m] if view and len(eids) < m * m else None
    is_output = torch.zeros(m, dtype=torch.bool, device=dev)
    is_output[net.n_in:net.n_in + net.n_out] = True
    sparse = use_sparse(net.kernel, len(eids), m * m, net.SPARSE_MAX_DENSITY_RECURRENT, net.SPARSE_MIN_ENTRIES)
    csr = None
    if sparse:  # W as one CSR matrix, its values the live edges in (target, source) order
        order = torch.argsort(dst_pos * m + src_pos)
        eids, src_pos, dst_pos = eids[order], src_pos[order], dst_pos[order]
        csr = CsrLayout.of(dst_pos, src_pos, m, m)
        view = False
    if view:  # the view needs no per-edge index at all (an S=5000 URN has 25M edges)
        eids = src_pos = dst_pos = None
    acts = [MixedActivation(net.neuron_activation[ids])] if net.mixed_activations else None
    return Plan("recurrent", ids, eids=eids, src_pos=src_pos, dst_pos=dst_pos, sparse=sparse, view=view,
                dead=dead, is_output=is_output, csr=csr, acts=acts)


_CHUNK = 1 << 16  # edges per step of the passes below: bounded scratch memory on big nets


def _layered_blocks(net, level: torch.Tensor, pos: torch.Tensor, starts: list) -> list | None:
    """(lo, hi, first source position) per level: the level's block is weight[lo:hi], when the
    live edges fill the first slots in block order and every level's block is full (a net
    built layer by layer, GraphNet.mlp). Found in one chunked pass without any per-edge array;
    None otherwise. Sorted unique keys and rows * width edges per level mean a full block:
    a DAG's sources all lie before the level."""
    n = net.n_edges
    if n == 0 or bool((net.edge_src[:n] < 0).any()) or bool((net.edge_src[n:] >= 0).any()):
        return None
    m = starts[-1]
    n_levels = len(starts) - 1
    counts = torch.zeros(n_levels, dtype=torch.long)
    lowest = torch.full((n_levels,), m, dtype=torch.long)
    last = -1
    for lo in range(0, n, _CHUNK):
        d, s = net.edge_dst[lo:lo + _CHUNK], net.edge_src[lo:lo + _CHUNK]
        key = pos[d].long() * m + pos[s].long()
        if int(key[0]) <= last or (len(key) > 1 and not bool((key[1:] > key[:-1]).all())):
            return None
        last = int(key[-1])
        lv = level[d].cpu()
        counts += torch.bincount(lv, minlength=n_levels)
        lowest.scatter_reduce_(0, lv, pos[s].long().cpu(), reduce="amin")
    slices, at = [], 0
    for lv in range(1, n_levels):
        rows, k = starts[lv + 1] - starts[lv], int(counts[lv])
        if k == 0 or k != rows * (starts[lv] - int(lowest[lv])):
            return None
        slices.append((at, at + k, int(lowest[lv])))
        at += k
    return slices


def build_dag_plan(net) -> Plan:
    dev = net.weight.device
    level = longest_path_levels(net.neuron_alive, net.edge_src, net.edge_dst, net.n_in, net.n_out)
    ids = net.neuron_alive.nonzero().squeeze(1)
    order = ids[torch.argsort(level[ids] * net.capacity + ids)]
    m = len(order)
    # 32-bit positions and keys where they fit: the plan of a big MLP then costs little memory
    small = m * m < 2**31
    index_type = torch.int32 if small else torch.long
    pos = torch.full((net.capacity,), -1, dtype=index_type, device=dev)
    pos[order] = torch.arange(m, device=dev, dtype=index_type)
    counts = torch.bincount(level[order]).tolist()
    starts = [0]
    for c in counts:
        starts.append(starts[-1] + c)
    top = len(counts) - 1
    layered = _layered_blocks(net, level, pos, starts)
    if layered is not None:
        levels = []
        for lv, (w_lo, w_hi, src_lo) in zip(range(1, len(counts)), layered):
            a, b = starts[lv], starts[lv + 1]
            row_ids = order[a:b]
            part = bisect.bisect_right(starts, src_lo) - 1
            bias_slice = (int(row_ids[0]), int(row_ids[-1]) + 1) if int(row_ids[-1] - row_ids[0]) == b - a - 1 \
                else None
            levels.append(Level(row_ids, bias_slice, part, src_lo - starts[part], a - src_lo, (w_lo, w_hi),
                                False, lv == top))
        return _finish_dag_plan(net, order, levels, level, starts)
    eids = torch.arange(net.edge_capacity, device=dev, dtype=torch.int32 if small else torch.long)[net.edge_alive]
    e_dst_pos, e_src_pos = pos[net.edge_dst[eids]], pos[net.edge_src[eids]]
    # Sort edges by (row, column): each level's edges then come out in block order. A net
    # built layer by layer (GraphNet.mlp) is in that order already.
    key = e_dst_pos * m + e_src_pos
    if len(key) > 1 and not bool((key[1:] >= key[:-1]).all()):
        perm = torch.argsort(key)
        eids, e_dst_pos, e_src_pos = eids[perm], e_dst_pos[perm], e_src_pos[perm]
        del perm
    del key
    per_level = torch.bincount(level.to(torch.int32)[net.edge_dst[eids]], minlength=len(counts)).tolist()
    edge_start = 0
    levels = []
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
        row_ids = order[a:b]
        weight_slice = None
        if k == rows * width and k and int(le[-1] - le[0]) == k - 1 and bool((le[1:] > le[:-1]).all()):
            weight_slice = (int(le[0]), int(le[-1]) + 1)
        bias_slice = None
        if int(row_ids[-1] - row_ids[0]) == rows - 1:
            bias_slice = (int(row_ids[0]), int(row_ids[-1]) + 1)
        kernel = level_kernel(net, k, rows * width)
        sparse = kernel == "sparse"
        level_plan = Level(row_ids, bias_slice, part, lo - starts[part], width, weight_slice, sparse, lv == top)
        if sparse:
            level_plan.eids, level_plan.src_local, level_plan.dst_local = le.long(), (ps - lo).long(), (pd - a).long()
        elif kernel == "csr":
            level_plan.csr = CsrLayout.of(pd - a, ps - lo, rows, width)
            if int(le[-1] - le[0]) == k - 1 and bool((le[1:] > le[:-1]).all()):
                level_plan.edge_range = (int(le[0]), int(le[-1]) + 1)  # packed edges: a view, no gather
            else:
                level_plan.eids = le.long()
        elif weight_slice is None:
            level_plan.eids, level_plan.flat = le.long(), ((pd - a) * width + (ps - lo)).long()
        levels.append(level_plan)
    plan = _finish_dag_plan(net, order, levels, level, starts)
    if m * m <= net.COMPACT_MAX_ENTRIES and net.kernel == "auto" and not all(lv.weight_slice for lv in levels):
        plan.compact, plan.eids, plan.src_pos, plan.dst_pos = True, eids.long(), e_src_pos.long(), e_dst_pos.long()
    return plan


def _finish_dag_plan(net, order, levels, level, starts) -> Plan:
    plan = Plan("dag", order, levels=levels, level_of=level, starts=starts)
    plan.weight_split, plan.weight_piece = _pieces([lv.weight_slice or lv.edge_range for lv in levels],
                                                   net.edge_capacity)
    plan.bias_split, plan.bias_piece = _pieces([lv.bias_slice for lv in levels], net.capacity)
    if net.mixed_activations:
        plan.acts = [activation_for(net.neuron_activation[lv.row_ids]) for lv in levels]
    return plan


def level_block(net, lv: Level, weight_piece=None, bias_piece=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The level's weights (a dense (rows, width) block, or the edge weights for the sparse
    kernel) and biases, differentiable with respect to `net.weight` and `net.bias`. The
    pieces, when given, are the level's weight and bias ranges cut out by one split."""
    if bias_piece is not None:
        bias = bias_piece
    else:
        bias = net.bias[lv.bias_slice[0]:lv.bias_slice[1]] if lv.bias_slice else net.bias[lv.row_ids]
    if lv.csr is not None and lv.edge_range:
        return (weight_piece if weight_piece is not None else net.weight[lv.edge_range[0]:lv.edge_range[1]]), bias
    if lv.sparse or lv.csr is not None:
        return net.weight[lv.eids], bias
    rows = len(lv.row_ids)
    if lv.weight_slice:
        w = weight_piece if weight_piece is not None else net.weight[lv.weight_slice[0]:lv.weight_slice[1]]
    else:
        w = net.weight.new_zeros(rows * lv.width).index_put((lv.flat,), net.weight[lv.eids])
    return w.view(rows, lv.width), bias


def run_levels(x: torch.Tensor, n_in: int, layouts, weights, biases, act, out_act, sparse_index=None,
               keep: bool = False, acts=None):
    """The DAG executor: level by level, each level reading the contiguous range of earlier
    outputs its block spans. `sparse_index[i]` = (src_local, dst_local) runs level i with the
    gather/index_add kernel, and a CsrLayout there the CSR kernel (`weights[i]` then holds the
    edge weights). `acts[i]`, when given, is level i's activation in place of act / out_act.
    Returns the output, and with `keep` the list of level outputs."""
    outs = [x]
    sizes = [n_in]  # output widths, known without looking at tensors (so torch.fx can trace it)
    h = x
    for i, (part, offset, width, rows, is_output) in enumerate(layouts):
        w, b = weights[i], biases[i]
        if width == 0:
            z = b.expand(x.shape[0], rows)
        else:
            src = outs[part] if part == len(outs) - 1 else torch.cat(outs[part:], 1)
            if offset or sum(sizes[part:]) != width:
                src = src[:, offset:offset + width]
            index = sparse_index[i] if sparse_index is not None else None
            if isinstance(index, CsrLayout):
                z = CsrLinear.apply(src, w, index) + b
            elif index is not None:
                z = b.expand(x.shape[0], rows).index_add(1, index[1], src[:, index[0]] * w)
            else:
                z = torch.addmm(b, src, w.t())
        h = acts[i](z) if acts is not None else out_act(z) if is_output else act(z)
        outs.append(h)
        sizes.append(rows)
    return (h, outs) if keep else h


def run_sweeps(x: torch.Tensor, w_t, b: torch.Tensor, steps: int, is_output: torch.Tensor, act, out_act,
               clamp_inputs: bool, sparse_index=None, act_all=None):
    """The recurrent executor: `steps` synchronous sweeps h <- act(W h + b) over m neurons
    (inputs first), inputs written once (or clamped). `w_t` is W transposed (dense kernel) or
    the edge weights in the order of `sparse_index`, W's CsrLayout (sparse kernel). `act_all`,
    when given, is every position's activation (per-neuron ones) in place of act / out_act.
    Returns the list of states."""
    n_in = x.shape[1]
    m = b.shape[0]
    h = torch.cat([x, x.new_zeros(x.shape[0], m - n_in)], 1)
    states = []
    for _ in range(steps):
        if sparse_index is not None:
            z = CsrLinear.apply(h, w_t, sparse_index) + b
        else:
            z = torch.addmm(b, h, w_t)
        # one select rather than slicing z into inputs, outputs and hidden and concatenating
        # them again: fewer autograd nodes per sweep, which is most of a small net's step
        h = act_all(z) if act_all is not None else torch.where(is_output, out_act(z), act(z))
        if clamp_inputs:
            h = torch.cat([x, h[:, n_in:]], 1)
        states.append(h)
    return states


def forward_dag(net, x: torch.Tensor, plan: Plan, keep: bool = False):
    """(output, state) where state is None, or with `keep` the (batch, m) activity of every
    live neuron in `plan.ids` order."""
    act, out_act = ACTIVATIONS[net.activation], ACTIVATIONS[net.output_activation]
    if plan.compact:
        return _forward_dag_compact(net, x, plan, act, out_act, keep)
    weights, biases = net.weight.split(plan.weight_split), net.bias.split(plan.bias_split)
    blocks = [level_block(net, lv, None if wi is None else weights[wi], None if bi is None else biases[bi])
              for lv, wi, bi in zip(plan.levels, plan.weight_piece, plan.bias_piece)]
    sparse_index = [lv.csr if lv.csr is not None else (lv.src_local, lv.dst_local) if lv.sparse else None
                    for lv in plan.levels]
    y = run_levels(x, net.n_in, [lv.layout for lv in plan.levels], [w for w, _ in blocks], [b for _, b in blocks],
                   act, out_act, sparse_index, keep=keep, acts=plan.acts)
    if not keep:
        return y, None
    return y[0], torch.cat(y[1], 1)


def _forward_dag_compact(net, x, plan: Plan, act, out_act, keep: bool):
    """Small irregular DAGs (grown nets): one dense (m, m) matrix in level order and one
    (batch, m) state that each level writes its slice into. Every level reads the whole
    state (columns not yet computed meet zero weights), so a deep net costs a constant
    number of autograd nodes per level instead of a concatenation of all earlier levels."""
    m = len(plan.ids)
    sizes = [b - a for a, b in zip(plan.starts, plan.starts[1:])]
    w_all = net.weight.new_zeros(m * m).index_put((plan.dst_pos * m + plan.src_pos,), net.weight[plan.eids])
    w_rows, b_rows = w_all.view(m, m).split(sizes), net.bias[plan.ids].split(sizes)
    state = torch.cat([x, x.new_zeros(x.shape[0], m - sizes[0])], 1)
    top = len(sizes) - 1
    h = state[:, :0]
    for i in range(1, top + 1):
        level_act = plan.acts[i - 1] if plan.acts is not None else out_act if i == top else act
        h = level_act(torch.addmm(b_rows[i], state, w_rows[i].t()))
        if i < top or keep:
            state = state.slice_scatter(h, 1, plan.starts[i], plan.starts[i + 1])
    return h, (state if keep else None)


def recurrent_weights(net, plan: Plan):
    """(W transposed or the edge weights, bias) of a recurrent plan, differentiable."""
    m = len(plan.ids)
    b = net.bias[:m] if plan.view else net.bias[plan.ids]
    if plan.view:
        w_flat = net.weight[: m * m]
        if plan.dead is not None:
            w_flat = w_flat.masked_fill(plan.dead, 0)
        # Transposed once, outside the sweeps: the I weight gradients then meet and sum in
        # the layout mm produces them in (summing I strided S x S views was 2x slower).
        return w_flat.view(m, m).t(), b
    w = net.weight[plan.eids]
    if plan.sparse:
        return w, b
    return w.new_zeros(m * m).index_put((plan.dst_pos * m + plan.src_pos,), w).view(m, m).t(), b


def forward_recurrent(net, x: torch.Tensor, plan: Plan):
    w_t, b = recurrent_weights(net, plan)
    act, out_act = ACTIVATIONS[net.activation], ACTIVATIONS[net.output_activation]
    states = run_sweeps(x, w_t, b, net.steps, plan.is_output, act, out_act, net.clamp_inputs, plan.csr,
                        act_all=plan.acts[0] if plan.acts is not None else None)
    return states[-1][:, net.n_in:net.n_in + net.n_out], states
