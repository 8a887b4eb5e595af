"""NEAT settings: neat-python's INI keys (the ones both implementations share) or a dict of them.

`load_config(path_or_dict)` -> `NEATConfig`, a frozen dataclass with one field per key. Every
key is checked at the boundary: a key this implementation does not support is a ConfigError
that names it (never silently ignored), a bad value is one line naming the key, the value and
what was expected. Keys are neat-python's names and mean what they mean there, with these
limits: aggregation is `sum` only, `feed_forward` must be True, activations are the ones a
GraphBatch runs (`sigmoid`, `tanh`, `relu`, `identity`, with neat-python's slopes).

The `[Neuroplastic]` section (neat-python never reads it, so the file stays usable there)
holds the choices where the 2002 paper and neat-python differ; docs/neat.md explains each.
A dict config may be flat ({"pop_size": 150, ...}) or nested by section.
"""
from __future__ import annotations

import configparser
import dataclasses
import math
import numbers
from pathlib import Path

from ...errors import ConfigError

# neat-python's activation names -> (GraphBatch activation, slope on the node's input):
# neat-python computes sigmoid(5 z) and tanh(2.5 z) (activations.py), and the slope is folded
# into the phenotype's weights and bias, so the GraphBatch runs the plain functions.
ACTIVATIONS = {"sigmoid": ("sigmoid", 5.0), "tanh": ("tanh", 2.5), "relu": ("relu", 1.0),
               "identity": ("identity", 1.0)}
_NEAT_PYTHON_ONLY = ("sin", "gauss", "elu", "lelu", "selu", "softplus", "clamped", "inv", "log", "exp",
                     "abs", "hat", "square", "cube")
INITIAL_CONNECTIONS = ("full", "full_direct", "full_nodirect", "unconnected", "partial_direct",
                       "partial_nodirect")
SECTIONS = ("NEAT", "DefaultGenome", "DefaultSpeciesSet", "DefaultStagnation", "DefaultReproduction",
            "Neuroplastic")


def _float_gene(prefix: str, mean: float, stdev: float, rate: float, power: float, replace: float) -> list:
    return [(f"{prefix}_init_mean", "float", mean), (f"{prefix}_init_stdev", "float>=0", stdev),
            (f"{prefix}_init_type", ("gaussian", "normal", "uniform"), "gaussian"),
            (f"{prefix}_max_value", "float", 30.0), (f"{prefix}_min_value", "float", -30.0),
            (f"{prefix}_mutate_rate", "prob", rate), (f"{prefix}_mutate_power", "float>=0", power),
            (f"{prefix}_replace_rate", "prob", replace)]


