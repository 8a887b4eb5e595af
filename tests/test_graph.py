import copy

import pytest
import torch
from torch import nn

import neuroplastic as npl
from conftest import trained


def copy_into_sequential(net: npl.GraphNet, seq: nn.Sequential) -> None:
    """Copy a GraphNet.mlp's weights into an equivalent nn.Sequential via edges()."""
    src, dst, w = net.edges()
    weights = {(int(s), int(d)): float(x) for s, d, x in zip(src, dst, w)}
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    layer_ids, first = [list(range(net.n_in))], net.n_in + net.n_out
    for lin in linears[:-1]:
        layer_ids.append(list(range(first, first + lin.out_features)))
        first += lin.out_features
    layer_ids.append(list(range(net.n_in, net.n_in + net.n_out)))
    with torch.no_grad():
        for lin, prev, cur in zip(linears, layer_ids, layer_ids[1:]):
            for r, d in enumerate(cur):
                lin.bias[r] = net.bias[d]
                for c, s in enumerate(prev):
                    lin.weight[r, c] = weights[(s, d)]


def test_mlp_matches_torch_sequential():
    net = npl.GraphNet.mlp(6, [7, 5], 3, activation="tanh", seed=3)
    seq = nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3))
    copy_into_sequential(net, seq)
    x = torch.randn(11, 6)
    assert torch.allclose(net(x), seq(x), atol=1e-6)
    assert net.n_params == sum(p.numel() for p in seq.parameters())
    assert (net.n_hidden, net.n_edges) == (12, 6 * 7 + 7 * 5 + 5 * 3)


def test_default_graph_is_dense_linear_and_seeded():
    a, b = npl.GraphNet(4, 2, seed=0), npl.GraphNet(4, 2, seed=0)
    assert a.n_edges == 8 and a.n_hidden == 0 and a.n_params == 10
    x = torch.randn(5, 4)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), npl.GraphNet(4, 2, seed=1)(x))
    assert a(x[0]).shape == (2,)


def test_levels_put_outputs_last(small_mlp):
    levels = small_mlp.levels()
    assert levels[:3].tolist() == [0, 0, 0]
    assert set(levels[3:5].tolist()) == {3}


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_in=0, n_out=1), "n_in=0"),
    (dict(n_in=2, n_out=1, activation="swish"), "activation='swish'"),
    (dict(n_in=2, n_out=1, mode="loop"), "mode='loop'"),
    (dict(n_in=2, n_out=1, mode="recurrent", steps=0), "steps=0"),
    (dict(n_in=2, n_out=1, kernel="fast"), "kernel='fast'"),
])
def test_bad_construction_is_a_config_error(kwargs, message):
    with pytest.raises(npl.ConfigError, match=message):
        npl.GraphNet(**kwargs)


@pytest.mark.parametrize("build, message", [
    (lambda: npl.GraphNet.mlp(-1, [3], 2), "n_in=-1"),
    (lambda: npl.GraphNet.mlp(2, "ab", 2), "hidden='ab' must be a list"),
    (lambda: npl.GraphNet.from_edges(1, 1, 0, [0], [1, 1]), "one entry per edge; got 1, 2"),
    (lambda: npl.GraphNet.from_edges(1, 1, 0, [0], [1], weight=[1.0, 2.0]), "got 1, 1 and 2"),
    (lambda: npl.GraphNet.from_edges(1, 1, 1, [0, 2], [2, 1], bias=[1.0]), "expected n_out \\+ n_hidden = 2"),
])
def test_bad_constructor_arguments_are_config_errors(build, message):
    with pytest.raises(npl.ConfigError, match=message):
        build()


def test_constructors_and_forward_take_plain_python_and_numpy():
    import numpy as np
    net = npl.GraphNet.mlp(3, 4, 2, seed=0)  # one int: one hidden layer
    assert net.n_hidden == 4
    x = np.random.default_rng(0).normal(size=(5, 3))
    assert torch.equal(net(x), net(torch.as_tensor(x, dtype=torch.float32)))
    assert net([1.0, 2.0, 3.0]).shape == (2,)
    exact = npl.GraphNet.from_edges(1, 1, 0, [0], [1], weight=[0.1], bias=[0.2], dtype=torch.float64)
    assert exact.edges()[2].item() == 0.1 and exact.bias[1].item() == 0.2  # no float32 rounding


def test_input_of_wrong_width_is_refused(small_mlp):
    with pytest.raises(npl.ConfigError, match="n_in=3"):
        small_mlp(torch.randn(4, 5))


