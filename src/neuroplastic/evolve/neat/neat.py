"""NEAT (Stanley & Miikkulainen 2002) over a population held in tensors.

    neat = NEAT("xor.ini", seed=0)           # a neat-python INI file, or a dict of its keys
    best = neat.run(fitness, generations=300)  # fitness(pop: GraphBatch) -> (P,), higher is better
    neat.history                               # one dict a generation

A generation: build every genome's phenotype as one GraphBatch (phenotype.py), evaluate it,
stop at the fitness threshold (neat-python's rule: criterion over the population >= threshold),
update species stagnation, share offspring out by adjusted fitness, draw parents, copy elites,
cross over and mutate every child at once, then speciate the children. All of it runs under
torch.no_grad() as tensor operations over the population; the only Python loops are over
species (speciation's new species, the median species fitness) and over a gene's few steps.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings

import torch

from ...core.checkpoint import load as load_checkpoint
from ...core.checkpoint import save as save_checkpoint
from ...core.validate import check_bool, check_int
from ...errors import CheckpointError, ConfigError, CycleError, RunError
from .config import NEATConfig, load_config
from .genome import ACTIVATION_LIST, BIG, GENOME_DTYPES, Genomes
from .initial import initial_population
from .innovation import STRIDE, InnovationTable
from .mutate import mutate
from .phenotype import phenotypes
from .reporting import REPORTER_METHODS, Reporter
from .reproduce import adjusted_fitness, crossover, plan_offspring
from .species import SpeciesSet, spawn_counts

FORMAT = "neuroplastic.evolve.NEAT/1"


def _champions(fitness: torch.Tensor, member: torch.Tensor, S: int) -> torch.Tensor:
    """(S,) the index of each species' fittest genome (the first of equals)."""
    P = len(fitness)
    rank = torch.empty(P, dtype=torch.long)
    rank[fitness.argsort(descending=True, stable=True)] = torch.arange(P)
    best = torch.full((S,), P, dtype=torch.long).scatter_reduce(0, member, rank, reduce="amin")
    return fitness.argsort(descending=True, stable=True)[best]


def _state_problem(neat) -> str | None:
    """What makes a loaded NEAT state inconsistent (None when nothing does): every genome field
    of one shape, a population of pop_size, species for every genome, the inputs and outputs
    the config names."""
    cfg, pop = neat.config, neat.population
    for genomes, what in ((pop, "population"), (neat.best_genome, "best genome"), (neat.species.reps, "species")):
        if genomes is None:
            continue
        wrong = [name for name in Genomes.CONN + Genomes.NODE if getattr(genomes, name).dtype != GENOME_DTYPES[name]]
        if wrong:
            return f"the {what}'s {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not of the genome's dtype"
        conn = {getattr(genomes, name).shape for name in Genomes.CONN}
        node = {getattr(genomes, name).shape for name in Genomes.NODE}
        if len(conn) != 1 or len(node) != 1 or next(iter(conn))[0] != next(iter(node))[0]:
            return f"the {what}'s gene and node fields differ in shape"
        fixed = genomes.node_id[:, :cfg.n_fixed]
        if fixed.shape[1] < cfg.n_fixed or not torch.equal(fixed, torch.arange(cfg.n_fixed).expand_as(fixed)):
            return f"the {what} does not hold the config's {cfg.num_inputs} inputs and {cfg.num_outputs} outputs"
        problem = _genes_problem(genomes, cfg)
        if problem:
            return f"the {what}: {problem}"
    if len(pop) != cfg.pop_size:
        return f"{len(pop)} genomes for pop_size={cfg.pop_size}"
    member, S = neat.species.member, len(neat.species)
    sp = neat.species
    for name, t, dtype in (("member", sp.member, torch.long), ("ids", sp.ids, torch.long),
                           ("created", sp.created, torch.long), ("last_improved", sp.last_improved, torch.long),
                           ("best", sp.best, None)):
        if not torch.is_tensor(t) or (dtype is not None and t.dtype != dtype) or (name != "member" and t.shape != (S,)):
            return f"the species' {name} is not {S} {'integers' if dtype else 'numbers'}"
    problem = _table_problem(neat)
    if problem:
        return problem
    if sp.created.numel() and int(torch.maximum(sp.created, sp.last_improved).max()) > neat.generation:
        return f"a species was created or last improved after generation {neat.generation}"
    if member.shape != (len(pop),) or (len(member) and (int(member.min()) < 0 or int(member.max()) >= S)):
        return "the species membership does not fit the population"
    if neat.species.reps is None or len(neat.species.reps) != S:
        return "the species have no representative each"
    return None


