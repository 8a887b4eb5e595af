"""Mutations of many genomes at once, each a few tensor operations over the whole batch.

Structural (per child, neat-python's order and probabilities): add node (split a random
enabled connection: it is disabled, in->new gets weight 1, new->out the old weight, the new
node bias 0), delete node (a hidden node and its genes), add connection, delete connection.
Attributes: weight, bias and response perturbed (gaussian, `*_mutate_power`) or replaced
(`*_replace_rate`, drawn from the init distribution) and clamped; enabled bits redrawn at
`enabled_mutate_rate`; activations redrawn at `activation_mutate_rate`.

Add connection draws its source among inputs and hidden nodes and its target among hidden and
output nodes not yet joined from that source (disabled genes count as joined), so it fails
only when a source is fully connected. Outputs feed nothing (GraphNet's DAG convention). A
pair that would close a cycle is used reversed instead (then both ends are hidden nodes and
the reverse cannot close one); cycles are checked against every gene, enabled or not, so
re-enabling a gene later can never make one.
"""
from __future__ import annotations

import torch

from .genome import ACTIVATION_LIST, Genomes


def _pick(mask: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random True column per row of `mask` (C, K): (column, row has one)."""
    keys = torch.where(mask, torch.rand(mask.shape, generator=rng), -1.0)
    # one reduction for both: the max's index is argmax's (the first of equals), and a row
    # has a True column when its max key is >= 0 (rand is in [0, 1))
    best, column = keys.max(1)
    return column, best >= 0


def _empty_slots(valid: torch.Tensor, k: int) -> list[torch.Tensor]:
    """The first k empty columns of each row (the rows must have k): argmin finds the first
    empty one, which is then marked taken for the next."""
    taken = valid.to(torch.int8)
    slots = []
    for i in range(k):
        slots.append(taken.argmin(1))
        if i + 1 < k:
            taken.scatter_(1, slots[-1][:, None], 1)
    return slots


def init_values(cfg, prefix: str, shape, rng: torch.Generator) -> torch.Tensor:
    """neat-python's FloatAttribute.init_value: gaussian (clamped) or uniform in mean +- 2 stdev."""
    mean, stdev = getattr(cfg, f"{prefix}_init_mean"), getattr(cfg, f"{prefix}_init_stdev")
    lo, hi = getattr(cfg, f"{prefix}_min_value"), getattr(cfg, f"{prefix}_max_value")
    if getattr(cfg, f"{prefix}_init_type") == "uniform":
        a, b = max(lo, mean - 2 * stdev), min(hi, mean + 2 * stdev)
        return a + (b - a) * torch.rand(shape, generator=rng)
    return (mean + stdev * torch.randn(shape, generator=rng)).clamp(lo, hi)


def random_activation(cfg, shape, rng: torch.Generator) -> torch.Tensor:
    options = torch.tensor([ACTIVATION_LIST.index(a) for a in cfg.activation_options])
    return options[torch.randint(len(options), shape, generator=rng)]


def init_activation(cfg, shape, rng: torch.Generator) -> torch.Tensor:
    if cfg.activation_default == "random":
        return random_activation(cfg, shape, rng)
    return torch.full(shape, ACTIVATION_LIST.index(cfg.activation_default), dtype=torch.long)


def init_enabled(cfg, shape, rng: torch.Generator) -> torch.Tensor:
    if cfg.enabled_default == "random":
        return torch.rand(shape, generator=rng) < 0.5
    return torch.full(shape, cfg.enabled_default == "True", dtype=torch.bool)


def _with_room(g: Genomes, genes: int, nodes: int, n_genes=None, n_nodes=None) -> Genomes:
    """Empty columns so that every row has `genes` / `nodes` free slots (`n_genes`, `n_nodes`:
    the rows' valid counts, when the caller has them)."""
    if not len(g):
        return g.padded(max(genes, g.innov.shape[1]), max(nodes, g.node_id.shape[1]))
    n_genes = g.conn_valid.sum(1) if n_genes is None else n_genes
    n_nodes = g.node_valid.sum(1) if n_nodes is None else n_nodes
    need_g, need_n = int(n_genes.max()) + genes, int(n_nodes.max()) + nodes
    return g.padded(max(need_g, g.innov.shape[1]), max(need_n, g.node_id.shape[1]))


def add_node(g: Genomes, mask: torch.Tensor, cfg, table, rng) -> tuple[Genomes, torch.Tensor]:
    """Split one enabled connection in each masked genome; returns (genomes, masked genomes
    that had no enabled connection to split). Rows must be canonical (valid genes and nodes
    first, in order, as crossover leaves them): a row's first empty slots are then its counts,
    and the new node, whose id is the largest yet, goes right after the valid ones."""
    n_genes, n_nodes = g.conn_valid.sum(1), g.node_valid.sum(1)
    g = _with_room(g, 2, 1, n_genes, n_nodes)
    live = g.enabled  # canonical rows and padding hold no enabled bit in an empty slot
    j, has = _pick(live, rng)
    rows = (mask & has).nonzero().squeeze(1)
    if len(rows):
        jj = j.index_select(0, rows)  # index_select: faster than t[rows] for row gathers
        new_id = table.split_nodes(g.innov[rows, jj])
        a, b, w_old = g.src[rows, jj], g.dst[rows, jj], g.weight[rows, jj]
        g.enabled[rows, jj] = False
        src, dst = torch.stack([a, new_id]), torch.stack([new_id, b])
        innov = table.new_connections(src, dst)  # every pair touches the new node
        # both new genes of every row in one write a field: in -> new at the first empty slot,
        # new -> out at the next (a (2, R) tensor flattened is its first row, then its second)
        e = n_genes.index_select(0, rows)
        at = (torch.cat([rows, rows]), torch.cat([e, e + 1]))
        g.innov[at], g.src[at], g.dst[at] = innov.view(-1), src.view(-1), dst.view(-1)
        g.weight[at], g.enabled[at] = torch.cat([torch.ones_like(w_old), w_old]), True
        n1 = n_nodes.index_select(0, rows)
        g.node_id[rows, n1] = new_id
        g.bias[rows, n1] = 0.0
        g.response[rows, n1] = init_values(cfg, "response", (len(rows),), rng)
        g.act[rows, n1] = init_activation(cfg, (len(rows),), rng)
    return g, mask & ~has


def delete_node(g: Genomes, mask: torch.Tensor, cfg, rng) -> Genomes:
    """Remove one hidden node, and every gene that touches it, from each masked genome."""
    hidden = g.node_id >= cfg.n_fixed  # an empty slot's id is -1, so this implies valid
    s, has = _pick(hidden, rng)
    rows = (mask & has).nonzero().squeeze(1)
    if len(rows):
        at = (rows, s.index_select(0, rows))
        gone = g.node_id[at]
        g.node_id[at] = -1
        touch = (g.src.index_select(0, rows) == gone[:, None]) | (g.dst.index_select(0, rows) == gone[:, None])
        g.innov[rows] = torch.where(touch, -1, g.innov.index_select(0, rows))
    return g


def reaches(src_slot: torch.Tensor, dst_slot: torch.Tensor, valid: torch.Tensor, start: torch.Tensor,
            n: int) -> torch.Tensor:
    """(R, n) nodes reachable from `start` (R,) along the genes (R, G), start included. The
    slots of a gene that is not `valid` must still be in range (0, say): it spreads nothing."""
    R = len(start)
    seen = torch.zeros(R, n, dtype=torch.uint8).scatter_(1, start[:, None], 1)
    valid = valid.to(torch.uint8)
    for _ in range(n):
        spread = seen.gather(1, src_slot) & valid
        new = seen.scatter_reduce(1, dst_slot, spread, reduce="amax")
        if torch.equal(new, seen):
            break
        seen = new
    return seen.bool()


def add_connection(g: Genomes, mask: torch.Tensor, cfg, table, rng) -> Genomes:
    """One new gene in each masked genome (see the module docstring for the rules)."""
    g = _with_room(g, 1, 0)
    n_in, n_fixed = cfg.num_inputs, cfg.n_fixed
    is_output = (g.node_id >= n_in) & (g.node_id < n_fixed)
    src_ok = g.node_valid & ~is_output
    tgt_ok = g.node_id >= n_in  # valid too (empty ids are -1)
    a, _ = _pick(src_ok, rng)
    rows = mask.nonzero().squeeze(1)
    if not len(rows):
        return g
    # only the fields the search needs, for the masked rows; genes are matched to a and b by
    # node id, and slots are looked up only where a scatter or the cycle search needs them
    node_id, innov = g.node_id.index_select(0, rows), g.innov.index_select(0, rows)
    gene_src, gene_dst = g.src.index_select(0, rows), g.dst.index_select(0, rows)
    sub = Genomes(innov, gene_src, gene_dst, None, None, node_id, None, None, None)
    a = a.index_select(0, rows)
    R, N = node_id.shape
    valid = innov >= 0
    a_id = node_id.gather(1, a[:, None])
    from_a = valid & (gene_src == a_id)
    d_slot = torch.where(from_a, sub.slots(gene_dst, n_fixed), 0)
    joined = torch.zeros(R, N, dtype=torch.uint8).scatter_reduce(1, d_slot, from_a.to(torch.uint8), reduce="amax")
    cand = tgt_ok.index_select(0, rows) & ~joined.bool()
    cand.scatter_(1, a[:, None], False)
    b, ok = _pick(cand, rng)
    # a -> b closes a cycle only if b reaches a, which needs both to be hidden: no gene enters
    # an input or leaves an output, so the search runs on those rows alone
    b_id = node_id.gather(1, b[:, None])
    cyclic = torch.zeros(R, dtype=torch.bool)
    both = ((a_id >= n_fixed) & (b_id >= n_fixed)).squeeze(1).nonzero().squeeze(1)
    if len(both):
        near = sub.take(both, skip=("weight", "enabled", "bias", "response", "act"))
        G = near.innov.shape[1]
        slots = near.slots(torch.cat([near.src, near.dst], 1), n_fixed)
        near_valid = near.innov >= 0
        near_src = torch.where(near_valid, slots[:, :G], 0)  # every gene's end slots in these rows
        near_dst = torch.where(near_valid, slots[:, G:], 0)
        a_both, b_both = a.index_select(0, both), b.index_select(0, both)
        closes = reaches(near_src, near_dst, near_valid, b_both, N).gather(1, a_both[:, None]).squeeze(1)
        cyclic[both] = closes
        # reversed (b -> a) where a -> b would close a cycle, unless b -> a is already a gene
        back = (near_valid & (near_src == b_both[:, None]) & (near_dst == a_both[:, None])).any(1)
        ok[both] &= ~(closes & back)
    src = torch.where(cyclic, b, a)
    dst = torch.where(cyclic, a, b)
    keep = ok.nonzero().squeeze(1)
    if not len(keep):
        return g
    rows, src, dst = (t.index_select(0, keep) for t in (rows, src, dst))
    src_id = g.node_id[rows, src]
    dst_id = g.node_id[rows, dst]
    innov = table.connections(src_id, dst_id)
    (e,) = _empty_slots(g.conn_valid[rows], 1)
    g.innov[rows, e], g.src[rows, e], g.dst[rows, e] = innov, src_id, dst_id
    g.weight[rows, e] = init_values(cfg, "weight", (len(rows),), rng)
    g.enabled[rows, e] = init_enabled(cfg, (len(rows),), rng)
    return g


def delete_connection(g: Genomes, mask: torch.Tensor, rng) -> Genomes:
    j, has = _pick(g.conn_valid, rng)
    rows = (mask & has).nonzero().squeeze(1)
    if len(rows):
        g.innov[rows, j.index_select(0, rows)] = -1
    return g


def _floats(values, where, cfg, prefix, rng, per_genome=False, gate=None) -> torch.Tensor:
    """Perturb or replace `values` where `where`: per gene (neat-python) or, per_genome, under one
    draw per genome (`gate`, (rows,) bool, when given: the draw made for the weights)."""
    rate, replace = getattr(cfg, f"{prefix}_mutate_rate"), getattr(cfg, f"{prefix}_replace_rate")
    if rate == 0 and replace == 0:
        return values
    r = torch.rand(values.shape, generator=rng)
    if per_genome:  # the paper: a genome's weights mutate together (rate), each replaced at `replace`
        if gate is None:
            gate = torch.rand(values.shape[0], generator=rng) < rate
        gate = gate[:, None] & where  # the genes to touch, masked once for both kinds
        perturb, redraw = gate & (r >= replace), gate & (r < replace)
    else:           # neat-python: per gene
        perturb, redraw = (r < rate) & where, (r >= rate) & (r < rate + replace) & where
    power = getattr(cfg, f"{prefix}_mutate_power")
    if cfg.perturbation == "uniform":  # NEAT 1.2.1: uniform in [-power, power]
        noise = (2 * torch.rand(values.shape, generator=rng) - 1) * power
    else:
        noise = torch.randn(values.shape, generator=rng) * power
    out = torch.where(perturb, values + noise, values)
    out = torch.where(redraw, init_values(cfg, prefix, values.shape, rng), out)
    lo, hi = getattr(cfg, f"{prefix}_min_value"), getattr(cfg, f"{prefix}_max_value")
    return torch.where(where, out.clamp(lo, hi), values)


def mutate(g: Genomes, active: torch.Tensor, cfg, table, rng) -> Genomes:
    """Every mutation, applied to the rows where `active` (elites are left as they are)."""
    C = len(g)
    probs = (cfg.node_add_prob, cfg.node_delete_prob, cfg.conn_add_prob, cfg.conn_delete_prob)
    if cfg.single_structural_mutation:  # at most one, chosen in proportion to the four
        r = torch.rand(C, generator=rng)
        div = max(1.0, sum(probs))
        edges = torch.tensor([0.0] + list(probs)).cumsum(0) / div
        masks = [(r >= edges[i]) & (r < edges[i + 1]) for i in range(4)]
    else:
        # one draw of 4 x C: the same numbers as four draws of C in a row
        masks = torch.rand(4, C, generator=rng) < torch.tensor(probs, dtype=torch.float32)[:, None]
    m_add_node, m_del_node, m_add_conn, m_del_conn = (m & active for m in masks)
    surer = cfg.structural_mutation_surer == "true" or (cfg.structural_mutation_surer == "default"
                                                        and cfg.single_structural_mutation)
    g, nothing_to_split = add_node(g, m_add_node, cfg, table, rng)
    if surer:  # neat-python: add-node on a genome with nothing to split adds a connection instead
        m_add_conn = m_add_conn | nothing_to_split
    g = delete_node(g, m_del_node, cfg, rng)
    g = add_connection(g, m_add_conn, cfg, table, rng)
    g = delete_connection(g, m_del_conn, rng)
    if cfg.structural_excludes_attributes:  # NEAT 1.2.1: a structural mutation is a child's only one
        active = active & ~(m_add_node | m_del_node | m_add_conn | m_del_conn)
    rows = active[:, None]
    valid = g.conn_valid & rows
    per_genome = cfg.weight_mutation == "per_genome"
    gate = None
    if cfg.bias_mutation == "with_weights":  # the bias mutates as the weight of a bias input would
        gate = torch.rand(C, generator=rng) < cfg.weight_mutate_rate if per_genome else None
    g.weight = _floats(g.weight, valid, cfg, "weight", rng, per_genome=per_genome, gate=gate)
    computed = (g.node_id >= cfg.num_inputs) & rows  # valid too (empty ids are -1)
    if cfg.bias_mutation == "with_weights":
        g.bias = _floats(g.bias, computed, cfg, "bias", rng, per_genome=per_genome, gate=gate)
    else:
        g.bias = _floats(g.bias, computed, cfg, "bias", rng)
    g.response = _floats(g.response, computed, cfg, "response", rng)
    if cfg.enabled_rate_to_false_add == cfg.enabled_rate_to_true_add == 0:
        rate = cfg.enabled_mutate_rate  # the same float32 threshold as the tensor below, two ops fewer
    else:
        rate = cfg.enabled_mutate_rate + torch.where(g.enabled, cfg.enabled_rate_to_false_add,
                                                     cfg.enabled_rate_to_true_add)
    flip = (torch.rand(g.enabled.shape, generator=rng) < rate) & valid
    g.enabled = torch.where(flip, torch.rand(g.enabled.shape, generator=rng) < 0.5, g.enabled)
    if cfg.activation_mutate_rate > 0:
        if cfg.output_activation != "same":  # the outputs keep theirs: only hidden nodes' are redrawn
            computed = (g.node_id >= cfg.n_fixed) & rows
        redraw = (torch.rand(g.act.shape, generator=rng) < cfg.activation_mutate_rate) & computed
        g.act = torch.where(redraw, random_activation(cfg, g.act.shape, rng), g.act)
    return g.canonical()
