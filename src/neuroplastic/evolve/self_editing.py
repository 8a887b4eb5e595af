"""A network that edits its own graph while it acts, with an editing policy evolved by an ES.

Every episode starts from the minimal network (each input wired straight to each output,
weights 0). The acting network is a GraphBatch member; beside it runs a small fixed *editor*
whose parameters are the ES candidate. Every `edit_every` env steps (and once before the first
action) the editor reads features of the member's own graph and recent experience and issues
structural commands, which become Edits on that member:

* per neuron: a state vector s_i (inputs and outputs: an evolved embedding per neuron id; a
  new hidden neuron: a map of the states of the edge it split), the mean and spread of its
  activity over the last window, its in- and out-degree, and its role (input/output/hidden);
* per graph: hidden neurons and edges (as shares of their caps), the mean reward of the
  window, and a constant.

The editor embeds every neuron, z_i = tanh(A f_i + C g), and scores every ordered pair
(i, j) with four bilinear heads, score_ij = z_i M z_j + u.z_i + v.z_j + c (+ terms in the
edge's current weight and its endpoints' co-activity). The heads are the four commands:
  weight  every live edge moves towards w_max tanh(score): w <- w + eta (target - w);
  split   the live edge with the highest score, if > 0, gets a relay neuron (add a neuron);
  remove  the live edge with the highest score, if > 0, is removed;
  add     the absent allowed edge with the highest score, if > 0, is added (weight: its target).
With `innate_weights` the candidate also holds a starting weight for every input -> output
edge (the genome's innate network, instead of weights 0), and a weight command moves an edge
towards its innate weight plus w_max tanh(score): the editor then modulates evolved weights
rather than writing every weight from neuron embeddings. (A linear policy under the same ES
reaches 228.6 held-out on LunarLander-v3; the editor writing every weight itself, -58.5.)
At most one of each structural command per member and round, within `max_hidden` hidden
neurons and `max_edges` edges. Every neuron carries a position in (0, 1) (inputs 0, outputs
1, a relay halfway between the ends it splits) and edges only run from a lower position to a
higher one, so the graph stays a DAG without a search. docs/self-editing.md gives the why of
every choice.

The P candidates x B episodes are one GraphBatch of P*B members stepped by P*B copies of
the env (`EnvFitness`); the editor is a few batched tensor ops over all
members; the commands of a round are applied to all members at once through
`GraphBatch.apply_edit_arrays` (the array form of Edits), or member by member through
`GraphBatch.apply_edits` with `edit_path="members"` (the same graphs; the tests compare
them). Everything runs under `torch.no_grad()`: no autograd graph, no optimizer.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core.batch import GraphBatch
from ..core.edits import Edits
from ..core.validate import check_bool, check_choice, check_int, check_number
from ..errors import ConfigError
from .controllers import Controllers, EpisodeRows

EDIT_PATHS = ("arrays", "members")
HEADS = ("weight", "split", "remove", "add")
N_NEURON_FEATURES = 7   # activity mean and spread, in- and out-degree, role (3) - beside s_i
N_GRAPH_FEATURES = 4    # hidden share, edge share, window reward, constant
N_EDGE_TERMS = 3        # per head: current weight, |weight|, co-activity


@dataclass(frozen=True)
class EditorLayout:
    """Where each named parameter tensor sits in a flat candidate vector."""

    n_in: int
    n_out: int
    dim: int
    innate: bool = False

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        d, h = self.dim, len(HEADS)
        innate = {"innate": (self.n_in, self.n_out)} if self.innate else {}  # input -> output start weights
        return {**innate, "embed": (self.n_in + self.n_out, d),          # states of inputs and outputs
                "A": (d + N_NEURON_FEATURES, d), "C": (N_GRAPH_FEATURES, d),
                "M": (h, d, d), "u": (h, d), "v": (h, d), "c": (h,), "edge": (h, N_EDGE_TERMS),
                "split_W": (2 * d, d), "split_b": (d,),          # state of a new relay neuron
                "eta": (1,)}                                      # weight-command rate, sigmoid(eta)

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())

    def step_sizes(self, editor: float) -> np.ndarray:
        """(size,) multipliers of the ES's sigma: 1 for the innate weights, `editor` for the
        editor's own parameters (a small one lets the search settle the innate network before
        the edits grow strong)."""
        n_innate = self.n_in * self.n_out if self.innate else 0
        return np.concatenate([np.ones(n_innate), np.full(self.size - n_innate, float(editor))])

    def unpack(self, candidates: torch.Tensor) -> dict[str, torch.Tensor]:
        """(R, size) -> {name: (R, *shape)} views."""
        out, at = {}, 0
        for name, shape in self.shapes.items():
            k = math.prod(shape)
            out[name] = candidates[:, at:at + k].reshape(len(candidates), *shape)
            at += k
        return out


class SelfEditingControllers(Controllers):
    """A candidate is an editor (EditorLayout(n_in, n_out, dim).size numbers); the acting
    network is built by it during every episode, from inputs wired to outputs.

    `edit_every`: env steps between edit rounds; `max_hidden` / `max_edges`: caps on the self-
    built graph; `weight_max`: the largest weight a command sets; `reward_scale`: the window's
    mean reward is read as tanh(r / reward_scale); `edit_path`: "arrays" (all members in
    tensor ops) or "members" (GraphBatch.apply_edits, member by member); `innate_weights`:
    the candidate also holds the input -> output edges' starting weights (module docstring)."""

    def __init__(self, env_id: str, episodes: int = 1, max_steps: int | None = None, seed: int = 0,
                 edit_every: int = 10, max_hidden: int = 16, max_edges: int | None = None, dim: int = 8,
                 weight_max: float = 3.0, reward_scale: float = 1.0, edit_path: str = "arrays",
                 vectorization: str = "sync", innate_weights: bool = False):
        super().__init__(env_id, hidden=(), episodes=episodes, max_steps=max_steps, seed=seed,
                         vectorization=vectorization)
        self.edit_every = check_int(edit_every, "edit_every", 1)
        self.max_hidden = check_int(max_hidden, "max_hidden", 0)
        n_minimal = self.env.n_in * self.env.n_out
        self.max_edges = n_minimal + 4 * self.max_hidden if max_edges is None else \
            check_int(max_edges, "max_edges", n_minimal)
        self.layout = EditorLayout(self.env.n_in, self.env.n_out, check_int(dim, "dim", 1),
                                   check_bool(innate_weights, "innate_weights"))
        self.weight_max = check_number(weight_max, "weight_max", above=0)
        self.reward_scale = check_number(reward_scale, "reward_scale", above=0)
        self.edit_path = check_choice(edit_path, "edit_path", EDIT_PATHS)
        self.last: SelfEditingPopulation | None = None

    @property
    def n_params(self) -> int:
        return self.layout.size

    def policies(self, candidates, first_seed, episodes):
        self.last = SelfEditingPopulation(self, candidates, episodes)
        return self.last

    def develop(self, candidate, episodes: int = 1, seed: int = 0) -> tuple[np.ndarray, SelfEditingPopulation]:
        """Returns of one candidate over `episodes` episodes from reset seed `seed`, and the
        population that played them (its `history` and final `batch`: the self-built nets)."""
        returns = self.returns(torch.as_tensor(candidate, dtype=torch.float32).reshape(1, -1), seed, episodes)[0]
        return returns, self.last