def _table_problem(neat) -> str | None:
    """What makes the innovation table unfit for the genomes it numbers (None when nothing does):
    its keys sorted and numbered 0..next_innovation-1, every gene's number the one the table
    holds for its (in, out) pair, and the next node id above every id in use. A table behind
    its genomes would hand out numbers and ids they already hold: a new node that reuses an id
    can close a cycle generations after the load."""
    table = neat.innovations
    if (table.keys.dtype != torch.long or table.numbers.dtype != torch.long or table.keys.dim() != 1
            or table.keys.shape != table.numbers.shape or table.next_innovation != len(table.keys)
            or (len(table.keys) and not bool((table.keys[1:] > table.keys[:-1]).all()))
            or not torch.equal(table.numbers.sort().values, torch.arange(len(table.numbers)))):
        return "the innovation table's keys and numbers do not fit each other"
    groups = [g for g in (neat.population, neat.best_genome, neat.species.reps) if g is not None]
    top_node = max([neat.config.n_fixed - 1] + [int(g.node_id.max()) for g in groups if g.node_id.numel()])
    if table.next_node <= top_node:
        return (f"the innovation table's next node id {table.next_node} is not above the node ids in use "
                f"(up to {top_node})")
    by_number = torch.empty_like(table.keys).scatter_(0, table.numbers, table.keys)  # number -> (in, out) key
    for g in groups:
        valid = g.conn_valid
        innov = g.innov[valid]
        if innov.numel() and int(innov.max()) >= len(table.keys):
            return f"a gene's innovation number {int(innov.max())} is not in the innovation table"
        if not torch.equal(by_number[innov], g.src[valid] * STRIDE + g.dst[valid]):
            return "a gene's innovation number is the table's number of another (in, out) pair"
    return None


def _genes_problem(genomes: Genomes, cfg) -> str | None:
    """What keeps genomes read from a file from being NEAT's (None when nothing does): rows in
    canonical order, every gene joining two of its genome's nodes, and a phenotype that
    GraphBatch accepts with every gene enabled (no gene into an input, no duplicate, no cycle).
    Checked at load, so that a tampered gene is named there, not as a CycleError generations later."""
    for ids, kind in ((genomes.innov, "genes' innovation numbers"), (genomes.node_id, "node ids")):
        key = torch.where(ids >= 0, ids, BIG)
        if ids.shape[1] > 1 and not bool(((key[:, 1:] > key[:, :-1]) | (key[:, 1:] == BIG)).all()):
            return f"the {kind} are not in ascending order with the empty slots last"
    act = genomes.act[genomes.node_valid]
    if act.numel() and (int(act.min()) < 0 or int(act.max()) >= len(ACTIVATION_LIST)):
        return f"an activation id is outside 0..{len(ACTIVATION_LIST) - 1} ({', '.join(ACTIVATION_LIST)})"
    for name in ("weight", "bias", "response"):
        if not bool(torch.isfinite(getattr(genomes, name)).all()):
            return f"a {name} is not finite"
    valid = genomes.conn_valid
    for end in ("src", "dst"):
        ids = getattr(genomes, end)
        known = (ids[:, :, None] == genomes.node_id[:, None, :]).any(2) & (ids >= 0)  # empty node slots are -1
        bad = valid & ~known
        if bool(bad.any()):
            row, slot = (int(i) for i in bad.nonzero()[0])
            return (f"genome {row}'s gene {int(genomes.innov[row, slot])} has {end} {int(ids[row, slot])}, "
                    "which is none of its nodes")
    if bool((genomes.enabled & ~valid).any()):
        return "an empty gene slot is enabled"
    try:  # with every gene enabled: NEAT keeps disabled genes acyclic too, so re-enabling one is safe
        phenotypes(dataclasses.replace(genomes, enabled=valid), cfg.num_inputs, cfg.num_outputs, validate=True)
    except (ConfigError, CycleError) as exc:
        return str(exc)
    return None


