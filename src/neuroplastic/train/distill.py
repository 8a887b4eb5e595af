"""Policy distillation: a student network imitates a teacher on a gymnasium control task.

The protocol (papers/smgrnn.md §1, §4): (state, teacher action) pairs are collected from
teacher rollouts; the student is trained by Adam on minibatches with cross-entropy
(discrete actions) or MSE (continuous actions, tanh-squashed and rescaled to the action
bounds); its return is measured on held-out reset seeds. DAgger-style relabelling of the
states the student itself visits is an option (`dagger_rounds`).

Students:
  smgrnn           GraphNet + SPM (grow and prune)
  growth-only      GraphNet + SPM with pruning off
  growth-disabled  GraphNet + SPM with both growth mechanisms off (pruning on)
  static           GraphNet, SPM off
  mlp              a plain torch.nn.Sequential MLP (`hidden=[...]`)
  mlp-WxW...       the experiment tables' name for it: "mlp-64x64" is mlp with hidden=[64, 64]
All share data, loss, optimizer and step budget, so differences come from the model.

The student sees observations flattened to float vectors (Box of any shape) or one-hot
(Discrete); the teacher always gets them exactly as the env returns them.
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core import checkpoint as ckpt
from ..errors import CheckpointError, ConfigError, UnknownNameError
from ..core.graph import ACTIVATION_MODULES, GraphNet, _check_activation
from ..rules.spm import SPM, SPMConfig
from ..tasks.control import (
    DATA_SEED_BASE,
    EVAL_SEED_BASE,
    ActionSpec,
    ObsSpec,
    make_env,
    rollout,
    teacher_batch,
)

MODELS = ("smgrnn", "growth-only", "growth-disabled", "static", "mlp")
# "mlp-16", "mlp-64x64": the experiment tables name MLP baselines by their hidden widths.
_MLP_VARIANT = re.compile(r"mlp-([1-9][0-9]*(?:x[1-9][0-9]*)*)")
# What each GraphNet variant changes in the SPM; everything else is shared.
_SPM_OVERRIDES = {
    "smgrnn": {},
    "growth-only": {"prune": False},
    "growth-disabled": {"edge_growth": False, "random_growth": False},
}


@dataclass
class DistillConfig:
    steps: int = 20_000            # optimizer steps (paper proposal: 50k)
    batch_size: int = 64
    lr: float = 1e-3
    n_data: int = 20_000           # teacher transitions collected before training
    data_episodes: int = 0         # 0: as many episodes as needed for n_data (batched 8 at a time)
    dagger_rounds: int = 0         # extra rounds of relabelling student-visited states
    dagger_episodes: int = 8
    eval_every: int = 2_000        # steps between learning-curve evaluations
    eval_episodes: int = 20        # held-out episodes for the final return
    curve_episodes: int = 5        # held-out episodes per learning-curve point
    hidden: list = field(default_factory=lambda: [64, 64])  # MLP widths
    # GraphNet start: dense in->out plus this many in->h->out. The paper is silent ("a few");
    # 4 failed Pendulum on 1 of 3 seeds (-593) because a relay sees one input only, so the
    # grown net could not form features of several inputs; 16 reached the teacher on 3 of 3.
    init_hidden: int = 16
    activation: str = "tanh"
    checkpoint_every: int = 0      # steps between checkpoints when a checkpoint path is given
    # torch intra-op threads while distilling. A student is tiny (batch 64, widths <= 256), so
    # there is nothing for a second thread to share, and on a shared 2-core machine torch's
    # default (one thread per core) ran 20x slower than 1 thread: the threads wait on each other
    # whenever another process holds a core. Raise it only for large students on idle machines.
    threads: int = 1
    env_kwargs: dict = field(default_factory=dict)  # keyword arguments for gymnasium.make

    def __post_init__(self):
        for f in dataclasses.fields(self):  # np.int64(5) is 5 to every check below
            setattr(self, f.name, plain(getattr(self, f.name)))
        for name in ("steps", "batch_size", "n_data", "eval_every", "eval_episodes", "curve_episodes",
                     "dagger_episodes", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be an integer >= 1")
        for name in ("dagger_rounds", "init_hidden", "checkpoint_every", "data_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}={value!r} must be an integer >= 0")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not self.lr > 0 \
                or not math.isfinite(self.lr):
            raise ConfigError(f"lr={self.lr!r} must be a positive number")
        if not isinstance(self.hidden, list | tuple) or not all(
                isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden):
            raise ConfigError(f"hidden={self.hidden!r} must be a list of positive integers")
        self.hidden = list(self.hidden)
        self.activation = _check_activation(self.activation, "activation")
        self.env_kwargs = _check_env_kwargs(self.env_kwargs)


def plain(value):
    """numpy scalars, also inside lists, tuples and dicts, as the Python values they stand for.

    Configs often come from numpy code (seeds from np.arange, sweeps from np.linspace). The
    checks here and in SPMConfig test for Python types, and checkpoints and results.json must
    hold plain data, so values are converted once, at the boundary. np.bool_ becomes bool, and
    so is still refused wherever a bool is.
    """
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value) if type(value) in (list, tuple) else value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _is_plain_data(value) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if type(value) in (list, tuple):
        return all(_is_plain_data(v) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str | int | float | bool) and _is_plain_data(v) for k, v in value.items())
    return False


def _check_env_kwargs(env_kwargs) -> dict:
    """A copy of env_kwargs, or a ConfigError: they are checkpointed (weights-only) and reported."""
    if not isinstance(env_kwargs, dict) or not all(isinstance(k, str) for k in env_kwargs):
        raise ConfigError(f"env_kwargs={env_kwargs!r} must be a dict with string keys "
                          f"(keyword arguments for gymnasium.make)")
    for key, value in env_kwargs.items():
        if not _is_plain_data(value):
            raise ConfigError(f"env_kwargs[{key!r}]={value!r} must be plain data (a number, string, bool, None, "
                              f"or a list, tuple or dict of them), since it is saved in checkpoints and results")
    return dict(env_kwargs)


def resolve_model(model) -> tuple[str, list[int] | None]:
    """A model name as (student kind, hidden widths it fixes): 'mlp-64x64' -> ('mlp', [64, 64]).

    The experiment's `variant_model` does the same for its variant names; this one lives here
    because experiments import distill, and distill must not import them back.
    """
    if isinstance(model, str):
        if model in MODELS:
            return model, None
        match = _MLP_VARIANT.fullmatch(model)
        if match:
            return "mlp", [int(w) for w in match.group(1).split("x")]
    raise UnknownNameError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}, "
                           f"or mlp-WxW... with positive widths (e.g. mlp-16, mlp-64x64)")


def _with_variant_hidden(options: dict, model: str, hidden: list[int] | None) -> dict:
    """Add the widths a name like "mlp-64x64" fixes. An explicit `hidden=` that disagrees is an
    error rather than silently winning: the name would then misreport the student in tables."""
    if hidden is None:
        return options
    given = plain(options.get("hidden", hidden))
    if not (isinstance(given, list | tuple) and list(given) == hidden):
        raise ConfigError(f"model={model!r} means hidden={hidden}, but hidden={options['hidden']!r} was also "
                          f"given; use model='mlp' with hidden=..., or drop hidden")
    return {**options, "hidden": hidden}


def _check_seed(seed) -> int:
    seed = plain(seed)
    # Reset seeds are derived from it and gymnasium refuses negative ones.
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be an integer >= 0")
    return seed


@contextmanager
def _torch_threads(n: int):
    """torch.set_num_threads(n) for the block only: distill leaves the process as it found it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def split_options(options: dict) -> tuple[DistillConfig, dict]:
    """Split flat keyword options into the DistillConfig and the SPM options."""
    ours = {f.name for f in dataclasses.fields(DistillConfig)}
    spm_fields = {f.name for f in dataclasses.fields(SPMConfig)}
    options = plain(options)
    unknown = sorted(set(options) - ours - spm_fields)
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; distillation options: {', '.join(sorted(ours))}; "
                          f"SPM options: {', '.join(sorted(spm_fields))}")
    return (DistillConfig(**{k: v for k, v in options.items() if k in ours}),
            {k: v for k, v in options.items() if k in spm_fields})