# (key, kind, default) per section. Defaults: neat-python's where it has one, else its XOR
# example's value. The [Neuroplastic] defaults are what measured best on neat-python's XOR
# example (docs/neat.md): the paper's choice where it helped, neat-python's where it did not.
SCHEMA = {
    "NEAT": [("pop_size", "int>=1", 150), ("fitness_criterion", ("max", "min", "mean"), "max"),
             ("fitness_threshold", "float", 3.9), ("reset_on_extinction", "bool", False),
             ("no_fitness_termination", "bool", False)],
    "DefaultGenome": [
        ("num_inputs", "int>=1", 2), ("num_outputs", "int>=1", 1), ("num_hidden", "int>=0", 0),
        ("feed_forward", "bool", True), ("initial_connection", "initial", "full_direct"),
        ("activation_default", "activation_default", "sigmoid"), ("activation_options", "activations", ["sigmoid"]),
        ("activation_mutate_rate", "prob", 0.0),
        ("aggregation_default", "aggregation", "sum"), ("aggregation_options", "aggregations", ["sum"]),
        ("aggregation_mutate_rate", "prob", 0.0),
        *_float_gene("bias", 0.0, 1.0, 0.7, 0.5, 0.1), *_float_gene("weight", 0.0, 1.0, 0.8, 0.5, 0.1),
        *_float_gene("response", 1.0, 0.0, 0.0, 0.0, 0.0),
        ("enabled_default", ("True", "False", "random"), "True"), ("enabled_mutate_rate", "prob", 0.01),
        ("enabled_rate_to_true_add", "prob", 0.0), ("enabled_rate_to_false_add", "prob", 0.0),
        ("conn_add_prob", "prob", 0.5), ("conn_delete_prob", "prob", 0.5),
        ("node_add_prob", "prob", 0.2), ("node_delete_prob", "prob", 0.2),
        ("single_structural_mutation", "bool", False),
        ("structural_mutation_surer", ("default", "true", "false"), "default"),
        ("compatibility_disjoint_coefficient", "float>=0", 1.0),
        ("compatibility_excess_coefficient", "float>=0|auto", "auto"),
        ("compatibility_weight_coefficient", "float>=0", 0.5)],
    "DefaultSpeciesSet": [("compatibility_threshold", "float>0", 3.0)],
    "DefaultStagnation": [("species_fitness_func", ("max", "min", "mean", "median"), "mean"),
                          ("max_stagnation", "int>=1", 15), ("species_elitism", "int>=0", 0)],
    "DefaultReproduction": [("elitism", "int>=0", 0), ("survival_threshold", "prob>0", 0.2),
                            ("min_species_size", "int>=1", 1)],
    "Neuroplastic": [
        ("mutate_only_prob", "prob", 0.25),              # paper: 25% of offspring without crossover
        ("interspecies_crossover_prob", "prob", 0.001),  # paper: interspecies mating rate
        ("compatibility_small_genome", "int>=0", 0),     # paper: 20 (N = 1 below 20 genes)
        ("fitness_sharing", ("canonical", "normalized"), "canonical"),
        ("spawn_method", ("proportional", "smoothed"), "proportional"),
        ("species_assignment", ("first", "closest"), "closest"),       # paper: first
        # paper: random; NEAT 1.2.1 (Stanley's code): champion, the best member of the last generation
        ("species_representative", ("random", "closest", "champion"), "closest"),
        ("weight_mutation", ("per_gene", "per_genome"), "per_genome"),  # paper: per_genome
        ("elitism_min_species_size", "int>=0", 0),  # paper: 6 (champions of species of more than 5)
        # The next five are NEAT 1.2.1's (Stanley's C++ code); the defaults keep neat-python's behaviour.
        ("perturbation", ("gaussian", "uniform"), "gaussian"),  # 1.2.1: uniform in +- power
        ("structural_excludes_attributes", "bool", False),  # 1.2.1: a structural child gets no weight mutation
        ("crossover_only_prob", "prob", 0.0),     # 1.2.1: mate_only_prob 0.2, crossover children left unmutated
        ("crossover_average_prob", "prob", 0.0),  # 1.2.1: 0.4, matching genes' weights averaged
        ("bias_mutation", ("per_gene", "with_weights"), "per_gene"),  # 1.2.1: the bias is a link weight
        # the output nodes' activation, kept through activation mutations ("same": activation_default's,
        # as in neat-python). identity fits a Box action space, whose bounds then clip the outputs.
        ("output_activation", ("same", *ACTIVATIONS), "same")],
}
_SECTION_OF = {key: section for section, keys in SCHEMA.items() for key, _, _ in keys}
_KIND_OF = {key: kind for keys in SCHEMA.values() for key, kind, _ in keys}

# neat-python keys that exist but that this implementation does not implement: named in the error.
_NOT_SUPPORTED = {
    "seed": "pass seed= to NEAT instead (on the CLI, --seeds N runs seeds 0 .. N-1)",
    "target_num_species": "the dynamic threshold (2004 JAIR paper) is not implemented",
    "threshold_adjust_rate": "the dynamic threshold is not implemented",
    "threshold_min": "the dynamic threshold is not implemented",
    "threshold_max": "the dynamic threshold is not implemented",
    "compatibility_include_node_genes": "the distance uses connection genes (the paper's)",
    "compatibility_enable_penalty": "the distance uses the paper's terms only",
}
for _p in ("time_constant",):
    for _s in ("init_mean", "init_stdev", "init_type", "max_value", "min_value", "mutate_rate",
               "mutate_power", "replace_rate"):
        _NOT_SUPPORTED[f"{_p}_{_s}"] = "CTRNN time constants are not implemented (feed-forward only)"


