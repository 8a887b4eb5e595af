"""Lottery tickets (Frankle & Carbin 2019): an MLP in-300-100-out, the paper's LeNet-300-100,
on sklearn digits (64-300-100-10), on MNIST from IDX files (`--data DIR`: the paper's own
784-300-100-10) and on a distilled control policy (CartPole-v1: the net learns the teacher's
actions on the teacher's states, and the pruned policy is run in the environment).

Method: iterative magnitude pruning (`neuroplastic.prune`), `rounds` rounds of `rate` of the
remaining weights each (layer-wise, the output layer at half the rate, as the paper prunes
LeNet; `scope=global` ranks all weights together), survivors reset to their initial values
(`rewind_step` = k: to their values after k optimizer steps). The pruning removes the edges
(and dead neurons) from the GraphNet. Every level trains from scratch with a fresh Adam
(the paper's lr 1.2e-3, batch 60) for `epochs` epochs on the training split less a
validation share. Early stop (the paper's App. C): the epoch of minimum validation loss;
test accuracy is read there, and a policy's return (`eval_episodes` episodes, the same ones
for every net) is measured with the weights of that epoch. Beside the paper's early-stop
iteration, `converge_iter` is the first iteration whose validation loss is within 10% of the
training's minimum: on small data the loss tail is flat and its argmin is noisy. Controls:
the same structure re-initialised at random ("reinit"), and as many weights pruned per layer
at random ("random"). Features are standardised with the training split's statistics.
`--data FILE.npz` (X, y) or an MNIST IDX directory replaces the default tasks.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..core.validate import check_int, check_number
from ..errors import ConfigError
from . import register
from .options import layer_widths, string_list, with_overrides

DEFAULT = {"data": ["digits", "CartPole-v1"], "variants": ["imp", "random"], "seeds": 3, "hidden": [300, 100],
           # pruning
           "rounds": 15, "rate": 0.2, "scope": "layer", "output_rate": None, "rewind_step": 0,
           # training (the paper's optimiser and batch)
           "epochs": 50, "lr": 1.2e-3, "batch_size": 60, "val_fraction": 0.1, "test_fraction": 0.25,
           # distilled policy: teacher episodes for the data, episodes to measure a return
           "policy_episodes": 4, "eval_episodes": 100,
           "threads": 1}
QUICK = {"seeds": 1, "rounds": 3, "epochs": 5, "eval_episodes": 5, "policy_episodes": 2}
CONVERGED = 1.1       # converge_iter: validation loss within 10% of the training's minimum
EVAL_SEED = 900_000   # the policy's evaluation episodes (the same for every net and seed)
DATA_SEED = 800_000   # the teacher's episodes for seed s start at DATA_SEED + 1000 s
FULL = {"seeds": 5}
VARIANTS = ("imp", "random")   # imp: the winning ticket and its random re-init; random: random pruning

OPTION_NOTES = {
    "data": "tasks: digits, FILE.npz (X, y), an MNIST IDX dir, or a control env with a discrete teacher "
            "(CartPole-v1); also --data",
    "policy_episodes": "teacher episodes whose (state, action) pairs make a policy task's data",
    "eval_episodes": "episodes a pruned policy is run for its return (the same episodes for every net)",
    "variants": "imp (winning ticket + random re-init) and/or random (random pruning)",
    "hidden": "hidden layer widths", "rounds": "pruning rounds (15 x 20% leaves ~3.9%)",
    "rate": "share of the remaining weights pruned a round, in (0, 1)",
    "scope": "layer (output layer at output_rate) or global",
    "output_rate": "output layer's rate in layer scope; default rate / 2 (the paper's)",
    "rewind_step": "0: reset survivors to init; k: to their values after k optimizer steps",
    "epochs": "epochs of Adam per level (the validation loss is read after each)",
    "val_fraction": "share of the training split for the early stop",
    "threads": "torch CPU threads (the nets are small: 1 is fastest)",
}


def is_policy_task(spec: str) -> bool:
    from ..tasks.teachers import TEACHERS
    return spec in TEACHERS


def policy_data(env_id: str, episodes: int, seed: int, test_fraction: float):
    """The teacher's (state, action) pairs from `episodes` whole episodes, split at random."""
    from sklearn.model_selection import train_test_split

    from ..tasks.control import ActionSpec, ObsSpec, make_env, rollout, teacher_batch
    from ..tasks.teachers import get_teacher
    env = make_env(env_id)
    spec, obs_spec = ActionSpec.of(env.action_space), ObsSpec(env.observation_space)
    env.close()
    if not spec.discrete:
        raise ConfigError(f"data={env_id!r}: the lottery experiment takes control tasks with discrete actions "
                          "(a policy's test accuracy is its agreement with the teacher)")
    act = teacher_batch(get_teacher(env_id), spec)
    _, raw = rollout(env_id, act, episodes, DATA_SEED + 1000 * seed, record=True)
    x, y = obs_spec.flatten(raw), np.asarray(act(raw), dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed)
    return x_tr, y_tr, x_te, y_te, obs_spec