class Student(nn.Module):
    """Input normalisation (fixed, from the teacher data) + core network + action head."""

    def __init__(self, core: nn.Module, spec: ActionSpec, obs_mean: np.ndarray, obs_std: np.ndarray):
        super().__init__()
        self.core, self.discrete = core, spec.discrete
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32))
        if not spec.discrete:
            self.register_buffer("act_mid", torch.as_tensor((spec.high + spec.low) / 2))
            self.register_buffer("act_half", torch.as_tensor((spec.high - spec.low) / 2))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (discrete) or actions within the bounds (continuous)."""
        out = self.core((obs - self.obs_mean) / self.obs_std)
        return out if self.discrete else self.act_mid + self.act_half * torch.tanh(out)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        out = self(torch.as_tensor(obs, dtype=torch.float32))
        return out.argmax(1).numpy() if self.discrete else out.numpy()


def initial_graph(n_in: int, n_out: int, n_hidden: int, activation: str, seed: int) -> GraphNet:
    """Dense input->output edges plus n_hidden neurons wired input->hidden->output."""
    first = n_in + n_out
    src, dst = [], []
    for o in range(n_in, first):
        src += list(range(n_in))
        dst += [o] * n_in
    for h in range(first, first + n_hidden):
        src += list(range(n_in)) + [h] * n_out
        dst += [h] * n_in + list(range(n_in, first))
    return GraphNet.from_edges(n_in, n_out, n_hidden, src, dst, seed=seed, activation=activation)


def sequential_mlp(n_in: int, hidden: list[int], n_out: int, activation: str = "tanh") -> nn.Sequential:
    """A plain torch MLP: the baseline student and the benchmarks' reference."""
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATION_MODULES[activation]()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def build_core(model: str, n_in: int, n_out: int, cfg: DistillConfig, seed: int) -> nn.Module:
    if model == "mlp":
        torch.manual_seed(seed)
        return sequential_mlp(n_in, cfg.hidden, n_out, cfg.activation)
    return initial_graph(n_in, n_out, cfg.init_hidden, cfg.activation, seed)


