"""Policy distillation: a student network imitates a teacher on a gymnasium control task.

The protocol (docs/smgrnn.md): (state, teacher action) pairs are collected from
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
With `learner="hebbian"` a GraphNet student learns with no optimizer and no gradient: local
rules (`rules.ContrastiveHebbian`) change its weights and the SPM, where it has one, its
structure (the SMGrNN paper's future work; docs/smgrnn.md).

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
from ..core.graph import ACTIVATION_MODULES, GraphNet, check_activation
from ..core.validate import check_choice, check_int, check_number, plain
from ..errors import CheckpointError, ConfigError, UnknownNameError
from ..rules.base import RuleDriver, check_rule, rule_from_state
from ..rules.contrastive import HIDDEN_RULES, ContrastiveHebbian
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
LEARNERS = ("adam", "hebbian")
# Options that only the Hebbian learner reads: absent from an Adam run's config and identity,
# so its results and checkpoints read as they did before the learner existed.
_HEBBIAN_OPTIONS = ("learner", "hebbian_lr", "hebbian_hidden", "hebbian_hidden_lr")
HEBBIAN_SETTINGS = _HEBBIAN_OPTIONS[1:]   # what configures the rule, once learner="hebbian"
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
    # What changes the weights: "adam" (backpropagation and Adam, the paper's method) or
    # "hebbian": local rules only, no gradient and no optimizer (`rules.ContrastiveHebbian`:
    # the teacher's error at the outputs, Oja's rule or nothing in the hidden neurons). The
    # SMGrNN paper names a Hebbian module as future work; it gives no rule or values.
    learner: str = "adam"
    hebbian_lr: float = 0.1        # eta of the output rule (a GraphNet student only)
    hebbian_hidden: str = "oja"    # "oja" or "fixed": how hidden edges learn
    hebbian_hidden_lr: float = 0.01

    def __post_init__(self):
        for f in dataclasses.fields(self):  # np.int64(5) is 5 to every check below
            setattr(self, f.name, plain(getattr(self, f.name)))
        for name in ("steps", "batch_size", "n_data", "eval_every", "eval_episodes", "curve_episodes",
                     "dagger_episodes", "threads"):
            check_int(getattr(self, name), name, 1)
        for name in ("dagger_rounds", "init_hidden", "checkpoint_every", "data_episodes"):
            check_int(getattr(self, name), name, 0)
        self.lr = check_number(self.lr, "lr", above=0)
        self.learner = check_choice(self.learner, "learner", LEARNERS)
        self.hebbian_lr = check_number(self.hebbian_lr, "hebbian_lr", above=0)
        self.hebbian_hidden = check_choice(self.hebbian_hidden, "hebbian_hidden", HIDDEN_RULES)
        self.hebbian_hidden_lr = check_number(self.hebbian_hidden_lr, "hebbian_hidden_lr", 0)
        try:
            if not isinstance(self.hidden, list | tuple):
                raise ConfigError("not a list")
            self.hidden = [check_int(h, "hidden width", 1) for h in self.hidden]
        except ConfigError:
            raise ConfigError(f"hidden={self.hidden!r} must be a list of positive integers") from None
        self.activation = check_activation(self.activation, "activation")
        self.env_kwargs = _check_env_kwargs(self.env_kwargs)


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
    # Reset seeds are derived from it and gymnasium refuses negative ones.
    return check_int(plain(seed), "seed", 0)


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


def distill(env_id: str, teacher=None, model: str = "smgrnn", seed: int = 0, *, rule=None,
            checkpoint=None, progress: bool = False, **options) -> dict:
    """Train a student to imitate `teacher` on `env_id`; returns metrics and history.

    `teacher` is any callable obs -> action (None: the built-in teacher for env_id); it gets
    each observation exactly as the env returns it. `model` is one of MODELS or "mlp-WxW..."
    ("mlp-64x64" = model "mlp" with hidden=[64, 64]; a different explicit `hidden=` is an error).
    Options are DistillConfig fields (`learner="hebbian"`: local rules instead of Adam) and SPM
    options (see `neuroplastic.rules.SPMConfig`);
    numpy scalars are accepted wherever Python numbers are.
    `rule`: any rule of the protocol (`neuroplastic.rules.Rule`) to drive the GraphNet student
    instead of the model's own SPM; it is observed and stepped after every optimizer step.
    With `checkpoint=PATH` the run saves every `checkpoint_every` steps and resumes from
    PATH if it exists, ending with the same numbers as an uninterrupted run.
    """
    kind, variant_hidden = resolve_model(model)
    cfg, spm_options = split_options(_with_variant_hidden(options, model, variant_hidden))
    given = sorted(set(options) & set(HEBBIAN_SETTINGS))
    if given and cfg.learner != "hebbian":
        raise ConfigError(f"{given[0]} given with learner={cfg.learner!r}; it configures learner='hebbian'")
    seed = _check_seed(seed)
    if teacher is None:
        from ..tasks.teachers import get_teacher
        teacher = get_teacher(env_id)
    if not callable(teacher):
        raise ConfigError(f"teacher must be a callable obs -> action, got {type(teacher).__name__}")
    if kind == "mlp" and cfg.learner != "adam":
        raise ConfigError(f"learner={cfg.learner!r} acts on a GraphNet student; model {model!r} is a plain "
                          f"torch MLP trained by Adam")
    if rule is not None:
        if kind == "mlp":
            raise ConfigError("rule= acts on a GraphNet student; model 'mlp' is a plain torch MLP")
        if spm_options:
            raise ConfigError(f"SPM option {sorted(spm_options)[0]!r} given together with rule=; "
                              "configure the rule you pass instead")
        check_rule(rule)
    env = make_env(env_id, cfg.env_kwargs)
    try:
        spec, obs_spec = ActionSpec.of(env.action_space), ObsSpec(env.observation_space)
    finally:
        env.close()
    spm_config = None
    if kind in _SPM_OVERRIDES and rule is None:
        # lambda_edge is of the order of a step's Δw: lr under Adam, eta under the Hebbian rule
        step_size = cfg.lr if cfg.learner == "adam" else cfg.hebbian_lr
        spm_config = SPMConfig.from_dict({"seed": seed, "lambda_edge": step_size, **spm_options,
                                          **_SPM_OVERRIDES[kind]})
    elif spm_options:
        raise ConfigError(f"SPM option {sorted(spm_options)[0]!r} given for model {model!r}, which has no SPM")
    run = _Run(env_id, teacher, kind, seed, cfg, spec, obs_spec)
    with _torch_threads(cfg.threads):
        result = run.train(spm_config, rule, checkpoint, progress)
    result["model"] = model  # the name the caller used, e.g. "mlp-64x64" for a table row
    return result


@dataclass
class DistillState:
    """Everything a distillation run carries from one step to the next, and into checkpoints."""

    student: Student
    optimizer: torch.optim.Optimizer | None   # None when a local rule learns instead
    rule: object | None
    gen: torch.Generator
    obs: np.ndarray
    actions: np.ndarray
    history: list = field(default_factory=list)
    step: int = 0
    dagger_done: int = 0
    teacher_return: tuple | None = None
    last_loss: float = float("nan")
    wall_before: float = 0.0   # seconds spent before the run was interrupted and resumed
    learner: ContrastiveHebbian | None = None   # the weight rule of learner="hebbian"

    @property
    def core(self) -> nn.Module:
        return self.student.core


@dataclass
class _Run:
    """One distillation run: its fixed inputs, and the loop that advances a DistillState."""

    env_id: str
    teacher: object
    model: str
    seed: int
    cfg: DistillConfig
    spec: ActionSpec
    obs_spec: ObsSpec

    def train(self, spm_config, rule, checkpoint, progress: bool) -> dict:
        started = time.perf_counter()
        cfg = self.cfg
        state = self.resume(checkpoint, spm_config, rule)
        if state is None:
            state = self.start(spm_config, rule)
        started -= state.wall_before  # wall_s counts the time spent before an interruption too
        if state.teacher_return is None:
            returns, _ = rollout(self.env_id, teacher_batch(self.teacher, self.spec), cfg.eval_episodes,
                                 EVAL_SEED_BASE, env_kwargs=cfg.env_kwargs)
            state.teacher_return = (float(returns.mean()), float(returns.std()))
        policy = _student_policy(state.student, self.obs_spec)
        inputs, targets = torch.as_tensor(state.obs, dtype=torch.float32), _targets(state.actions, self.spec)
        loss_fn = nn.CrossEntropyLoss() if self.spec.discrete else nn.MSELoss()
        driver = RuleDriver(state.rule, state.core) if state.rule is not None else None
        round_len = cfg.steps // (cfg.dagger_rounds + 1)
        bar = _progress(progress, cfg.steps, state.step, f"{self.env_id} {self.model} seed={self.seed}")
        loss = torch.tensor(state.last_loss)
        try:
            for step in range(state.step + 1, cfg.steps + 1):
                idx = torch.randint(len(inputs), (cfg.batch_size,), generator=state.gen)
                if state.learner is None:
                    loss = loss_fn(state.student(inputs[idx]), targets[idx])
                    state.optimizer.zero_grad(set_to_none=False)
                    loss.backward()
                    state.optimizer.step()
                else:
                    loss = local_step(state, inputs[idx], targets[idx], loss_fn)
                if driver is not None:
                    driver.after_step(state.optimizer)
                state.step, state.last_loss = step, float(loss.detach())
                if state.learner is not None and not math.isfinite(state.last_loss):
                    raise ConfigError(f"the Hebbian learner diverged (loss {state.last_loss} at step {step}); "
                                      f"lower hebbian_lr (now {cfg.hebbian_lr})")
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    returns, _ = rollout(self.env_id, policy, cfg.curve_episodes, EVAL_SEED_BASE,
                                         env_kwargs=cfg.env_kwargs)
                    state.history.append({"step": step, "return": float(returns.mean()),
                                          "loss": state.last_loss, **size_of(state.core)})
                    if bar:
                        bar.set_postfix(ret=f"{returns.mean():.1f}", params=size_of(state.core)["n_params"])
                if cfg.dagger_rounds and state.dagger_done < cfg.dagger_rounds \
                        and step == round_len * (state.dagger_done + 1):
                    self.relabel(state, policy)
                    inputs, targets = torch.as_tensor(state.obs, dtype=torch.float32), \
                        _targets(state.actions, self.spec)
                if checkpoint and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    state.wall_before = time.perf_counter() - started
                    self.save(checkpoint, state, spm_config)
                if bar:
                    bar.update(1)
        finally:
            if driver is not None:
                driver.close()
            if bar:
                bar.close()
        returns, _ = rollout(self.env_id, policy, cfg.eval_episodes, EVAL_SEED_BASE, env_kwargs=cfg.env_kwargs)
        config = dataclasses.asdict(cfg)
        config.pop("init_hidden" if self.model == "mlp" else "hidden")  # what this student does not use
        if cfg.learner == "adam":
            for key in _HEBBIAN_OPTIONS:
                config.pop(key)
        rule = state.rule
        result = {
            "env_id": self.env_id, "model": self.model, "seed": self.seed,
            "return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "teacher_return_mean": state.teacher_return[0], "teacher_return_std": state.teacher_return[1],
            **size_of(state.core),
            "final_loss": state.last_loss, "n_data": len(state.obs),
            "wall_s": time.perf_counter() - started,
            "history": state.history,
            "events": list(getattr(rule, "events", [])),
            "config": config,
            "spm": dataclasses.asdict(rule.config) if isinstance(rule, SPM) else None,
            "rule": type(rule).__name__ if rule is not None else None,
        }
        result["student"] = state.student
        return result

    def start(self, spm_config, rule) -> DistillState:
        obs, actions = _collect(self.env_id, self.teacher, self.spec, self.obs_spec, self.cfg, self.seed)
        torch.manual_seed(self.seed)
        core = build_core(self.model, self.obs_spec.n_in, self.spec.n_out, self.cfg, self.seed)
        # A feature the teacher's data never varies (a one-hot state it never visits) would
        # otherwise be scaled by 1e6 when the student meets it; such features keep scale 1.
        std = obs.std(0)
        mean, std = obs.mean(0), np.where(std < 1e-4, 1.0, std + 1e-6)
        student = Student(core, self.spec, mean, std)
        optimizer, learner = self.learner(student)
        if rule is None and spm_config is not None:
            rule = SPM(spm_config)
        return DistillState(student, optimizer, rule, torch.Generator().manual_seed(self.seed), obs, actions,
                            learner=learner)

    def learner(self, student: Student) -> tuple[torch.optim.Optimizer | None, ContrastiveHebbian | None]:
        """(Adam, None), or (None, the local rule) for learner="hebbian": one of them learns."""
        cfg = self.cfg
        if cfg.learner == "hebbian":
            return None, ContrastiveHebbian(cfg.hebbian_lr, cfg.hebbian_hidden, cfg.hebbian_hidden_lr)
        return torch.optim.Adam(student.parameters(), lr=cfg.lr), None

    def relabel(self, state: DistillState, policy) -> None:
        """DAgger: label the states the student reaches with the teacher's actions."""
        _, visited = rollout(self.env_id, policy, self.cfg.dagger_episodes,
                             DATA_SEED_BASE + 50_000 + self.seed * 100_000 + state.dagger_done * 1000,
                             record=True, env_kwargs=self.cfg.env_kwargs)
        state.obs = np.concatenate([state.obs, self.obs_spec.flatten(visited)])
        state.actions = np.concatenate([state.actions, np.asarray(teacher_batch(self.teacher, self.spec)(visited))])
        state.dagger_done += 1

    # --------------------------------------------------------------- checkpoints
    def identity(self, spm_config, rule) -> dict:
        """What must match for a checkpoint to continue this run (the step budget may grow)."""
        c = dataclasses.asdict(self.cfg)
        if not c["dagger_rounds"]:  # the budget may grow, except where it sets the DAgger schedule
            c.pop("steps")
        c.pop("threads")  # how fast, not what: a run may resume on a machine with more cores
        if c["learner"] == "adam":  # so checkpoints written before the Hebbian learner still match
            for key in _HEBBIAN_OPTIONS:
                c.pop(key)
        if not c["env_kwargs"]:  # so checkpoints written before env_kwargs existed still match
            c.pop("env_kwargs")
        out = {"env_id": self.env_id, "model": self.model, "seed": self.seed, "config": c,
               "spm": dataclasses.asdict(spm_config) if spm_config else None}
        if rule is not None:  # a rule passed in: checkpoints written with it name it
            out["rule"] = type(rule).__name__
        return out

    def save(self, path, state: DistillState, spm_config) -> None:
        passed_rule = state.rule if spm_config is None else None
        extra = {"identity": self.identity(spm_config, passed_rule),
                 "gen": state.gen.get_state(), "history": state.history, "obs": torch.as_tensor(state.obs),
                 "actions": torch.as_tensor(np.asarray(state.actions)), "dagger_done": state.dagger_done,
                 "teacher_return": list(state.teacher_return),
                 "obs_norm": {"obs_mean": state.student.obs_mean, "obs_std": state.student.obs_std},
                 "optimizer": state.optimizer.state_dict() if state.optimizer else None, "wall_s": state.wall_before,
                 "last_loss": state.last_loss}
        if isinstance(state.core, GraphNet):
            ckpt.save(path, state.core, rule=state.rule, step=state.step, extra=extra)
        else:  # an MLP student: store it through the same atomic, checksummed container
            extra["mlp_state"] = {k: v.detach().clone() for k, v in state.core.state_dict().items()}
            ckpt.save(path, None, step=state.step, extra=extra)

    def resume(self, path, spm_config, rule) -> DistillState | None:
        if not path or not Path(path).exists():
            return None
        saved = ckpt.load(path)
        extra = saved["extra"]
        if extra.get("identity") != self.identity(spm_config, rule):
            raise CheckpointError(f"checkpoint {str(path)!r} belongs to a different run "
                                  f"(env, model, seed or options differ); use another path")
        obs, actions = extra["obs"].numpy(), extra["actions"].numpy()
        if self.model == "mlp":
            core = build_core("mlp", obs.shape[1], self.spec.n_out, self.cfg, 0)
            core.load_state_dict(extra["mlp_state"])
        else:
            core = saved["net"]
        norm = extra["obs_norm"]
        student = Student(core, self.spec, norm["obs_mean"].numpy(), norm["obs_std"].numpy())
        optimizer, learner = self.learner(student)
        if optimizer is not None:
            optimizer.load_state_dict(extra["optimizer"])
        if saved["rule"] is not None:
            if rule is not None:
                rule.load_state_dict(saved["rule"])
            else:
                rule = rule_from_state({"class": saved.get("rule_class") or "SPM", "state": saved["rule"]})
        gen = torch.Generator()
        gen.set_state(extra["gen"])
        ckpt.set_rng_state(saved["rng"])
        # a checkpoint taken at the last step resumes straight into the final evaluation
        return DistillState(student, optimizer, rule, gen, obs, actions, list(extra["history"]),
                            int(saved["step"]), int(extra["dagger_done"]), tuple(extra["teacher_return"]),
                            float(extra.get("last_loss", float("nan"))), float(extra.get("wall_s", 0.0)),
                            learner)


def local_step(state: DistillState, x: torch.Tensor, target: torch.Tensor, loss_fn) -> torch.Tensor:
    """One step of the local learner in place of backward() and optimizer.step(): a forward
    pass traced for the rule, the teacher's error at the outputs, the rule's update. No autograd
    graph is built; the loss is only reported."""
    with torch.no_grad():
        handle = state.core.register_trace_hook(state.learner.observe)
        try:
            out = state.student(x)
        finally:
            handle.remove()
        state.learner.teach(output_error(state.student, out, target))
        state.learner.update(state.core)
        return loss_fn(out, target)


def output_error(student: Student, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Target minus output at the output neurons: the one-hot teacher action minus the softmax
    (discrete), or the teacher's action minus the student's, both in the squashed [-1, 1] units
    of the tanh (continuous)."""
    if student.discrete:
        return torch.nn.functional.one_hot(target, out.shape[1]).to(out) - out.softmax(1)
    squashed = (out - student.act_mid) / student.act_half
    return ((target - student.act_mid) / student.act_half).clamp(-1, 1) - squashed


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, leave=False, mininterval=1.0)