def load_split(spec: str, seed: int, val_fraction: float, test_fraction: float = 0.25, policy_episodes: int = 4):
    """(train, validation, test) pairs, standardised with the training split's statistics, and
    for a policy task the function that maps raw observations to the net's inputs."""
    from sklearn.model_selection import train_test_split

    from ..tasks.datasets import load_data
    obs_spec = None
    if is_policy_task(spec):
        x_train, y_train, x_test, y_test, obs_spec = policy_data(spec, policy_episodes, seed, test_fraction)
        stratify = None
    else:
        data = load_data(spec, seed=seed)
        x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
        stratify = y_train
    if stratify is not None and len(np.unique(y_train)) < 2:
        raise ConfigError(f"{spec}: the training split holds one class only; give more samples of each class")
    try:  # stratified: every class needs a sample on both sides, so small data can fail here
        x_tr, x_va, y_tr, y_va = train_test_split(x_train, y_train, test_size=val_fraction,
                                                  random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise ConfigError(f"{spec}: its {len(x_train)} training samples cannot give a validation split with "
                          f"val_fraction={val_fraction} ({exc})") from None
    mean, std = x_tr.mean(0), x_tr.std(0)
    std = np.where(std > 0, std, 1.0)
    norm = [((x - mean) / std).astype(np.float32) for x in (x_tr, x_va, x_test)]
    inputs = None if obs_spec is None else (lambda raw: ((obs_spec.flatten(raw) - mean) / std).astype(np.float32))
    return (norm[0], y_tr), (norm[1], y_va), (norm[2], y_test), inputs


def policy_return(env_id: str, net, inputs, episodes: int) -> tuple[float, float]:
    """Mean and std return of the greedy policy argmax net(inputs(obs)) over the evaluation episodes."""
    from ..tasks.control import rollout

    def act(raw):
        with torch.no_grad():
            return net(torch.as_tensor(inputs(raw))).argmax(1).tolist()
    returns, _ = rollout(env_id, act, episodes, EVAL_SEED)
    return float(returns.mean()), float(returns.std())


class LotteryExperiment:
    name = "lottery"
    description = ("lottery tickets: iterative magnitude pruning with rewinding, MLP in-300-100-out on digits, "
                   "MNIST IDX and a distilled CartPole policy")
    inputs = "data"
    presets = {"--quick": QUICK, "--full": FULL}

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        from ..prune import check_options
        config = with_overrides("lottery", DEFAULT, QUICK if quick else FULL if full else {}, overrides)
        config["variants"] = string_list(config, "variants")
        for v in config["variants"]:
            if v not in VARIANTS:
                raise ConfigError(f"variant={v!r} is not supported; expected one of {list(VARIANTS)}")
        config["data"] = string_list(config, "data")
        config["hidden"] = layer_widths(config, "hidden", "300,100")
        config.update(check_options(config["rate"], config["scope"], config["output_rate"], config["rewind_step"]))
        for key, minimum in (("seeds", 1), ("rounds", 0), ("epochs", 1), ("batch_size", 1), ("threads", 1),
                             ("policy_episodes", 1), ("eval_episodes", 1)):
            config[key] = check_int(config[key], key, minimum)
        for key in ("val_fraction", "test_fraction"):
            config[key] = check_number(config[key], key, above=0, below=1)
        config["lr"] = check_number(config["lr"], "lr", above=0)
        for spec in config["data"]:
            if spec == "digits":
                continue
            if not (is_policy_task(spec) or spec.endswith(".npz") or Path(spec).is_dir()):
                raise ConfigError(f"data {spec!r} is neither digits, a FILE.npz, an MNIST IDX directory nor a "
                                  "control task with a built-in teacher (CartPole-v1)")
            # a bad file or env fails here, before any job
            load_split(spec, 0, config["val_fraction"], config["test_fraction"], 1)
        return config

    def jobs(self, config: dict) -> list[dict]:
        return [{"task": t, "variant": v, "seed": s} for t in config["data"] for s in range(config["seeds"])
                for v in config["variants"]]

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        from ..core.graph import GraphNet
        from ..prune import find_tickets
        from ..train.supervised import evaluate, train_supervised
        torch.set_num_threads(config["threads"])
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te), inputs = load_split(
            job["task"], job["seed"], config["val_fraction"], config["test_fraction"], config["policy_episodes"])
        x_va_t, y_va_t = torch.as_tensor(x_va), torch.as_tensor(y_va).long()
        steps_per_epoch = math.ceil(len(x_tr) / config["batch_size"])
        n_classes = int(max(y_tr.max(), y_te.max())) + 1

        def train(net, rule) -> dict:
            best = {"val_loss": math.inf}

            def on_epoch(model, optimizer, epoch):
                with torch.no_grad():
                    val_loss = float(torch.nn.functional.cross_entropy(model(x_va_t), y_va_t))
                if inputs is not None and val_loss < best["val_loss"]:  # the early-stopped policy's weights
                    best.update(val_loss=val_loss, weight=model.weight.detach().clone(),
                                bias=model.bias.detach().clone())
                return {"val_loss": val_loss, "test": evaluate(model, x_te, y_te)}
            started = time.perf_counter()
            hist = train_supervised(net, x_tr, y_tr, epochs=config["epochs"], lr=config["lr"],
                                    batch_size=config["batch_size"], seed=job["seed"], rule=rule,
                                    x_val=x_va, y_val=y_va, on_epoch=on_epoch)
            losses = [h["val_loss"] for h in hist]
            stop = min(range(len(hist)), key=losses.__getitem__)
            near = next(i for i, v in enumerate(losses) if v <= CONVERGED * losses[stop])
            out = {"test_accuracy": hist[stop]["test"], "final_test_accuracy": hist[-1]["test"],
                   "early_stop_iter": (stop + 1) * steps_per_epoch, "converge_iter": (near + 1) * steps_per_epoch,
                   "budget_iter": len(hist) * steps_per_epoch, "min_val_loss": losses[stop],
                   "val_accuracy": hist[stop]["val"], "train_accuracy": evaluate(net, x_tr, y_tr),
                   "hidden": net.n_hidden, "train_s": time.perf_counter() - started}
            if inputs is not None:
                final = net.weight.detach().clone(), net.bias.detach().clone()
                with torch.no_grad():
                    net.weight.copy_(best["weight"])
                    net.bias.copy_(best["bias"])
                out["return_mean"], out["return_std"] = policy_return(job["task"], net, inputs,
                                                                      config["eval_episodes"])
                with torch.no_grad():  # IMP prunes the final weights, as for the data sets
                    net.weight.copy_(final[0])
                    net.bias.copy_(final[1])
            return out

        net = GraphNet.mlp(x_tr.shape[1], config["hidden"], n_classes, activation="relu", seed=job["seed"])
        controls = ("ticket", "reinit") if job["variant"] == "imp" else ("random",)
        started = time.perf_counter()
        levels = find_tickets(net, train, config["rounds"], rate=config["rate"], scope=config["scope"],
                              output_rate=config["output_rate"], rewind_step=config["rewind_step"],
                              controls=controls, seed=job["seed"])
        # the shared metric names (DESIGN.md) describe the row's sparsest net, the last round of
        # its own control: the winning ticket for imp, the randomly pruned net for random
        last = levels[controls[0]][-1]
        shared = {"test_accuracy": last["test_accuracy"], "n_edges": last["edges"], "n_hidden": last["hidden"],
                  "n_params": last["edges"] + last["hidden"] + n_classes}   # weights and the computed biases
        shared.update({k: last[k] for k in ("return_mean", "return_std") if k in last})
        return {"levels": levels, "n_weights": levels[controls[0]][0]["edges"], **shared,
                "wall_s": time.perf_counter() - started}

    def report(self, results: dict, out_dir) -> None:
        from .lottery_report import write_report
        write_report(results, Path(out_dir))

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        return [("experiment", DEFAULT, OPTION_NOTES)]


register(LotteryExperiment())