def count_params(core: nn.Module) -> int:
    return core.n_params if isinstance(core, GraphNet) else sum(p.numel() for p in core.parameters())


def size_of(core: nn.Module) -> dict:
    if isinstance(core, GraphNet):
        return {"n_params": core.n_params, "n_hidden": core.n_hidden, "n_edges": core.n_edges}
    linears = [m for m in core.modules() if isinstance(m, nn.Linear)]
    return {"n_params": count_params(core), "n_hidden": sum(m.out_features for m in linears[:-1]),
            "n_edges": sum(m.weight.numel() for m in linears)}


def _collect(env_id, teacher, spec, obs_spec: ObsSpec, cfg: DistillConfig, seed: int):
    """Teacher demonstrations: at least n_data (student input, action) pairs from whole episodes."""
    act = teacher_batch(teacher, spec)
    raw, batch = [], 0
    while len(raw) < cfg.n_data:
        k = cfg.data_episodes or 8
        _, visited = rollout(env_id, act, k, DATA_SEED_BASE + seed * 100_000 + batch * k, record=True,
                             env_kwargs=cfg.env_kwargs)
        raw += visited
        batch += 1
        if cfg.data_episodes:
            break
    return obs_spec.flatten(raw), np.asarray(act(raw))


def _student_policy(student: Student, obs_spec: ObsSpec):
    """The student as `rollout` calls it: raw observations in, flattened for the network."""
    return lambda raw: student.act(obs_spec.flatten(raw))


def _targets(actions: np.ndarray, spec: ActionSpec) -> torch.Tensor:
    if spec.discrete:
        return torch.as_tensor(actions, dtype=torch.long)
    return torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(len(actions), spec.n_out))


def distill(env_id: str, teacher=None, model: str = "smgrnn", seed: int = 0, *,
            checkpoint=None, progress: bool = False, **options) -> dict:
    """Train a student to imitate `teacher` on `env_id`; returns metrics and history.

    `teacher` is any callable obs -> action (None: the built-in teacher for env_id); it gets
    each observation exactly as the env returns it. `model` is one of MODELS or "mlp-WxW..."
    ("mlp-64x64" = model "mlp" with hidden=[64, 64]; a different explicit `hidden=` is an error).
    Options are DistillConfig fields and SPM options (see `neuroplastic.rules.SPMConfig`);
    numpy scalars are accepted wherever Python numbers are.
    With `checkpoint=PATH` the run saves every `checkpoint_every` steps and resumes from
    PATH if it exists, ending with the same numbers as an uninterrupted run.
    """
    kind, variant_hidden = resolve_model(model)
    cfg, spm_options = split_options(_with_variant_hidden(options, model, variant_hidden))
    seed = _check_seed(seed)
    if teacher is None:
        from ..tasks.teachers import get_teacher
        teacher = get_teacher(env_id)
    if not callable(teacher):
        raise ConfigError(f"teacher must be a callable obs -> action, got {type(teacher).__name__}")
    env = make_env(env_id, cfg.env_kwargs)
    try:
        spec, obs_spec = ActionSpec.of(env.action_space), ObsSpec(env.observation_space)
    finally:
        env.close()
    spm_config = None
    if kind in _SPM_OVERRIDES:
        spm_config = SPMConfig.from_dict({"seed": seed, "lambda_edge": cfg.lr, **spm_options,
                                          **_SPM_OVERRIDES[kind]})
    elif spm_options:
        raise ConfigError(f"SPM option {sorted(spm_options)[0]!r} given for model {model!r}, which has no SPM")
    with _torch_threads(cfg.threads):
        result = _train(env_id, teacher, kind, seed, cfg, spm_config, spec, obs_spec, checkpoint, progress)
    result["model"] = model  # the name the caller used, e.g. "mlp-64x64" for a table row
    return result