class CompleteExtinctionError(RunError):
    """Every species stagnated and reset_on_extinction is False (neat-python raises too)."""


class NEAT:
    """A NEAT run: config, population, species, innovation table, history; seeded and resumable."""

    def __init__(self, config, seed: int = 0, reporters=()):
        self.config: NEATConfig = load_config(config)
        self.seed = check_int(seed, "seed", 0, 2**63 - 1)  # torch.Generator's seeds are 64-bit
        if self.config.elitism >= self.config.pop_size:  # accepted, as neat-python accepts it
            warnings.warn(f"elitism={self.config.elitism} >= pop_size={self.config.pop_size}: every genome is "
                          "kept as its species' elite, so nothing will evolve", stacklevel=2)
        self.reporters: list[Reporter] = []
        for reporter in _iterable(reporters, "reporters"):
            self.add_reporter(reporter)
        self.rng = torch.Generator().manual_seed(self.seed)
        self.generation = 0
        self.evaluations = 0
        self.history: list[dict] = []
        self.best_genome: Genomes | None = None   # best genome ever evaluated (one row)
        self.best_fitness = -math.inf
        self.solved = False
        with torch.no_grad():
            self._new_population()

    def _new_population(self) -> None:
        cfg = self.config
        self.innovations = InnovationTable(cfg.n_fixed + cfg.num_hidden)
        self.population = initial_population(cfg, cfg.pop_size, self.innovations, self.rng)
        self.species = SpeciesSet()
        self.species.speciate(self.population, cfg, self.generation, len(self.innovations), self.rng)

    def add_reporter(self, reporter: Reporter) -> None:
        missing = [m for m in REPORTER_METHODS if not callable(getattr(reporter, m, None))]
        if missing:
            # neat-python's reporters are called with its own config, population and species
            # objects, which this NEAT does not have: name the interface to subclass instead
            ours = "subclass neuroplastic.evolve.Reporter (start_generation, end_generation(row), " \
                   "found_solution, species_extinct)"
            if type(reporter).__module__.split(".")[0] == "neat":
                raise ConfigError(f"{type(reporter).__name__} is a neat-python reporter, which takes neat-python's "
                                  f"objects; {ours}")
            raise ConfigError(f"a reporter needs the methods of neuroplastic.evolve.Reporter; "
                              f"{type(reporter).__name__} lacks {', '.join(missing)}: {ours}")
        self.reporters.append(reporter)

    # ----------------------------------------------------------------- the loop
    def run(self, fitness, generations: int = 300, progress: bool = False, checkpoint=None,
            checkpoint_every: int = 10):
        """Run up to `generations` more generations, stopping when the fitness threshold is met
        (unless no_fitness_termination; a run that has met it returns at once). `checkpoint`: a
        path written every `checkpoint_every` generations and at the end (resume with
        NEAT.load). Returns the best genome ever evaluated as a GraphNet (with per-neuron
        activations when its nodes mix them)."""
        generations = check_int(generations, "generations", 0)
        checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
        if not callable(fitness):
            raise ConfigError(f"fitness must be a callable fitness(pop: GraphBatch) -> tensor (P,), "
                              f"not {type(fitness).__name__}")
        progress = check_bool(progress, "progress")
        if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
            raise ConfigError(f"checkpoint must be a file path, not {checkpoint!r}")
        if checkpoint is not None and os.path.isdir(checkpoint):  # refused before a generation is spent
            raise CheckpointError(f"cannot write {os.fspath(checkpoint)!r}: it is a directory")
        if self.solved and not self.config.no_fitness_termination:
            return self.best_net()  # already solved: its last population was never reproduced
        import tqdm.auto
        bar = tqdm.auto.tqdm(total=generations, desc=f"NEAT seed={self.seed}", disable=not progress,
                             leave=False, unit="gen")
        try:
            for k in range(generations):
                row = self.step(fitness)
                bar.update(1)
                bar.set_postfix(best=f"{row['best_fitness']:.3f}", species=row["species"])
                done = row["solved"] and not self.config.no_fitness_termination
                if checkpoint is not None and (done or k == generations - 1 or self.generation % checkpoint_every == 0):
                    self.save(checkpoint)
                if done:
                    break
        finally:
            bar.close()
        return self.best_net()

    def step(self, fitness) -> dict:
        """One generation: evaluate, then (unless the threshold is met) reproduce and speciate."""
        cfg = self.config
        for r in self.reporters:
            r.start_generation(self.generation)
        started = time.perf_counter()
        if callable(getattr(fitness, "set_generation", None)):
            fitness.set_generation(self.generation)  # e.g. EnvFitness: this generation's episodes
        with torch.no_grad():
            pop = self.phenotypes()
            f = self._fitness(fitness, pop)
            P = len(f)
            self.evaluations += P
            best = int(f.argmax())
            f_best = float(f[best])
            if f_best > self.best_fitness:
                self.best_fitness = f_best
                self.best_genome = self.population.take(torch.tensor([best]))
            criterion = f_best if cfg.fitness_criterion == "max" else \
                float({"min": f.min, "mean": f.mean}[cfg.fitness_criterion]())
            solved = criterion >= cfg.fitness_threshold
            # hidden nodes and enabled genes per genome: (2, P), read back in two small lists
            # (the float32 sums of these counts are exact, so the means are those of each row)
            counts = torch.stack([self.population.n_hidden(cfg.n_fixed), self.population.n_enabled()])
            (mean_hidden, mean_edges), (best_hidden, best_edges) = counts.float().mean(1).tolist(), \
                counts[:, best].tolist()
            row = {"generation": self.generation, "step": self.generation, "best_fitness": f_best,
                   "mean_fitness": float(f.mean()), "species": len(self.species),
                   "mean_hidden": mean_hidden, "mean_edges": mean_edges,
                   "best_hidden": best_hidden, "best_edges": best_edges,
                   "evaluations": self.evaluations, "solved": solved}
            if not (solved and not cfg.no_fitness_termination):
                self._reproduce(f)
        row["wall_s"] = time.perf_counter() - started
        self.history.append(row)
        self.generation += 1
        if solved and not self.solved:
            for r in self.reporters:
                r.found_solution(row["generation"], row["best_fitness"])
        self.solved = self.solved or solved
        for r in self.reporters:
            r.end_generation(row)
        return row

    def _fitness(self, fitness, pop) -> torch.Tensor:
        f = fitness(pop)
        if not torch.is_tensor(f):
            try:
                f = torch.as_tensor(f, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError):
                raise ConfigError(f"fitness returned a {type(f).__name__}; expected a tensor of shape "
                                  f"({len(pop)},)") from None
        if f.dim() == 0:
            raise ConfigError(f"fitness returned one number; expected a tensor of shape ({len(pop)},), "
                              "one value per genome")
        if f.is_complex() or f.dtype == torch.bool:
            raise ConfigError(f"fitness returned {f.dtype} values; expected real numbers, one per genome")
        f = f.detach().reshape(-1).to("cpu", torch.float64) if f.dim() <= 1 or f.numel() == len(pop) else f
        if f.shape != (len(pop),):
            raise ConfigError(f"fitness returned shape {tuple(f.shape)}; expected ({len(pop)},), one value per genome")
        if not bool(torch.isfinite(f).all()):
            bad = ~torch.isfinite(f)
            raise ConfigError(f"fitness of genome {int(bad.nonzero()[0, 0])} is {float(f[bad][0])}; "
                              "fitness must be finite")
        return f

    def _reproduce(self, f: torch.Tensor) -> None:
        cfg, rng = self.config, self.rng
        species = self.species
        stagnant = species.stagnation(f, self.generation, cfg)
        if bool(stagnant.all()):
            if not cfg.reset_on_extinction:
                raise CompleteExtinctionError(f"every species stagnated in generation {self.generation} "
                                              "(set reset_on_extinction = True to start a new population)")
            for r in self.reporters:
                r.species_extinct(self.generation)
            self._new_population()
            return
        adjusted = adjusted_fitness(f, species.member, ~stagnant, cfg.fitness_sharing)
        alive = (~stagnant).nonzero().squeeze(1)
        min_size = max(cfg.min_species_size, cfg.elitism)
        counts = torch.zeros(len(species), dtype=torch.long)
        counts[alive] = spawn_counts(adjusted[alive], species.sizes()[alive].to(adjusted.dtype), cfg.pop_size,
                                     min_size, cfg.spawn_method)
        p1, p2, elite = plan_offspring(f, species.member, counts, cfg, rng)
        if cfg.species_representative == "random":
            species.choose_representatives(self.population, rng)
        elif cfg.species_representative == "champion":  # NEAT 1.2.1: each species' best genome
            species.reps = self.population.take(_champions(f, species.member, len(species)))
        # crossover reads no src/dst of the second parent (the child's genes are the first's)
        children = crossover(self.population.take(p1), self.population.take(p2, skip=("src", "dst")), rng,
                             average_prob=cfg.crossover_average_prob)
        active = ~elite
        if cfg.crossover_only_prob > 0:  # NEAT 1.2.1's mate_only_prob: some crossovers stay unmutated
            active &= ~((p1 != p2) & (torch.rand(len(p1), generator=rng) < cfg.crossover_only_prob))
        children = mutate(children, active, cfg, self.innovations, rng)
        self.population = children
        species.speciate(children, cfg, self.generation + 1, len(self.innovations), rng)

    def run_env(self, env_id: str, episodes: int = 1, generations: int = 300, max_steps: int | None = None,
                vectorization: str = "sync", **run_options):
        """`run` with a gymnasium environment as the fitness (mean return over `episodes` episodes,
        the same ones for every genome of a generation): see envs.EnvFitness."""
        from .envs import EnvFitness
        if not isinstance(env_id, str):
            raise ConfigError(f"env_id must be a gymnasium id such as 'CartPole-v1', not {env_id!r}")
        fitness = EnvFitness(env_id, episodes=episodes, max_steps=max_steps, seed=self.seed,
                             vectorization=vectorization)
        fitness.check(self.config.num_inputs, self.config.num_outputs)
        _warn_if_outputs_miss_the_bounds(self.config, fitness)
        try:
            return self.run(fitness, generations=generations, **run_options)
        finally:
            fitness.close()

    # ----------------------------------------------------------------- results
    def phenotypes(self):
        """The current population as one GraphBatch (member i = genome i)."""
        return phenotypes(self.population, self.config.num_inputs, self.config.num_outputs)

    def best_net(self):
        """The best genome evaluated so far as a GraphNet (exact: same outputs as its member)."""
        genome = self.best_genome if self.best_genome is not None else self.population.take(torch.tensor([0]))
        with torch.no_grad():
            member = phenotypes(genome, self.config.num_inputs, self.config.num_outputs)
        return member.to_net(0)

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {"format": FORMAT, "config": self.config.to_dict(), "seed": self.seed,
                "rng": self.rng.get_state(), "generation": self.generation, "evaluations": self.evaluations,
                "history": [dict(r) for r in self.history], "population": self.population.state(),
                "species": self.species.state(), "innovations": self.innovations.state(),
                "best_genome": None if self.best_genome is None else self.best_genome.state(),
                "best_fitness": self.best_fitness, "solved": self.solved}

    def save(self, path) -> None:
        """The whole run (weights-only data, atomic and checksummed): NEAT.load resumes it exactly."""
        save_checkpoint(path, None, step=self.generation, extra={"neat": self.state_dict()})

    @classmethod
    def load(cls, path, reporters=()) -> NEAT:
        state = load_checkpoint(path)["extra"].get("neat")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{str(path)!r} is not a NEAT checkpoint")
        neat = cls.__new__(cls)
        neat.reporters = []
        for reporter in _iterable(reporters, "reporters"):
            neat.add_reporter(reporter)
        # a checksum proves the file is as written, not that what was written is a NEAT run's
        # state: every field is read and cross-checked here, and a bad one named in one line
        try:
            neat.config = load_config(state["config"])
            neat.seed = check_int(state["seed"], "seed", 0, error=CheckpointError)
            neat.rng = torch.Generator()
            neat.rng.set_state(state["rng"])
            neat.generation = check_int(state["generation"], "generation", 0, error=CheckpointError)
            neat.evaluations = check_int(state["evaluations"], "evaluations", 0, error=CheckpointError)
            neat.history = [dict(r) for r in state["history"]]
            neat.population = Genomes.from_state(state["population"])
            neat.species = SpeciesSet.from_state(state["species"])
            neat.innovations = InnovationTable.from_state(state["innovations"])
            neat.best_genome = None if state["best_genome"] is None else Genomes.from_state(state["best_genome"])
            neat.best_fitness, neat.solved = float(state["best_fitness"]), state["solved"]
            if not isinstance(neat.solved, bool):
                raise ValueError(f"solved={neat.solved!r} is not True or False")
            if math.isnan(neat.best_fitness) or neat.best_fitness == math.inf:
                raise ValueError(f"best_fitness={neat.best_fitness} is not a fitness")
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, ConfigError) as exc:
            what = f"field {exc.args[0]!r} is missing" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
            raise CheckpointError(f"{str(path)!r} holds a damaged NEAT state: {what}") from None
        problem = _state_problem(neat)
        if problem:
            raise CheckpointError(f"{str(path)!r} holds a damaged NEAT state: {problem}")
        return neat


def _iterable(values, name: str) -> list:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ConfigError(f"{name} must be a list, not {values!r}")
    return list(values)


# what each bounded activation's outputs span (relu and identity reach any upper bound)
_OUTPUT_SPAN = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, math.inf)}


def _warn_if_outputs_miss_the_bounds(cfg, fitness) -> None:
    """A Box action space whose bounds the outputs' activation cannot reach (sigmoid outputs on
    Pendulum's torque in [-2, 2] never push the other way): a warning naming the fix."""
    if fitness.discrete:
        return
    name = cfg.activation_default if cfg.output_activation == "same" else cfg.output_activation
    names = cfg.activation_options if name == "random" else (name,)  # random: drawn from the options
    spans = [_OUTPUT_SPAN.get(n, (-math.inf, math.inf)) for n in names]
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    low, high = float(fitness.low.min()), float(fitness.high.max())
    if lo > low or hi < high:
        warnings.warn(f"{fitness.env_id}'s actions span [{low:g}, {high:g}] but {' or '.join(names)} outputs "
                      f"only ({lo:g}, {hi:g}); set output_activation = identity in the config's [Neuroplastic] "
                      "section to let the bounds clip unbounded outputs", stacklevel=3)
