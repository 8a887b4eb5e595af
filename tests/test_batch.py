"""GraphBatch: P graphs in one tensor program must compute what each GraphNet computes."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuroplastic as npl
from neuroplastic.bench.graphbatch import random_dags
from neuroplastic.core.batch import ACTIVATION_NAMES, activation_code

KERNELS = ["dense", "sparse"]


def each_forward(nets, x):
    """(P, B, n_out): every net's own forward, x shared (B, n_in) or per member (P, B, n_in)."""
    with torch.no_grad():
        return torch.stack([net(x if x.dim() == 2 else x[i]) for i, net in enumerate(nets)])


def mixed_nets():
    """Random DAGs of many depths, MLPs, a linear net and nets with relays and id gaps."""
    nets = random_dags(12, n_in=3, n_out=2, seed=1)
    nets += [npl.GraphNet.mlp(3, [4, 3], 2, seed=2), npl.GraphNet.mlp(3, [6], 2, activation="relu",
                                                                          output_activation="sigmoid", seed=3),
             npl.GraphNet(3, 2, activation="sigmoid", seed=4)]
    return nets + [edited(npl.GraphNet.mlp(3, [5, 4], 2, seed=5))]


def edited(net):
    """Relays on two edges, then two hidden neurons removed: ids with gaps."""
    e = npl.Edits()
    e.add_neuron(between=(0, net.n_in), weight_out=0.7, bias=0.1)
    e.add_neuron(between=(1, net.n_in + 1), weight_out=-0.4)
    net.apply_edits(e)
    first_hidden = net.n_in + net.n_out
    net.apply_edits(npl.Edits().remove_neuron(first_hidden).remove_neuron(first_hidden + 2))
    return net


def recurrent_nets(clamp):
    nets = [npl.GraphNet.dense_recurrent(2, 2, h, steps=3, activation="tanh", clamp_inputs=clamp, seed=h)
            for h in (1, 4, 6)]
    cyc = npl.GraphNet.from_edges(2, 2, 3, [0, 4, 5, 6, 6, 1, 2], [4, 5, 6, 4, 2, 5, 6], mode="recurrent",
                                  steps=3, clamp_inputs=clamp, activation="relu", seed=7)
    cyc.apply_edits(npl.Edits().remove_neuron(5))  # a gap in the ids
    with torch.no_grad():
        cyc.bias[:2] = torch.tensor([0.3, -0.2])  # input biases count without clamping
    return nets + [cyc]


@pytest.mark.parametrize("kernel", KERNELS)
def test_dag_outputs_equal_each_graphnet_for_shared_and_per_member_inputs(kernel):
    nets = mixed_nets()
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    assert len(set(pop.depth().tolist())) > 3  # mixed depths really are in the batch
    x = torch.randn(5, 3)
    torch.testing.assert_close(pop(x), each_forward(nets, x))
    xs = torch.randn(len(nets), 4, 3)
    torch.testing.assert_close(pop(xs), each_forward(nets, xs))