def _train(env_id, teacher, model, seed, cfg, spm_config, spec, obs_spec, checkpoint, progress) -> dict:
    started = time.perf_counter()
    state = _load_or_start(checkpoint, env_id, model, seed, cfg, spm_config)
    if state is not None:  # wall_s counts the time spent before the interruption too
        started -= float(state["extra"].get("wall_s", 0.0))
    if state is None:
        obs, actions = _collect(env_id, teacher, spec, obs_spec, cfg, seed)
        torch.manual_seed(seed)
        core = build_core(model, obs_spec.n_in, spec.n_out, cfg, seed)
        # A feature the teacher's data never varies (a one-hot state it never visits) would
        # otherwise be scaled by 1e6 when the student meets it; such features keep scale 1.
        std = obs.std(0)
        mean, std = obs.mean(0), np.where(std < 1e-4, 1.0, std + 1e-6)
        student = Student(core, spec, mean, std)
        optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr)
        spm = SPM(spm_config) if spm_config else None
        gen = torch.Generator().manual_seed(seed)
        history: list[dict] = []
        start_step, dagger_done = 0, 0
        teacher_ret = None
        last_loss = float("nan")
    else:
        student, optimizer, spm, gen, history, obs, actions, start_step, dagger_done, teacher_ret = \
            _restore(state, spec, cfg, model)
        core = student.core
        # a checkpoint taken at the last step resumes straight into the final evaluation
        last_loss = state["extra"].get("last_loss", float("nan"))
    if teacher_ret is None:
        returns, _ = rollout(env_id, teacher_batch(teacher, spec), cfg.eval_episodes, EVAL_SEED_BASE,
                             env_kwargs=cfg.env_kwargs)
        teacher_ret = (float(returns.mean()), float(returns.std()))

    policy = _student_policy(student, obs_spec)
    inputs, targets = torch.as_tensor(obs, dtype=torch.float32), _targets(actions, spec)
    loss_fn = nn.CrossEntropyLoss() if spec.discrete else nn.MSELoss()
    if isinstance(core, GraphNet):
        core.track_activity = bool(spm and spm.config.prune_inactive)
    round_len = cfg.steps // (cfg.dagger_rounds + 1)
    bar = _progress(progress, cfg.steps, start_step, f"{env_id} {model} seed={seed}")
    loss = torch.tensor(last_loss)
    for step in range(start_step + 1, cfg.steps + 1):
        idx = torch.randint(len(inputs), (cfg.batch_size,), generator=gen)
        loss = loss_fn(student(inputs[idx]), targets[idx])
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        if spm is not None:
            spm.observe(core)
            spm.step(core, optimizer)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            returns, _ = rollout(env_id, policy, cfg.curve_episodes, EVAL_SEED_BASE, env_kwargs=cfg.env_kwargs)
            history.append({"step": step, "return": float(returns.mean()), "loss": float(loss.detach()),
                            **size_of(core)})
            if bar:
                bar.set_postfix(ret=f"{returns.mean():.1f}", params=size_of(core)["n_params"])
        if cfg.dagger_rounds and dagger_done < cfg.dagger_rounds and step == round_len * (dagger_done + 1):
            # DAgger: label the states the student reaches with the teacher's actions.
            _, visited = rollout(env_id, policy, cfg.dagger_episodes,
                                 DATA_SEED_BASE + 50_000 + seed * 100_000 + dagger_done * 1000, record=True,
                                 env_kwargs=cfg.env_kwargs)
            obs = np.concatenate([obs, obs_spec.flatten(visited)])
            actions = np.concatenate([actions, np.asarray(teacher_batch(teacher, spec)(visited))])
            inputs, targets = torch.as_tensor(obs, dtype=torch.float32), _targets(actions, spec)
            dagger_done += 1
        if checkpoint and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            _save(checkpoint, env_id, model, seed, cfg, core, optimizer, spm, gen, history, obs, actions,
                  step, dagger_done, teacher_ret, student, wall_s=time.perf_counter() - started,
                  last_loss=float(loss.detach()))
        if bar:
            bar.update(1)
    if bar:
        bar.close()

    returns, _ = rollout(env_id, policy, cfg.eval_episodes, EVAL_SEED_BASE, env_kwargs=cfg.env_kwargs)
    result = {
        "env_id": env_id, "model": model, "seed": seed,
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "teacher_return_mean": teacher_ret[0], "teacher_return_std": teacher_ret[1],
        **size_of(core),
        "final_loss": float(loss.detach()), "n_data": len(obs),
        "wall_s": time.perf_counter() - started,
        "history": history,
        "events": list(spm.events) if spm else [],
        "config": dataclasses.asdict(cfg),
        "spm": dataclasses.asdict(spm.config) if spm else None,
    }
    result["student"] = student
    return result


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, leave=False, mininterval=1.0)