NEATConfigBase = dataclasses.make_dataclass(
    "NEATConfigBase", [(k, object, dataclasses.field(default=tuple(d) if isinstance(d, list) else d))
                       for keys in SCHEMA.values() for k, _, d in keys], frozen=True)


class NEATConfig(NEATConfigBase):
    """Every NEAT setting, validated. Build it with `load_config(path_or_dict)`."""

    @property
    def n_fixed(self) -> int:
        return self.num_inputs + self.num_outputs

    @property
    def excess_coefficient(self) -> float:
        c = self.compatibility_excess_coefficient
        return self.compatibility_disjoint_coefficient if c == "auto" else c

    def to_dict(self) -> dict:
        """{section: {key: value}}: plain data (for checkpoints and results.json)."""
        out: dict = {}
        for section, keys in SCHEMA.items():
            out[section] = {k: (list(v) if isinstance(v := getattr(self, k), tuple) else v) for k, _, _ in keys}
        return out

    def replace(self, **changes) -> NEATConfig:
        """A copy with some keys changed (checked like the rest)."""
        return load_config({**_flat(self.to_dict()), **changes})


def _flat(nested: dict) -> dict:
    return {k: v for section in nested.values() for k, v in section.items()}


def load_config(config) -> NEATConfig:
    """A NEATConfig from a neat-python INI file (path), a dict (flat or by section) or a NEATConfig."""
    if isinstance(config, NEATConfig):
        return config
    if isinstance(config, str | Path):
        values, where = _read_ini(Path(config)), str(config)
    elif isinstance(config, dict):
        values, where = _read_dict(config), "config"
    else:
        raise ConfigError(f"a NEAT config is a path of a neat-python INI file or a dict, not {type(config).__name__}")
    checked = {}
    for key, value in values.items():
        if key not in _KIND_OF:
            hint = _NOT_SUPPORTED.get(key)
            raise ConfigError(f"{where}: key {key!r} is not supported" + (f" ({hint})" if hint else
                              "; supported keys: see neuroplastic.evolve.neat.config.SCHEMA"))
        checked[key] = _check(key, value, _KIND_OF[key], isinstance(value, str))
    defaults = {k: d for keys in SCHEMA.values() for k, _, d in keys}
    merged = {**{k: _check(k, d, _KIND_OF[k], False) for k, d in defaults.items()}, **checked}
    _check_together(merged)
    return NEATConfig(**merged)


def _read_ini(path: Path) -> dict:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise ConfigError(f"NEAT config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"NEAT config file {str(path)!r} cannot be read: {exc}") from None
    except configparser.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"NEAT config file {str(path)!r} is not an INI file: {first}") from None
    if parser.defaults():  # configparser copies [DEFAULT] into every section
        raise ConfigError(f"{path}: a [DEFAULT] section is not supported ({', '.join(parser.defaults())}); "
                          "put each key in its own section")
    values = {}
    for section in parser.sections():
        if section not in SECTIONS:
            raise ConfigError(f"{path}: section [{section}] is not supported; expected {', '.join(SECTIONS)}")
        for key, value in parser.items(section):
            if key in _SECTION_OF and _SECTION_OF[key] != section:
                raise ConfigError(f"{path}: key {key!r} belongs in [{_SECTION_OF[key]}], not [{section}]")
            values[key] = value
    if "pop_size" not in values and not parser.has_section("NEAT"):
        raise ConfigError(f"{path}: no [NEAT] section (a neat-python config has [NEAT] and [DefaultGenome])")
    return values


