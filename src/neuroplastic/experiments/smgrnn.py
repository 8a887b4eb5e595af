"""SMGrNN policy distillation (Jia & Zhou 2025): grown students vs MLP baselines and ablations.

Method, top to bottom:
  1. For each control task, a teacher (tasks/teachers.py) produces demonstrations.
  2. Every variant below is trained on the same data, loss, optimizer and step budget:
       smgrnn           GraphNet + SPM, growth and pruning
       growth-only      SPM with pruning off
       growth-disabled  SPM with growth off, pruning on (the paper's ablation)
       static           the same starting graph, SPM off
       mlp-16, mlp-64x64, mlp-256x256   plain torch.nn MLPs (1x16, 2x64 = the teacher-sized
                                          SB3 default, 2x256)
     Any GraphNet variant with the suffix "-hebbian" (smgrnn-hebbian, static-hebbian, ...) is the
     same student with no optimizer at all: local rules change its weights
     (rules.ContrastiveHebbian) while the SPM, where it has one, changes its structure.
  3. Each student is evaluated on held-out reset seeds; returns, sizes and curves are kept.
The paper's claims, made into targets (a)-(d) (docs/smgrnn.md), are checked in the report.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ConfigError
from ..rules.spm import SPMConfig
from ..train.distill import HEBBIAN_SETTINGS, DistillConfig, distill, resolve_model
from . import register

VARIANTS = ["smgrnn", "growth-only", "growth-disabled", "static", "mlp-16", "mlp-64x64", "mlp-256x256"]
# The paper's future work, no optimizer: the SPM grows and prunes, a local rule learns the weights.
HEBBIAN_SUFFIX = "-hebbian"
HEBBIAN_VARIANTS = ["smgrnn-hebbian", "growth-only-hebbian", "growth-disabled-hebbian", "static-hebbian"]
ENVS = ["CartPole-v1", "LunarLander-v3", "Pendulum-v1"]

# The README's main job: a reduced but real run (CartPole, every variant, 3 seeds) sized to take
# about two minutes on 2 idle cores. A job's time goes to its optimizer steps and to rollouts,
# and a rollout costs as many policy calls as its longest episode (500 on a solved CartPole)
# whatever the number of episodes in it, so the curve has 4 points rather than 10.
DEFAULT = {
    "envs": ["CartPole-v1"],
    "variants": VARIANTS,
    "seeds": 3,
    "steps": 6_000,
    "n_data": 10_000,
    "lr": 1e-3,
    "batch_size": 64,
    "eval_every": 1_500,
    "eval_episodes": 20,
    "curve_episodes": 5,
}
# 100 final episodes: with 20, LunarLander's mean return still moves by ~20 between episode
# sets (the teacher scores 274 on the first 20 and 248 on the first 100), more than the
# differences between variants that the paper's claims are about.
FULL = {"envs": ENVS, "seeds": 5, "steps": 30_000, "n_data": 20_000, "eval_every": 3_000, "eval_episodes": 100}
QUICK = {"envs": ["CartPole-v1"], "variants": ["smgrnn", "static", "mlp-16"], "seeds": 1,
         "steps": 2_000, "n_data": 4_000, "eval_every": 500, "eval_episodes": 5, "curve_episodes": 2}

# The learner is the variant's: "smgrnn-hebbian" learns with the Hebbian rule, "smgrnn" with
# Adam, so `learner` is no option here (a row's name must say what trained it); the rule's own
# settings are, and reach the -hebbian variants only.
_HEBBIAN_KEYS = set(HEBBIAN_SETTINGS)
_DISTILL_KEYS = {f.name for f in dataclasses.fields(DistillConfig)} - {"hidden", "learner"} - _HEBBIAN_KEYS
_SPM_KEYS = {f.name for f in dataclasses.fields(SPMConfig)} - {"seed"}


def _field_default(f):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def variant_model(variant: str) -> tuple[str, dict]:
    """'mlp-64x64' -> ('mlp', {'hidden': [64, 64]}); 'smgrnn-hebbian' -> ('smgrnn',
    {'learner': 'hebbian'}); SPM variants map to themselves."""
    hebbian = isinstance(variant, str) and variant.endswith(HEBBIAN_SUFFIX)
    name = variant[: -len(HEBBIAN_SUFFIX)] if hebbian else variant
    try:
        model, hidden = resolve_model(name)
        if hebbian and model == "mlp":
            raise ConfigError("a plain MLP has no Hebbian form")
    except ConfigError:
        raise ConfigError(f"unknown variant {variant!r}; expected one of {VARIANTS + HEBBIAN_VARIANTS} "
                          f"or mlp-WxW...") from None
    return model, ({"hidden": hidden} if hidden else {}) | ({"learner": "hebbian"} if hebbian else {})


class SMGrNNExperiment:
    name = "smgrnn"
    description = "SMGrNN policy distillation on control tasks vs MLP baselines and ablations"
    inputs = "envs"  # control tasks (--envs); dataset experiments take --data instead

    def defaults(self) -> dict:
        """Every option --set accepts, with the value it has when not set."""
        distill_defaults = {f.name: _field_default(f) for f in dataclasses.fields(DistillConfig)
                            if f.name in _DISTILL_KEYS}
        spm_defaults = {f.name: _field_default(f) for f in dataclasses.fields(SPMConfig) if f.name in _SPM_KEYS}
        hebbian_defaults = {f.name: _field_default(f) for f in dataclasses.fields(DistillConfig)
                            if f.name in _HEBBIAN_KEYS}
        return {**DEFAULT, **{k: v for k, v in distill_defaults.items() if k not in DEFAULT}, **spm_defaults,
                **hebbian_defaults}

    def option_groups(self) -> list[tuple[str, dict, dict]]:
        """(title, {option: default}, {option: note}) for `neuroplastic run smgrnn --help`."""
        defaults = self.defaults()
        own = {k: defaults[k] for k in DEFAULT}
        distill_keys = {k: defaults[k] for k in sorted(_DISTILL_KEYS - set(DEFAULT))}
        spm_keys = {k: defaults[k] for k in sorted(_SPM_KEYS)}
        hebbian_keys = {k: defaults[k] for k in sorted(_HEBBIAN_KEYS)}
        notes = {"variants": f"any of {', '.join(VARIANTS + HEBBIAN_VARIANTS)}, or mlp-WxW... widths",
                 "envs": f"gymnasium ids; built-in teachers for {', '.join(ENVS)}",
                 "lambda_edge": "default: lr (Adam), hebbian_lr (the -hebbian variants)",
                 "hebbian_hidden": "oja or fixed: how hidden edges learn",
                 "threads": "torch threads per job",
                 "checkpoint_every": "0: a resume checkpoint every steps // 5 steps"}
        return [("experiment", own, notes), ("distillation (npl.distill)", distill_keys, notes),
                ("SPM, for the variants that have one (npl.rules.SPMConfig)", spm_keys, notes),
                ("Hebbian learner, for the -hebbian variants (npl.rules.ContrastiveHebbian)", hebbian_keys, notes)]

    presets = {"--quick": QUICK, "--full": FULL}

    def job_files(self, job: dict, config: dict, out_dir: Path) -> list[Path]:
        """The checkpoint files a job reads or writes: its resume checkpoint, its saved network."""
        from .runner import job_name
        return [out_dir / "checkpoints" / f"{job_name(job)}.ckpt", out_dir / "nets" / f"{job_name(job)}.ckpt"]

    def config(self, quick: bool, full: bool, overrides: dict) -> dict:
        config = {**DEFAULT, **(QUICK if quick else FULL if full else {})}
        known = set(DEFAULT) | _DISTILL_KEYS | _SPM_KEYS | _HEBBIAN_KEYS
        for key, value in overrides.items():
            if key not in known:
                raise ConfigError(f"unknown smgrnn option {key!r}; known: {', '.join(sorted(known))}")
            config[key] = value
        if isinstance(config["envs"], str):
            config["envs"] = [e for e in config["envs"].split(",") if e]
        if isinstance(config["variants"], str):
            config["variants"] = [v for v in config["variants"].split(",") if v]
        for key in ("envs", "variants"):
            if not isinstance(config[key], list) or not all(isinstance(v, str) for v in config[key]):
                raise ConfigError(f"{key}={config[key]!r} must be a comma-separated string or a list of strings")
        seeds = config["seeds"]
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"seeds={seeds!r} must be an integer >= 1")
        if not config["envs"] or not config["variants"]:
            raise ConfigError("envs and variants must each name at least one entry")
        from ..tasks.control import make_env
        from ..tasks.teachers import get_teacher
        for env_id in config["envs"]:  # unknown ids and tasks without a teacher fail here, before any work
            make_env(env_id).close()
            get_teacher(env_id)
        for variant in config["variants"]:
            self._options(config, variant)  # unknown variants and bad distillation / SPM values fail here
        self._options(config, "smgrnn")  # SPM values are checked even when no variant has an SPM
        return config

    def _options(self, config: dict, variant: str) -> dict:
        model, extra = variant_model(variant)
        options = {k: v for k, v in config.items() if k in _DISTILL_KEYS}
        if model not in ("mlp", "static"):  # the SPM options apply to the variants that have an SPM
            options.update({k: v for k, v in config.items() if k in _SPM_KEYS})
        if extra.get("learner") == "hebbian":
            options.update({k: v for k, v in config.items() if k in _HEBBIAN_KEYS})
        options.update(extra)
        checked = _DISTILL_KEYS | _HEBBIAN_KEYS | {"hidden", "learner"}
        DistillConfig(**{k: v for k, v in options.items() if k in checked})
        SPMConfig(**{k: v for k, v in options.items() if k in _SPM_KEYS})
        return options

    def jobs(self, config: dict) -> list[dict]:
        # Seed-major, so that a run stopped part-way holds whole seeds (every task and variant).
        return [{"task": env, "variant": variant, "seed": seed}
                for seed in range(config["seeds"]) for env in config["envs"] for variant in config["variants"]]

    def run_job(self, job: dict, config: dict, out_dir: Path, progress: bool = False) -> dict:
        from ..core.checkpoint import save
        from ..core.graph import GraphNet
        from .runner import job_name
        model, _ = variant_model(job["variant"])
        ckpt_dir = out_dir / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        options = {"checkpoint_every": max(1, config["steps"] // 5), **self._options(config, job["variant"])}
        result = distill(job["task"], None, model=model, seed=job["seed"],
                         checkpoint=ckpt_dir / f"{job_name(job)}.ckpt", progress=progress, **options)
        core = result.pop("student").core
        if isinstance(core, GraphNet):
            nets = out_dir / "nets"
            nets.mkdir(exist_ok=True)
            save(nets / f"{job_name(job)}.ckpt", core)
        (ckpt_dir / f"{job_name(job)}.ckpt").unlink(missing_ok=True)
        events = result.pop("events")
        result.pop("config"), result.pop("spm")
        for key in ("relays", "random_edges", "pruned_edges", "removed_neurons"):
            result[f"{key}_total"] = sum(e[key] for e in events)
        return result

    def report(self, results: dict, out_dir) -> None:
        from .runner import job_name
        from .smgrnn_report import write_report
        out_dir = Path(out_dir)
        write_report(results, out_dir, variant_order=VARIANTS + HEBBIAN_VARIANTS, defaults=self.defaults(),
                     net_path=lambda row: out_dir / "nets" / f"{job_name(row)}.ckpt")


register(SMGrNNExperiment())
