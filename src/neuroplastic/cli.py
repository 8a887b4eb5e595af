"""`neuroplastic list | run NAME | report DIR | bench NAME`.

Every problem with the user's input ends as one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
import tomllib
from pathlib import Path

from .errors import ConfigError, NeuroplasticError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage block too)
        print(f"neuroplastic: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_value(text: str):
    """A --set value as TOML would read it (numbers, booleans, lists), else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(config_file: str | None, sets: list[str]) -> dict:
    overrides: dict = {}
    if config_file:
        path = Path(config_file)
        try:
            overrides.update(tomllib.loads(path.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"config file {config_file!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"cannot be read: {exc.strerror}"
            raise ConfigError(f"config file {config_file!r} {reason}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file!r} is not valid TOML: {exc}") from None
    for item in sets:  # over the config file's values, and a later --set of a key over an earlier one
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} must look like key=value")
        overrides[key.strip()] = parse_value(value.strip())
    return overrides


def options_help(name: str) -> str | None:
    """The options `--set` accepts for experiment `name`, with their defaults (None: no such
    experiment, which `run` then reports)."""
    from .errors import UnknownNameError
    from .experiments import get_experiment
    try:
        experiment = get_experiment(name)
    except UnknownNameError:
        return None
    presets = getattr(experiment, "presets", {})
    lines = [f"options of {name} for --set KEY=VALUE or --config FILE.toml (values as TOML reads them),",
             "with their defaults and the values --quick / --full give them:"]
    for title, options, notes in experiment.option_groups():
        lines += ["", f"  {title}:"]
        for key, default in options.items():
            text = f"    {key} = {_toml(default)}"
            changed = [f"{flag} {_toml(preset[key])}" for flag, preset in presets.items()
                       if key in preset and preset[key] != default]
            extra = "; ".join(changed + ([notes[key]] if key in notes else []))
            if not extra:
                lines.append(text)
                continue
            wrapped = textwrap.wrap(extra, 100 - 42)
            if len(text) > 40:  # a long default gets its own line, the notes go below it
                lines += [text] + [" " * 42 + w for w in wrapped]
            else:
                lines += [f"{text:<40}  {wrapped[0]}"] + [" " * 42 + w for w in wrapped[1:]]
    return "\n".join(lines)


def _toml(value) -> str:
    """value as it would be written after --set key= (TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


class _Once(argparse.Action):
    """A flag that takes one value: given twice (--seeds 1 --seeds 2) it is refused, where
    argparse would keep the last one without a word."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, f"_{self.dest}_given", False):
            parser.error(f"{option_string} is given twice; give it once")
        setattr(namespace, f"_{self.dest}_given", True)
        setattr(namespace, self.dest, values)


def build_parser(run_epilog: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="neuroplastic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the registered experiments and benchmarks")
    run = sub.add_parser("run", help="run an experiment and write results.json, report.md and plots",
                         epilog=run_epilog or "neuroplastic run NAME --help lists the options of experiment NAME",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("name")
    run.add_argument("--config", action=_Once, help="TOML file of option = value lines")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override one option (a later --set of a key wins)")
    run.add_argument("--seeds", action=_Once, type=int, help="number of seeds (0..N-1)")
    run.add_argument("--envs", action=_Once,
                     help="control-task experiments (smgrnn, hebbian, ...): comma-separated gymnasium ids")
    run.add_argument("--data", action=_Once,
                     help="dataset experiments (gng, dcs, lottery, den, urn-*): FILE.npz (X, y, optional "
                          "positions) or an MNIST IDX dir")
    run.add_argument("--quick", action="store_true", help="reduced budget (under a minute), used by tests")
    run.add_argument("--full", action="store_true", help="the full run: all tasks, 5 seeds, full budget")
    run.add_argument("--out", action=_Once, help="output directory (default runs/NAME)")
    run.add_argument("--workers", action=_Once, type=int, default=1,
                     help="run jobs in parallel on Ray with N workers")
    run.add_argument("--address", action=_Once, help="address of a running Ray cluster")
    run.add_argument("--no-progress", action="store_true")
    report = sub.add_parser("report", help="rewrite report.md and plots from DIR/results.json")
    report.add_argument("dir")
    bench = sub.add_parser("bench", help="benchmark ours against a reference in the same run")
    bench.add_argument("name")
    bench.add_argument("--quick", action="store_true", help="small sizes and few repeats")
    bench.add_argument("--device", action=_Once, default="cpu", help="cpu or cuda")
    bench.add_argument("--out", action=_Once, default="docs/results/bench",
                       help="directory for NAME.json (default: docs/results/bench, under the current folder)")
    return parser


def _run(args) -> None:
    from .experiments import all_experiments, get_experiment
    from .experiments.runner import run_experiment
    experiment = get_experiment(args.name)
    for flag, value, kind, what in (("--data", args.data, "data", "dataset"),
                                    ("--envs", args.envs, "envs", "control-task")):
        if value and getattr(experiment, "inputs", None) != kind:
            takers = [n for n, e in all_experiments().items() if getattr(e, "inputs", None) == kind]
            other = "--data" if kind == "envs" else "--envs"
            takes = f"takes {other}" if getattr(experiment, "inputs", None) else "has its task built in"
            raise ConfigError(f"{flag} is for {what} experiments ({', '.join(takers)}); {args.name} {takes}")
    for flag, value in (("--envs", args.envs), ("--data", args.data), ("--out", args.out)):
        if value is not None and not value.strip():
            raise ConfigError(f"{flag} is empty; leave it out for the experiment's default")
    overrides = parse_overrides(args.config, args.set)
    for flag, key, value in (("--seeds", "seeds", args.seeds), ("--envs", "envs", args.envs),
                             ("--data", "data", args.data)):
        if value is None:  # an empty --envs or --data was refused above
            continue
        if key in overrides:  # one of the two would be dropped without a word
            raise ConfigError(f"{flag} and {key}={overrides[key]!r} (--set or --config) both set {key}; give one")
        overrides[key] = value
    out = Path(args.out or f"runs/{args.name}")
    results = run_experiment(args.name, out, quick=args.quick, full=args.full, overrides=overrides,
                             workers=args.workers, address=args.address, progress=not args.no_progress,
                             command=" ".join(["neuroplastic", *sys.argv[1:]]))
    print(f"{len(results['rows'])} runs; report: {out / 'report.md'}")


def _report(args) -> None:
    from .experiments import get_experiment
    from .experiments.runner import write_report
    from .report import load_results
    if Path(args.dir).exists() and not Path(args.dir).is_dir():
        raise ConfigError(f"{args.dir!r} is not a run folder: give the DIR a run wrote with --out "
                          "(the folder that holds results.json)")
    results = load_results(args.dir)
    write_report(get_experiment(results["experiment"]), results, Path(args.dir))
    print(f"report: {Path(args.dir) / 'report.md'}")


def _list() -> None:
    from .bench import BENCHMARKS
    from .experiments import all_experiments
    experiments = all_experiments()
    width = max(map(len, [*experiments, *BENCHMARKS]))
    print("experiments:")
    for name, exp in experiments.items():
        print(f"  {name:<{width}}  {exp.description}")
    print("benchmarks:")
    for name, bench in BENCHMARKS.items():
        summary = " ".join(bench.__doc__.split("\n\n")[0].split())  # the docstring's first paragraph
        print(f"  {name:<{width}}  {summary}")


def _bench(args) -> None:
    from .bench import run_benchmark
    run_benchmark(args.name, quick=args.quick, device=args.device, out_dir=Path(args.out))


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed: numpy's and Python's MemoryError, or torch's allocator error."""
    return isinstance(exc, MemoryError) or "can't allocate memory" in str(exc)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    epilog = None
    if argv[:1] == ["run"] and {"-h", "--help"} & set(argv):
        names = [a for a in argv[1:] if not a.startswith("-")]
        epilog = options_help(names[0]) if names else None
        if names and epilog is None:  # an unknown name: say so rather than print the general help
            from .experiments import get_experiment
            try:
                get_experiment(names[0])
            except NeuroplasticError as exc:
                print(f"neuroplastic: error: {exc}", file=sys.stderr)
                return 2
    args = build_parser(epilog).parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "run":
            _run(args)
        elif args.command == "report":
            _report(args)
        elif args.command == "bench":
            _bench(args)
    except NeuroplasticError as exc:
        print(f"neuroplastic: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        print("neuroplastic: error: not enough memory for these settings (a size, population or data count "
              "too large?); lower them", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuroplastic: interrupted; finished jobs are kept, run the same command to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