def _read_dict(config: dict) -> dict:
    values = {}
    for key, value in config.items():
        if key in SECTIONS and isinstance(value, dict):
            for k, v in value.items():
                if k in _SECTION_OF and _SECTION_OF[k] != key:
                    raise ConfigError(f"config: key {k!r} belongs in {_SECTION_OF[k]!r}, not {key!r}")
                values[k] = v
        else:
            values[key] = value
    return values


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _check(key: str, value, kind, from_text: bool):
    def bad(expected: str):
        raise ConfigError(f"{key}={value!r} is invalid; expected {expected}")

    if isinstance(kind, tuple):  # a choice (booleans written as text for enabled_default)
        text = str(value) if isinstance(value, bool) else value
        if not isinstance(text, str):
            bad(f"one of {', '.join(kind)}")
        match = [c for c in kind if c.lower() == text.strip().lower()]
        if not match:
            bad(f"one of {', '.join(kind)}")
        return match[0]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if from_text and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        bad("True or False")
    if kind.startswith("int"):
        if from_text:
            try:
                value = int(value.strip())
            except ValueError:
                bad("an integer" + kind[3:].replace(">=", " >= "))
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < int(kind[5:]):
            bad("an integer" + kind[3:].replace(">=", " >= "))  # numpy integers count too
        return int(value)
    if kind in ("float", "float>=0", "float>0", "prob", "prob>0", "float>=0|auto"):
        if kind == "float>=0|auto" and isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if from_text:
            try:
                value = float(value.strip())
            except ValueError:
                pass  # still text: refused below, naming the text
        ranges = {"float": "a finite number", "float>=0": "a finite number >= 0", "float>0": "a number > 0",
                  "prob": "a probability in [0, 1]", "prob>0": "a fraction in (0, 1]",
                  "float>=0|auto": "a number >= 0 or 'auto'"}
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            bad(ranges[kind])
        value = float(value)
        if (kind in ("float>=0", "float>=0|auto") and value < 0) or (kind == "float>0" and value <= 0) \
                or (kind == "prob" and not 0 <= value <= 1) or (kind == "prob>0" and not 0 < value <= 1):
            bad(ranges[kind])
        return value
    if kind == "initial":
        if not isinstance(value, str):
            bad(f"one of {', '.join(INITIAL_CONNECTIONS)} (partial_* with a fraction)")
        parts = value.split()
        if not parts or parts[0] not in INITIAL_CONNECTIONS or (parts[0].startswith("partial") != (len(parts) == 2)) \
                or len(parts) > 2:
            bad(f"one of {', '.join(INITIAL_CONNECTIONS)} (partial_* with a fraction, e.g. 'partial_direct 0.5')")
        if len(parts) == 2:
            try:
                fraction = float(parts[1])
            except ValueError:
                fraction = -1.0
            if not 0 <= fraction <= 1:
                bad("a partial_* fraction in [0, 1]")
            return f"{parts[0]} {fraction}"
        return parts[0]
    if kind in ("activations", "aggregations", "activation_default", "aggregation"):
        names = value.split() if isinstance(value, str) else value
        if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str) for n in names):
            bad("activation names separated by spaces")
        names = [n.strip().lower() for n in names]
        if kind in ("aggregations", "aggregation"):
            if names != ["sum"] * len(names) or (kind == "aggregation" and len(names) != 1):
                raise ConfigError(f"{key}={value!r}: only the 'sum' aggregation is supported")
            return "sum" if kind == "aggregation" else tuple(dict.fromkeys(names))
        for n in names:
            if n not in ACTIVATIONS and not (kind == "activation_default" and n == "random"):
                where = " (a neat-python activation a GraphBatch does not run)" if n in _NEAT_PYTHON_ONLY else ""
                raise ConfigError(f"{key}={value!r}: activation {n!r} is not supported{where}; "
                                  f"supported: {', '.join(ACTIVATIONS)}")
        if kind == "activation_default":
            if len(names) != 1:
                bad("one activation name or 'random'")
            return names[0]
        return tuple(dict.fromkeys(names))
    raise AssertionError(kind)


def _check_together(c: dict) -> None:
    if not c["feed_forward"]:
        raise ConfigError("feed_forward=False is not supported: networks are DAGs (GraphBatch DAG mode)")
    if c["activation_default"] != "random" and c["activation_default"] not in c["activation_options"]:
        raise ConfigError(f"activation_default={c['activation_default']!r} is not among "
                          f"activation_options={' '.join(c['activation_options'])!r}")
    for prefix in ("bias", "weight", "response"):
        lo, hi = c[f"{prefix}_min_value"], c[f"{prefix}_max_value"]
        if lo > hi:
            raise ConfigError(f"{prefix}_min_value={lo} is above {prefix}_max_value={hi}")
        # mutate_rate + replace_rate may exceed 1, as in neat-python: one draw r perturbs below
        # mutate_rate and replaces in [mutate_rate, mutate_rate + replace_rate), so replacing
        # then happens at 1 - mutate_rate (mutate.py's _floats reads it the same way)