def random_dag(seed: int, n_in=4, n_out=3, n_hidden=12, p=0.4):
    g = torch.Generator().manual_seed(seed)
    src, dst = [], []
    hidden = list(range(n_in + n_out, n_in + n_out + n_hidden))
    order = list(range(n_in)) + hidden
    for i, s in enumerate(order):
        for d in order[i + 1:] + list(range(n_in, n_in + n_out)):
            if d >= n_in and float(torch.rand(1, generator=g)) < p:
                src.append(s)
                dst.append(d)
    return npl.GraphNet.from_edges(n_in, n_out, n_hidden, src, dst, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_sparse_and_compact_kernels_agree(seed):
    net = random_dag(seed)
    x = torch.randn(9, 4)
    reference = net(x)
    for kernel in ("dense", "sparse"):
        other = npl.GraphNet.from_edges(4, 3, 12, *net.edges()[:2], weight=net.edges()[2], seed=seed,
                                        kernel=kernel)
        with torch.no_grad():
            other.bias.copy_(net.bias)
        assert torch.allclose(other(x), reference, atol=1e-5), kernel


def test_gradients_agree_between_kernels():
    net = random_dag(5)
    sparse = npl.GraphNet.from_edges(4, 3, 12, *net.edges()[:2], weight=net.edges()[2], kernel="sparse")
    with torch.no_grad():
        sparse.bias.copy_(net.bias)
    x = torch.randn(6, 4)
    net(x).sum().backward()
    sparse(x).sum().backward()
    assert torch.allclose(net.weight.grad, sparse.weight.grad, atol=1e-5)
    assert torch.allclose(net.bias.grad, sparse.bias.grad, atol=1e-5)


def test_deep_grown_chain_and_activity_agree_between_kernels():
    """A relay chain many levels deep (what edge-driven growth builds) on the compact kernel."""
    net = npl.GraphNet(3, 2, activation="tanh", seed=0)
    for _ in range(20):
        src, dst, _ = net.edges()
        edits = npl.Edits()
        edits.add_neuron(between=(int(src[-1]), int(dst[-1])), weight_in=0.7, weight_out=0.9, bias=0.1)
        net.apply_edits(edits)
    sparse = npl.GraphNet.from_edges(3, 2, net.n_hidden, *net.edges()[:2], weight=net.edges()[2],
                                     activation="tanh", kernel="sparse")
    n = net.n_neurons
    with torch.no_grad():
        sparse.bias[:n] = net.bias[:n]
    assert int(net.levels().max()) > 15
    x = torch.randn(5, 3)
    traces = {}
    for model in (net, sparse):
        handle = model.register_trace_hook(lambda m, trace: traces.__setitem__(id(m), trace))
        model(x).sum().backward()
        handle.remove()
    assert torch.allclose(net(x), sparse(x), atol=1e-5)
    assert torch.allclose(net.edges()[2], sparse.edges()[2])
    live = net.edge_alive.nonzero().squeeze(1)
    assert torch.allclose(net.weight.grad[live], sparse.weight.grad[sparse.edge_alive], atol=1e-5)
    activity, sparse_activity = traces[id(net)].activity(), traces[id(sparse)].activity()
    assert activity.shape == (5, net.capacity)
    assert torch.allclose(activity[:, :n], sparse_activity[:, :n], atol=1e-6)


def test_dag_equals_recurrent_mode_with_steps_equal_depth():
    """DESIGN: a DAG of depth D is the recurrent mode with I = D sweeps on a nilpotent W."""
    net = npl.GraphNet.mlp(3, [4, 4], 2, activation="tanh", output_activation="tanh", seed=2)
    depth = int(net.levels().max())
    rec = npl.GraphNet.from_edges(3, 2, 8, *net.edges()[:2], weight=net.edges()[2], mode="recurrent",
                                  steps=depth, clamp_inputs=True, output_activation="tanh")
    with torch.no_grad():
        rec.bias.copy_(net.bias)
        rec.bias[:3] = 0
    x = torch.randn(5, 3)
    assert torch.allclose(rec(x), net(x), atol=1e-6)


def test_recurrent_mode_matches_explicit_sweeps():
    torch.manual_seed(0)
    n = 7
    w = torch.randn(n, n) * 0.5
    src = torch.arange(n).repeat(n)             # every pair, self loops included
    dst = torch.arange(n).repeat_interleave(n)
    net = npl.GraphNet.from_edges(2, 1, 4, src, dst, weight=w[dst, src], mode="recurrent", steps=3,
                                  activation="relu")
    x = torch.randn(4, 2)
    h = torch.cat([x, torch.zeros(4, n - 2)], 1)
    for _ in range(3):
        z = h @ w.t() + net.bias.detach()[:n]
        h = torch.cat([torch.relu(z[:, :2]), z[:, 2:3], torch.relu(z[:, 3:])], 1)
    y, states = net(x, return_states=True)
    assert torch.allclose(y, h[:, 2:3], atol=1e-5) and len(states) == 3


def test_capacity_growth_keeps_function_and_optimizer_state():
    net = npl.GraphNet(2, 1, seed=0)
    opt = trained(net)
    x = torch.randn(5, 2)
    before = net(x).detach()
    moments = {k: v[: net.edge_capacity].clone() for k, v in opt.state[net.weight].items() if v.dim()}
    old_capacity = net.capacity
    e = npl.Edits()
    refs = [e.add_neuron(between=(0, 2)) for _ in range(40)]
    net.apply_edits(e, optimizer=opt)
    assert net.capacity > old_capacity and net.n_hidden == 40
    assert torch.allclose(net(x), before, atol=1e-6)
    assert opt.param_groups[0]["params"][0] is net.weight  # the optimizer follows the new Parameter
    for key, old in moments.items():
        assert torch.equal(opt.state[net.weight][key][: len(old)], old)
    assert all(net.neuron_alive[int(r)] for r in refs)
    trained(net, steps=1)  # still trainable after reallocation


def test_packing_edges_keeps_function_optimizer_state_and_later_edits():
    net = npl.GraphNet.mlp(6, [32, 32], 3, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.randn(8, 6)
    net(x).pow(2).sum().backward()
    opt.step()
    src, dst, w = net.edges()
    cut = w.abs() < w.abs().quantile(0.9)  # prune 90% of the edges
    edits = npl.Edits()
    for s, d in zip(src[cut].tolist(), dst[cut].tolist()):
        edits.remove_edge(s, d)
    net.apply_edits(edits, optimizer=opt)
    before = net(x).detach()
    net.track_edge_owners()
    moments = {int(u): (float(m), float(v)) for u, m, v, a in zip(
        net.edge_uid, opt.state[net.weight]["exp_avg"], opt.state[net.weight]["exp_avg_sq"], net.edge_alive) if a}
    capacity = net.edge_capacity
    net.pack_edges(opt)
    assert net.edge_capacity == net.n_edges < capacity
    assert torch.allclose(net(x), before, atol=1e-6)
    state = opt.state[net.weight]
    assert {int(u): (float(m), float(v)) for u, m, v in zip(net.edge_uid, state["exp_avg"], state["exp_avg_sq"])} \
        == moments
    net(x).pow(2).sum().backward()
    opt.step()  # the optimizer steps the packed Parameter
    net.apply_edits(npl.Edits().add_edge(0, 6), optimizer=opt)  # storage grows again when needed
    assert net.n_edges == len(moments) + 1


def test_recurrent_net_with_fewer_edge_slots_than_pairs_runs():
    net = npl.GraphNet.dense_recurrent(1, 1, 3, steps=2, seed=0)
    src, dst, _ = net.edges()
    edits = npl.Edits()
    for s, d in zip(src.tolist(), dst.tolist()):
        if d != 0 or s > 2:  # keep 0->0, 1->0, 2->0: still at slot dst*m + src after packing
            edits.remove_edge(s, d)
    net.apply_edits(edits)
    net.pack_edges()
    x = torch.randn(3, 1)
    src, dst, w = net.edges()
    assert net.edge_capacity < 25 and len(w) > 0
    assert net(x).shape == (3, 1)


def test_sparse_recurrent_kernel_equals_dense_in_outputs_and_gradients():
    from neuroplastic.train.urn import URN
    net = URN(10, 3, size=200, steps=4, seed=0, c_weight=1e-3)
    src, dst, _ = net.edges()
    cut = torch.rand(len(src), generator=torch.Generator().manual_seed(0)) > 0.05
    net.apply_edits(npl.Edits().remove_edges(src[cut], dst[cut]))
    net.pack_edges()
    x, y = torch.randn(16, 10), torch.randint(0, 3, (16,))
    results = {}
    for kernel in ("dense", "sparse"):
        model = copy.deepcopy(net)
        model.kernel = kernel
        model._plan = None
        assert model.plan().sparse == (kernel == "sparse")
        loss, _ = model.loss(x, y)
        loss.backward()
        results[kernel] = (model(x), model.weight.grad, model.bias.grad)
    for dense, sparse in zip(results["dense"], results["sparse"]):
        assert torch.allclose(dense, sparse, atol=1e-6)