# ----------------------------------------------------------------------- checkpoints
def _identity(env_id, model, seed, cfg, spm_config) -> dict:
    """What must match for a checkpoint to continue this run (the step budget may grow)."""
    c = dataclasses.asdict(cfg)
    c.pop("steps")
    c.pop("threads")  # how fast, not what: a run may resume on a machine with more cores
    if not c["env_kwargs"]:  # so checkpoints written before env_kwargs existed still match
        c.pop("env_kwargs")
    return {"env_id": env_id, "model": model, "seed": seed, "config": c,
            "spm": dataclasses.asdict(spm_config) if spm_config else None}


def _save(path, env_id, model, seed, cfg, core, optimizer, spm, gen, history, obs, actions, step,
          dagger_done, teacher_ret, student, wall_s: float, last_loss: float):
    extra = {"identity": _identity(env_id, model, seed, cfg, spm.config if spm else None),
             "gen": gen.get_state(), "history": history, "obs": torch.as_tensor(obs),
             "actions": torch.as_tensor(np.asarray(actions)), "dagger_done": dagger_done,
             "teacher_return": list(teacher_ret), "obs_norm": {"obs_mean": student.obs_mean, "obs_std": student.obs_std},
             "optimizer": optimizer.state_dict(), "wall_s": wall_s, "last_loss": last_loss}
    if isinstance(core, GraphNet):
        ckpt.save(path, core, rule=spm, step=step, extra=extra)
    else:  # an MLP student: store it through the same atomic, checksummed container
        extra["mlp_state"] = {k: v.detach().clone() for k, v in core.state_dict().items()}
        ckpt.save(path, None, step=step, extra=extra)


def _load_or_start(path, env_id, model, seed, cfg, spm_config):
    if not path or not Path(path).exists():
        return None
    state = ckpt.load(path)
    if state["extra"].get("identity") != _identity(env_id, model, seed, cfg, spm_config):
        raise CheckpointError(f"checkpoint {str(path)!r} belongs to a different run "
                              f"(env, model, seed or options differ); use another path")
    return state


def _restore(state, spec, cfg, model):
    extra = state["extra"]
    buffers = extra["obs_norm"]
    obs, actions = extra["obs"].numpy(), extra["actions"].numpy()
    if model == "mlp":
        core = build_core("mlp", obs.shape[1], spec.n_out, cfg, 0)
        core.load_state_dict(extra["mlp_state"])
    else:
        core = state["net"]
    student = Student(core, spec, buffers["obs_mean"].numpy(), buffers["obs_std"].numpy())
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    optimizer.load_state_dict(extra["optimizer"])
    spm = None
    if state["rule_state"] is not None:
        spm = SPM()
        spm.load_state_dict(state["rule_state"])
    gen = torch.Generator()
    gen.set_state(extra["gen"])
    ckpt.set_rng_state(state["rng"])
    return (student, optimizer, spm, gen, list(extra["history"]), obs, actions, int(state["step"]),
            int(extra["dagger_done"]), tuple(extra["teacher_return"]))