# bytes per (member, neuron, neuron) pair that an edit round holds at once: the four heads'
# scores, the weight, anchor and co-activity matrices and their temporaries (peak RSS of three
# edit rounds, 32 CartPole members: 83 bytes a pair at 306 neurons, 63 at 606)
PAIR_BYTES = 80


def check_memory(members: int, neurons: int) -> None:
    """Refuse, in one line, an editor whose (members, N, N) scores cannot fit in this machine's
    memory (max_hidden sets N), rather than be killed for memory part-way."""
    import os
    need = members * neurons * neurons * PAIR_BYTES
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: nothing to compare with
        return
    if need > have // 2:
        raise ConfigError(f"{members} members with up to {neurons} neurons each need about {need / 2**30:,.1f} GiB "
                          f"for the editor's scores (this machine has {have / 2**30:.1f} GiB); lower max_hidden, "
                          "popsize or episodes")


class SelfEditingPopulation(EpisodeRows):
    """P editors x B episodes: one GraphBatch of P*B self-built networks, called like a
    GraphBatch with (P, B, n_in) inputs (as EnvFitness calls it), told the rewards through
    `observe_reward`. `history`: one row per edit round, (step, hidden (R,), edges (R,))."""

    def __init__(self, owner: SelfEditingControllers, candidates: torch.Tensor, episodes: int):
        self.owner, self.P, self.B = owner, len(candidates), episodes
        self.n_in, self.n_out = owner.env.n_in, owner.env.n_out
        R, n_in, n_fixed = self.P * self.B, self.n_in, self.n_in + self.n_out
        self.R, self.n_fixed = R, n_fixed
        self.theta = {k: v.repeat_interleave(self.B, 0) for k, v in owner.layout.unpack(candidates).items()}
        N, E = n_fixed + owner.max_hidden, owner.max_edges
        check_memory(R, N)
        one = owner._one  # the minimal network: every input -> every output
        live = one.edge_alive[0]
        src = torch.zeros(R, E, dtype=torch.int32)
        dst = torch.zeros(R, E, dtype=torch.int32)
        k = int(live.sum())
        src[:, :k], dst[:, :k] = one.src[0, live], one.dst[0, live]
        edge_alive = torch.zeros(R, E, dtype=torch.bool)
        edge_alive[:, :k] = True
        neuron_alive = torch.zeros(R, N, dtype=torch.bool)
        neuron_alive[:, :n_fixed] = True
        activation = torch.zeros(R, N, dtype=torch.int8)
        activation[:] = one.activation[0, 0]  # hidden (and inputs): tanh
        activation[:, n_in:n_fixed] = one.activation[0, n_in]  # outputs: identity
        # each connection's innate weight, (R, N, N): the weight command's anchor (0 without innate weights)
        self.innate = torch.zeros(R, N, N)
        weight = torch.zeros(R, E)
        if "innate" in self.theta:
            s, d = src[0, :k].long(), dst[0, :k].long()
            self.innate[:, s, d] = self.theta["innate"][:, s, d - n_in]
            weight[:, :k] = self.innate[:, s, d]
        self.batch = GraphBatch(self.n_in, self.n_out, src, dst, weight, edge_alive,
                                torch.zeros(R, N), activation, neuron_alive)
        self.position = torch.full((R, N), -1.0)
        self.position[:, :n_in], self.position[:, n_in:n_fixed] = 0.0, 1.0
        self.state = torch.zeros(R, N, owner.layout.dim)
        self.state[:, :n_fixed] = self.theta["embed"]
        self.running = torch.ones(R, dtype=torch.bool)
        self.steps = 0
        self.edit_s = 0.0  # seconds spent in edit rounds (editor + applying its Edits)
        self.history: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self._reset_window()

    # ------------------------------------------------------------- called by EnvFitness
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.steps % self.owner.edit_every == 0:
            started = time.perf_counter()
            self.edit()
            self.edit_s += time.perf_counter() - started
        y, activity = self.act(x)
        a = activity[:, 0]
        self.act_sum += a
        self.act_sq += a * a
        self.coact += a[:, :, None] * a[:, None, :]
        self.window += 1
        self.steps += 1
        return y

    def observe_reward(self, reward, alive) -> None:
        self.reward_sum += torch.as_tensor(np.asarray(reward), dtype=torch.float32).reshape(-1)
        self.running &= torch.as_tensor(np.asarray(alive)).reshape(-1)

    # ------------------------------------------------------------- the editor
    def _reset_window(self) -> None:
        N = self.batch.neuron_capacity
        self.act_sum, self.act_sq = torch.zeros(self.R, N), torch.zeros(self.R, N)
        self.coact = torch.zeros(self.R, N, N)
        self.reward_sum = torch.zeros(self.R)
        self.window = 0

    def dense_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, N, N) weight and edge-exists matrices of the current graphs."""
        b, R, N = self.batch, self.R, self.batch.neuron_capacity
        rows = torch.arange(R)[:, None].expand_as(b.src)
        live = b.edge_alive
        r, s, d = rows[live], b.src[live].long(), b.dst[live].long()
        W = torch.zeros(R, N, N)
        W[r, s, d] = b.weight[live]
        exists = torch.zeros(R, N, N, dtype=torch.bool)
        exists[r, s, d] = True
        return W, exists

    def features(self, W: torch.Tensor, exists: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Neuron features (R, N, dim + 7) and graph features (R, 4)."""
        o, n = self.owner, max(self.window, 1)
        N, n_in, n_fixed = self.batch.neuron_capacity, self.n_in, self.n_fixed
        mean = self.act_sum / n
        spread = (self.act_sq / n - mean * mean).clamp(min=0).sqrt()
        indeg, outdeg = exists.sum(1).float() / N, exists.sum(2).float() / N
        role = torch.zeros(self.R, N, 3)
        role[:, :n_in, 0], role[:, n_in:n_fixed, 1] = 1, 1
        role[:, n_fixed:, 2] = self.batch.neuron_alive[:, n_fixed:].float()
        f = torch.cat([self.state, torch.tanh(mean)[..., None], torch.tanh(spread)[..., None],
                       indeg[..., None], outdeg[..., None], role], 2)
        f = f * self.batch.neuron_alive[..., None]
        hidden = self.batch.n_hidden.float() / max(o.max_hidden, 1)
        edges = self.batch.n_edges.float() / o.max_edges
        reward = torch.tanh(self.reward_sum / n / o.reward_scale)
        g = torch.stack([hidden, edges, reward, torch.ones(self.R)], 1)
        return f, g

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(R, 4, N, N) head scores for every ordered pair, and the weight / exists matrices."""
        t = self.theta
        W, exists = self.dense_weights()
        f, g = self.features(W, exists)
        z = torch.tanh(torch.bmm(f, t["A"]) + torch.bmm(g[:, None], t["C"]))  # (R, N, d)
        pair = torch.einsum("rnd,rhde,rme->rhnm", z, t["M"], z)
        pair += torch.einsum("rnd,rhd->rhn", z, t["u"])[..., None]
        pair += torch.einsum("rmd,rhd->rhm", z, t["v"])[:, :, None, :]
        coact = torch.tanh(self.coact / max(self.window, 1))
        terms = torch.stack([W, W.abs(), coact], 1)  # (R, 3, N, N)
        pair += torch.einsum("rknm,rhk->rhnm", terms, t["edge"])
        pair += t["c"][:, :, None, None]
        return pair, W, exists

    def edit(self) -> None:
        """One round: the editor's commands become Edits on every member still playing."""
        o, b = self.owner, self.batch
        N = b.neuron_capacity
        pair, W, exists = self.scores()
        target = self.innate + o.weight_max * torch.tanh(pair[:, 0])
        go = self.running
        alive = b.neuron_alive
        pos = self.position
        allowed = alive[:, :, None] & alive[:, None, :] & (pos[:, :, None] < pos[:, None, :]) & ~exists
        n_edges, n_hidden = b.n_edges, b.n_hidden

        def best(score, mask):
            flat = score.masked_fill(~mask, -math.inf).reshape(self.R, N * N)
            value, at = flat.max(1)
            return value, at // N, at % N

        # split: a relay in the best-scoring live edge
        value, s_src, s_dst = best(pair[:, 1], exists)
        do_split = go & (value > 0) & (n_hidden < o.max_hidden) & (n_edges + 1 <= o.max_edges)
        rows = torch.arange(self.R)
        gone = torch.zeros(self.R, N, N, dtype=torch.bool)
        gone[rows[do_split], s_src[do_split], s_dst[do_split]] = True
        # remove: the best-scoring live edge other than the one split
        value, r_src, r_dst = best(pair[:, 2], exists & ~gone)
        do_remove = go & (value > 0)
        gone[rows[do_remove], r_src[do_remove], r_dst[do_remove]] = True
        # add: the best-scoring allowed absent edge
        value, a_src, a_dst = best(pair[:, 3], allowed)
        do_add = go & (value > 0) & (n_edges + do_split.long() + 1 <= o.max_edges)
        # weight: every surviving edge of a playing member moves towards its target
        eta = torch.sigmoid(self.theta["eta"][:, 0])[:, None, None]
        keep = exists & ~gone & go[:, None, None]
        r, ks, kd = keep.nonzero(as_tuple=True)
        new_w = (W + eta * (target - W))[r, ks, kd]

        m = rows[do_split]
        split = (m, s_src[m], s_dst[m], torch.ones(len(m)), W[m, s_src[m], s_dst[m]])
        remove_m = torch.cat([m, rows[do_remove]])
        remove = (remove_m, torch.cat([s_src[m], r_src[do_remove]]), torch.cat([s_dst[m], r_dst[do_remove]]))
        am = rows[do_add]
        add = (am, a_src[am], a_dst[am], target[am, a_src[am], a_dst[am]])
        new_ids = self._apply(split, remove, add, (r, ks, kd, new_w))
        if len(m):  # the relay's position and state
            self.position[m, new_ids] = (pos[m, s_src[m]] + pos[m, s_dst[m]]) / 2
            both = torch.cat([self.state[m, s_src[m]], self.state[m, s_dst[m]]], 1)
            self.state[m, new_ids] = torch.tanh(torch.bmm(both[:, None], self.theta["split_W"][m])[:, 0]
                                                + self.theta["split_b"][m])
        self.history.append((self.steps, b.n_hidden.clone(), b.n_edges.clone()))
        self._reset_window()

    def _apply(self, split, remove, add, set_weights) -> torch.Tensor:
        """The round's commands through the one edit path; returns the relays' neuron ids."""
        if self.owner.edit_path == "arrays":
            return self.batch.apply_edit_arrays(split=split, remove=remove, add=add, set_weights=set_weights)
        edits: dict[int, Edits] = {}
        refs = []

        def of(i):
            return edits.setdefault(int(i), Edits())

        for i, s, d, w_in, w_out in zip(*(t.tolist() for t in split)):
            refs.append(of(i).add_neuron(between=(s, d), weight_in=w_in, weight_out=w_out))
        for name, ops in (("remove_edges", remove), ("add_edges", add), ("set_weights", set_weights)):
            member = ops[0]
            for i in torch.unique(member).tolist():
                sel = member == i
                getattr(of(i), name)(*(t[sel] for t in ops[1:]))
        if edits:
            self.batch.apply_edits(edits)
        return torch.tensor([int(ref) for ref in refs], dtype=torch.long)