@pytest.mark.parametrize("kernel", KERNELS)
def test_float64_batches_match_graphnet_to_rounding(kernel):
    nets = [net.double() for net in mixed_nets()]
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    assert pop.weight.dtype == torch.float64
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(pop(x), each_forward(nets, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("clamp", [False, True])
def test_recurrent_outputs_equal_graphnet_with_and_without_clamped_inputs(kernel, clamp):
    nets = recurrent_nets(clamp)
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    assert pop.depth().tolist() == [3] * len(nets)
    x = torch.randn(5, 2)
    torch.testing.assert_close(pop(x), each_forward(nets, x))
    xs = torch.randn(len(nets), 3, 2)
    torch.testing.assert_close(pop(xs), each_forward(nets, xs))


def test_members_keep_their_own_neuron_ids_with_gaps():
    nets = mixed_nets()
    pop = npl.GraphBatch.from_nets(nets)
    for i, net in enumerate(nets):
        ids = net.neuron_alive.nonzero().squeeze(1)
        assert torch.equal(pop.neuron_alive[i].nonzero().squeeze(1), ids)
        assert torch.equal(pop.bias[i, ids], net.bias.detach()[ids])
    assert not bool(pop.neuron_alive[-1, 5])  # the edited net's removed neuron stays a gap


def test_depth_edges_and_hidden_counts_are_per_member_tensors():
    nets = mixed_nets()
    pop = npl.GraphBatch.from_nets(nets)
    assert pop.depth().tolist() == [int(net.levels().max()) for net in nets]
    assert pop.n_edges.tolist() == [net.n_edges for net in nets]
    assert pop.n_hidden.tolist() == [net.n_hidden for net in nets]
    assert len(pop) == len(nets)


@pytest.mark.parametrize("kernel", KERNELS)
def test_mixed_activations_in_one_member_follow_each_neurons_code(kernel):
    # 2 inputs -> hidden 3 (relu), 4 (sigmoid) -> output 2 (tanh); written out by hand
    P, E, N = 2, 4, 5
    src = torch.tensor([[0, 1, 3, 4]] * P)
    dst = torch.tensor([[3, 4, 2, 2]] * P)
    weight = torch.tensor([[1.5, -2.0, 0.5, 0.25], [-1.0, 1.0, 2.0, -3.0]])
    bias = torch.tensor([[0.0, 0.0, 0.1, -0.2, 0.3], [0.0, 0.0, -0.5, 0.0, 0.2]])
    codes = torch.tensor([[activation_code(a) for a in ("tanh", "tanh", "tanh", "relu", "sigmoid")]] * P)
    pop = npl.GraphBatch(2, 1, src, dst, weight, torch.ones(P, E, dtype=torch.bool), bias, codes,
                         torch.ones(P, N, dtype=torch.bool), kernel=kernel)
    x = torch.randn(7, 2)
    for p in range(P):
        w, b = weight[p], bias[p]
        h3 = torch.relu(w[0] * x[:, 0] + b[3])
        h4 = torch.sigmoid(w[1] * x[:, 1] + b[4])
        expected = torch.tanh(w[2] * h3 + w[3] * h4 + b[2])
        torch.testing.assert_close(pop(x)[p, :, 0], expected)
    assert pop.depth().tolist() == [2, 2]
    # as GraphNets the members keep every neuron's activation, and back in a batch too
    nets = pop.to_nets()
    assert nets[0].neuron_activations() == {0: "tanh", 1: "tanh", 2: "tanh", 3: "relu", 4: "sigmoid"}
    for p, net in enumerate(nets):
        torch.testing.assert_close(net(x), pop(x)[p])
    assert torch.equal(npl.GraphBatch.from_nets(nets).activation, pop.activation.to(torch.int8))


def test_round_trip_to_nets_is_exact():
    nets = mixed_nets() + [net for net in recurrent_nets(False)[:1]]
    dag = npl.GraphBatch.from_nets(nets[:-1])
    rec = npl.GraphBatch.from_nets(nets[-1:])
    back = dag.to_nets() + rec.to_nets()
    x = torch.randn(4, 3)
    for net, copy in zip(nets, back):
        assert isinstance(copy, npl.GraphNet)
        for key in ("n_in", "n_out", "mode", "steps", "clamp_inputs", "activation", "output_activation"):
            assert getattr(copy, key) == getattr(net, key)
        assert torch.equal(copy.neuron_alive.nonzero(), net.neuron_alive.nonzero())
        ids = net.neuron_alive.nonzero().squeeze(1)
        assert torch.equal(copy.bias.detach()[ids], net.bias.detach()[ids])
        as_set = lambda n: set(zip(*(t.tolist() for t in n.edges())))
        assert as_set(copy) == as_set(net)
        xi = x[:, :net.n_in]
        assert torch.equal(copy(xi), net(xi))


@pytest.mark.parametrize("kernel", KERNELS)
def test_editing_one_member_equals_editing_its_graphnet_and_leaves_the_others(kernel):
    nets = mixed_nets()
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    x = torch.randn(5, 3)
    before = pop(x)
    i = 3
    twin = npl.GraphBatch.from_nets([nets[i]]).to_net(0)  # an independent copy of member i
    src, dst, _ = twin.edges()
    s, d = int(src[0]), int(dst[0])

    def make():
        e = npl.Edits()
        h = e.add_neuron(between=(s, d), weight_out=0.9, bias=-0.3)
        e.remove_edge(s, d)
        return e, h

    e_pop, h_pop = make()
    applied = pop.apply_edits(e_pop, member=i)
    e_net, h_net = make()
    twin.apply_edits(e_net)
    assert applied is e_pop and int(h_pop) == int(h_net)
    after = pop(x)
    others = [j for j in range(len(nets)) if j != i]
    assert torch.equal(after[others], before[others])
    with torch.no_grad():
        torch.testing.assert_close(after[i], twin(x))
    assert pop.n_hidden[i] == twin.n_hidden and pop.n_edges[i] == twin.n_edges
    assert pop.depth()[i] == int(twin.levels().max())


def test_array_form_edits_apply_to_a_member_like_to_its_graphnet():
    nets = [npl.GraphNet.mlp(3, [4], 2, seed=k) for k in range(3)]
    pop = npl.GraphBatch.from_nets(nets)
    src, dst, _ = nets[1].edges()

    def make():
        return (npl.Edits().set_weights(src[:4], dst[:4], torch.zeros(4)).remove_edges(src[4:6], dst[4:6])
                .add_edges(torch.tensor([0, 1]), torch.tensor([3, 4]), torch.tensor([0.5, -0.5])))

    pop.apply_edits(make(), member=1)
    nets[1].apply_edits(make())
    x = torch.randn(5, 3)
    torch.testing.assert_close(pop(x), each_forward(nets, x))
    assert pop.n_edges.tolist() == [net.n_edges for net in nets]


def test_dict_of_edits_grows_capacity_for_everyone_only_when_needed():
    nets = [npl.GraphNet.mlp(2, [3], 1, seed=k) for k in range(4)]
    pop = npl.GraphBatch.from_nets(nets)
    x = torch.randn(3, 2)
    before = pop(x)
    n_cap, e_cap = pop.neuron_capacity, pop.edge_capacity
    pop.apply_edits({1: npl.Edits().remove_edge(0, 3)})  # fits: no growth
    assert (pop.neuron_capacity, pop.edge_capacity) == (n_cap, e_cap)
    grow = npl.Edits()
    for _ in range(5):
        grow.add_neuron(between=(0, 2), weight_out=0.1)
    pop.apply_edits({2: grow, 0: npl.Edits()})
    assert pop.neuron_capacity == n_cap + 5 and pop.edge_capacity > e_cap
    assert pop.n_hidden.tolist() == [3, 3, 8, 3]
    after = pop(x)
    assert torch.equal(after[[0, 3]], before[[0, 3]])
    for j in (1, 2):
        with torch.no_grad():
            torch.testing.assert_close(after[j], pop.to_net(j)(x))


def test_refused_edits_leave_every_member_unchanged():
    nets = [npl.GraphNet.mlp(2, [3], 1, seed=k) for k in range(3)]
    pop = npl.GraphBatch.from_nets(nets)
    x = torch.randn(3, 2)
    before, state = pop(x), {k: v.clone() for k, v in pop.state_dict().items()}
    ok = npl.Edits()
    ok.add_neuron(between=(0, 2))
    bad = npl.Edits().remove_edge(0, 1)  # there is no such edge
    with pytest.raises(npl.EditError, match="does not exist"):
        pop.apply_edits({0: ok, 1: bad})
    assert all(torch.equal(v, state[k]) for k, v in pop.state_dict().items())
    assert torch.equal(pop(x), before)
    with pytest.raises(npl.ConfigError, match="member"):
        pop.apply_edits(npl.Edits(), member=3)
    with pytest.raises(npl.ConfigError, match="member=i"):
        pop.apply_edits(npl.Edits())


def test_edits_of_a_mixed_member_keep_codes_and_give_new_neurons_the_asked_activation():
    net = npl.GraphNet.mlp(2, [2], 1, seed=0)
    pop = npl.GraphBatch.from_nets([net, net])
    pop.activation[0, 3] = activation_code("relu")  # member 0: hidden 3 relu, hidden 4 tanh
    e = npl.Edits()
    h = e.add_neuron(between=(0, 2), weight_out=0.5)
    pop.apply_edits(e, member=0, activation="sigmoid")
    names = [ACTIVATION_NAMES[c] for c in pop.activation[0, :6].tolist()]
    assert names[3:] == ["relu", "tanh", "sigmoid"] and int(h) == 5


def test_remove_dead_on_a_mixed_member_folds_a_constant_neuron_through_its_own_activation():
    # hidden 3 has no inputs (a constant: its activation of its bias) and feeds the output
    net = npl.GraphNet.from_edges(2, 1, 2, [3, 0, 4], [2, 4, 2], bias=[0.1, 0.5, -0.7], seed=0)
    pop = npl.GraphBatch.from_nets([net, net])
    pop.activation[0, 3] = activation_code("sigmoid")  # member 0: 3 sigmoid, 4 tanh
    x = torch.randn(5, 2)
    before = pop(x)
    pop.apply_edits(npl.Edits().remove_dead(), member=0)
    assert pop.n_hidden.tolist() == [1, 2]
    torch.testing.assert_close(pop(x), before)


@pytest.mark.parametrize("make, message", [
    (lambda: [], "non-empty list"),
    (lambda: [npl.GraphNet(2, 1), npl.GraphNet(3, 1)], "member 1 has n_in=3"),
    (lambda: [npl.GraphNet(2, 1), npl.GraphNet(2, 2)], "member 1 has n_out=2"),
    (lambda: [npl.GraphNet(2, 1), npl.GraphNet(2, 1, mode="recurrent")], "member 1 has mode='recurrent'"),
    (lambda: [npl.GraphNet(2, 1, mode="recurrent", steps=2), npl.GraphNet(2, 1, mode="recurrent", steps=3)],
     "member 1 has steps=3"),
    (lambda: [npl.GraphNet(2, 1, mode="recurrent"), npl.GraphNet(2, 1, mode="recurrent", clamp_inputs=True)],
     "member 1 has clamp_inputs=True"),
    (lambda: [npl.GraphNet(2, 1), torch.nn.Linear(2, 1)], "member 1 is a Linear, not a GraphNet"),
    (lambda: [npl.GraphNet(2, 1), npl.GraphNet(2, 1, dtype=torch.float64)], "member 1 is torch.float64"),
])
def test_from_nets_refuses_members_that_do_not_fit_together(make, message):
    with pytest.raises(npl.ConfigError, match=message):
        npl.GraphBatch.from_nets(make())


@pytest.mark.parametrize("shape", [(4, 3), (4,), (2, 4, 3), (3, 4, 2), (1, 2, 4, 2)])
def test_inputs_of_the_wrong_shape_are_a_config_error(shape):
    pop = npl.GraphBatch.from_nets([npl.GraphNet(2, 1), npl.GraphNet(2, 1, seed=1)])  # P = 2, n_in = 2
    with pytest.raises(npl.ConfigError, match="does not fit this batch"):
        pop(torch.randn(*shape))


def _raw(**change):
    """One member: inputs 0, 1; output 2; hidden 3, 4; edges 0->3, 3->4, 4->2."""
    t = dict(src=torch.tensor([[0, 3, 4]]), dst=torch.tensor([[3, 4, 2]]), weight=torch.ones(1, 3),
             edge_alive=torch.ones(1, 3, dtype=torch.bool), bias=torch.zeros(1, 5),
             activation=torch.zeros(1, 5, dtype=torch.long), neuron_alive=torch.ones(1, 5, dtype=torch.bool))
    t.update(change)
    return npl.GraphBatch(2, 1, **t)


@pytest.mark.parametrize("change, error, message", [
    (dict(src=torch.tensor([[0, 0, 4]]), dst=torch.tensor([[3, 3, 2]])), npl.ConfigError,
     "member 0: two live edges join the same"),
    (dict(src=torch.tensor([[0, 3, 4]]), dst=torch.tensor([[3, 4, 3]]), weight=torch.ones(1, 3),
          edge_alive=torch.tensor([[True, True, False]])), None, None),
    (dict(src=torch.tensor([[0, 3, 4]]), dst=torch.tensor([[3, 4, 3]])), npl.CycleError, r"member\(s\) \[0\]"),
    (dict(neuron_alive=torch.tensor([[True, True, True, True, False]])), npl.ConfigError, "dead neuron"),
    (dict(neuron_alive=torch.tensor([[True, True, False, True, True]])), npl.ConfigError, "must be alive"),
    (dict(dst=torch.tensor([[3, 4, 7]])), npl.ConfigError, "outside 0..4"),
    (dict(dst=torch.tensor([[3, 4, 1]])), npl.ConfigError, "no incoming edges"),
    (dict(activation=torch.full((1, 5), 9)), npl.ConfigError, "activation codes"),
    (dict(bias=torch.zeros(1, 4)), npl.ConfigError, "has shape"),
])
def test_raw_tensor_constructor_refuses_what_no_graphnet_could_hold(change, error, message):
    if error is None:
        assert _raw(**change).n_edges.tolist() == [2]
    else:
        with pytest.raises(error, match=message):
            _raw(**change)


@pytest.mark.parametrize("kernel", KERNELS)
def test_gradients_reach_inputs_and_biases_as_in_each_graphnet(kernel):
    nets = mixed_nets()[:8]
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    pop.bias.requires_grad_()
    x = torch.randn(4, 3, requires_grad=True)
    pop(x).pow(2).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    torch.stack([net(x_ref) for net in nets]).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    for i, net in enumerate(nets):
        ids = net.neuron_alive.nonzero().squeeze(1)[net.n_in:]
        torch.testing.assert_close(pop.bias.grad[i, ids], net.bias.grad[ids])


def test_double_and_to_follow_the_tensors():
    nets = mixed_nets()[:4]
    pop = npl.GraphBatch.from_nets(nets).to("cpu").double()
    assert pop.bias.dtype == torch.float64 and pop.src.dtype == torch.int32
    x = torch.randn(3, 3, dtype=torch.float64)
    torch.testing.assert_close(pop(x), each_forward([n.double() for n in nets], x))
    with pytest.raises(npl.ConfigError, match="is on"):
        pop(torch.randn(3, 3, device="meta"))


@pytest.mark.parametrize("kernel", KERNELS)
def test_writing_the_tensors_in_place_is_seen_by_the_next_forward(kernel):
    nets = [npl.GraphNet.mlp(2, [3], 1, seed=k) for k in range(3)]
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    x = torch.randn(4, 2)
    pop(x)  # builds and caches the plan
    with torch.no_grad():
        pop.weight[1] *= 2  # weights are read on every forward
        pop.activation[2, 3:] = activation_code("identity")  # topology-side: the plan is rebuilt
        nets[1].weight *= 2
        twin = npl.GraphNet.from_edges(2, 1, 3, *nets[2].edges(), bias=nets[2].bias[2:6], activation="identity")
    torch.testing.assert_close(pop(x), each_forward([nets[0], nets[1], twin], x))


@pytest.mark.parametrize("kernel", KERNELS)
def test_inference_mode_and_no_grad_forwards_mix_in_any_order(kernel):
    nets = mixed_nets()[:5]
    x = torch.randn(3, 3)
    expected = each_forward(nets, x)
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    with torch.inference_mode():
        torch.testing.assert_close(pop(x), expected)
    with torch.no_grad():
        torch.testing.assert_close(pop(x), expected)
    with torch.inference_mode():
        built_inside = npl.GraphBatch.from_nets(nets, kernel=kernel)
        built_inside(x)
    with torch.no_grad():
        torch.testing.assert_close(built_inside(x), expected)
    torch.testing.assert_close(built_inside.to_nets()[0](x), nets[0](x))
    built_inside.apply_edits(npl.Edits().remove_edge(*[int(t[0]) for t in nets[1].edges()[:2]]), member=1)
    assert built_inside.n_edges[1] == nets[1].n_edges - 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kernel", ["auto"] + KERNELS)
def test_cuda_outputs_equal_cpu_outputs(kernel):
    nets = mixed_nets()
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    x = torch.randn(5, 3)
    gpu = pop.to("cuda")
    assert gpu.weight.is_cuda
    torch.testing.assert_close(gpu(x.cuda()).cpu(), each_forward(nets, x))
    on_gpu = npl.GraphBatch.from_nets([n.to("cuda") for n in nets], kernel=kernel)
    torch.testing.assert_close(on_gpu(x.cuda()).cpu(), each_forward([n.cpu() for n in nets], x))


@st.composite
def small_population(draw):
    """1-4 random DAG GraphNets with shared n_in, n_out: hidden neurons wired in id order,
    random weights, per-net activations, and sometimes one hidden neuron removed (a gap)."""
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    n_fixed = n_in + n_out
    nets = []
    for _ in range(draw(st.integers(1, 4))):
        n_hidden = draw(st.integers(0, 5))
        hidden = list(range(n_fixed, n_fixed + n_hidden))
        pairs = [(s, d) for d in hidden for s in list(range(n_in)) + hidden if s < d or s < n_in]
        pairs += [(s, o) for o in range(n_in, n_fixed) for s in list(range(n_in)) + hidden]
        chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=12))
        weights = draw(st.lists(st.floats(-2, 2, width=32), min_size=len(chosen), max_size=len(chosen)))
        net = npl.GraphNet.from_edges(n_in, n_out, n_hidden, [s for s, _ in chosen], [d for _, d in chosen],
                                      weight=weights, activation=draw(st.sampled_from(ACTIVATION_NAMES)),
                                      output_activation=draw(st.sampled_from(ACTIVATION_NAMES)),
                                      seed=draw(st.integers(0, 10_000)))
        if hidden and draw(st.booleans()):
            net.apply_edits(npl.Edits().remove_neuron(draw(st.sampled_from(hidden))))
        nets.append(net)
    return nets


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_population(), st.sampled_from(KERNELS))
def test_any_small_dags_batch_like_their_graphnets_and_round_trip(nets, kernel):
    pop = npl.GraphBatch.from_nets(nets, kernel=kernel)
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(3, nets[0].n_in)), dtype=torch.float32)
    torch.testing.assert_close(pop(x), each_forward(nets, x))
    for net, copy in zip(nets, pop.to_nets()):
        # the same graph exactly; the outputs to rounding only: a net whose edges sit in scattered
        # slots (after a removal) runs the compact kernel, its packed copy a weight view, and the
        # two products may round the last bit differently
        assert [t.tolist() for t in copy.edges()] == [t.tolist() for t in net.edges()]
        assert copy.neuron_activations() == net.neuron_activations()
        live = net.neuron_alive.nonzero().squeeze(1)
        assert torch.equal(copy.bias.detach()[live], net.bias.detach()[live])
        torch.testing.assert_close(copy(x), net(x), rtol=1e-6, atol=1e-6)


def test_random_dags_for_the_benchmark_are_seeded_and_of_mixed_depth():
    a, b = random_dags(30, seed=3), random_dags(30, seed=3)
    x = torch.randn(2, 2)
    assert torch.equal(each_forward(a, x), each_forward(b, x))
    sizes = [net.n_neurons for net in a]
    assert min(sizes) >= 5 and max(sizes) <= 30
    assert len({int(net.levels().max()) for net in a}) > 5
