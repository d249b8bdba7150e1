"""Benchmark suites: a TOML file -> a checked :class:`Suite`, and the settings each method gets per family.

A suite file (see ``benchmarks/suites/*.toml``)::

    name = "quick"
    methods = ["mandril", "maxent_tabular", "expert", ...]   # names in mandril.methods.METHODS
    seeds = [0, 1]              # runs: each seed prepares the methods afresh and draws fresh demos
    n_demos = [1, 2, 4, 8]      # demos shown to each method on each held-out task
    likelihood = "start"        # the one likelihood of every MaxEnt-family method ("start" or "p0")

    [families.gridworld]        # one table per task family
    env_id = "mandril_envs/GridWorld-v0"
    splits = ["test", "test_unseen"]
    n_tasks = 30                # held-out tasks per split
    reward_model = { kind = "conv", hidden = [32, 32] }   # the neural model of every neural method
    input_kind = "map"
    [families.gridworld.train]  # the training pool of methods that learn from training tasks
    n_tasks = 500
    n_demos = 20
    [families.gridworld.methods.mandril]                  # settings for this family only
    iterations = 1500

    [settings.maxent_tabular]   # settings of a method, every family (e.g. from a tuning sweep)
    l2 = 0.01

    [families.gridworld.methods.maxent_linear]
    l2 = 0.01
    by_n = { "4" = { l2 = 0.1 }, "16" = { l2 = 1.0 } }   # per number of demos (below: how it applies)

    [cells.airl]                # a reduced grid of cells for an expensive method
    n_tasks = 5
    n_demos = [4, 16]

Everything is checked when the file is read, before any work: names (the suite's, its families' and
methods': 1-64 letters, digits, ``_``, ``-`` or ``.``, starting with a letter or digit, no ``..``; the
harness names files after them, see :func:`check_name`), unknown keys (named, with the allowed
ones), wrong types, unknown methods or families, splits a family does not have, impossible sizes,
and every method's settings on every family (the method is built). Errors name the file and the key.

A method's settings on a family are, in order of precedence: the family's ``methods`` table, the
suite's ``settings`` table, the suite's ``likelihood`` (every method with a ``likelihood`` setting),
the family's ``expert`` (``expert_policy``, ``expert_temperature``: methods that model the demonstrator),
the family's ``reward_model`` and ``input_kind`` (methods with a neural reward model), the method's
defaults. ``seed`` is the run's seed.

**Per number of demos** (``by_n``): a method's settings table may hold ``by_n = { "4" = {...}, "16" = {...} }``;
with ``n`` demos the entry with the largest key at most ``n`` overrides the settings (none below the smallest
key). Only settings that change how a new task is fitted may appear there
(:meth:`mandril.methods.base.Method.per_n_settings`: every setting of a method without preparation,
``fit_only_settings`` of a prepared one, whose one preparation serves every ``n``), so every method gets the
same freedom per number of demos. The family's ``by_n`` replaces the suite's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from mandril.core.config import MAX_THREADS, build_dataclass, dataclass_to_dict, load_toml
from mandril.data.batch import check_likelihood
from mandril.rewards.spec import RewardModelSpec

__all__ = ["Suite", "FamilySpec", "PoolSpec", "CellLimits", "load_suite", "resolve_file", "packaged_file", "suite_from_dict", "replicate", "REPLICATE_SEED_STRIDE", "by_n_entry", "check_name", "BY_N", "VALIDATION_SPLIT", "VALIDATION_START", "MAX_CELLS", "NAME_PATTERN", "ExpertSpec"]

#: The harness split of tuning sweeps: tasks of the family's ``train`` split from index
#: :data:`VALIDATION_START` on, which no training pool reaches (pools are tasks ``0 .. n_tasks - 1``).
VALIDATION_SPLIT = "validation"
#: The first task index of the validation split (train-split tasks from here on; no training pool reaches it).
VALIDATION_START = 1_000_000

#: The key of a method's per-n settings in a suite's settings tables.
BY_N = "by_n"


def by_n_entry(by_n: Mapping[str, Any], n_demos: int) -> dict:
    """The settings of ``by_n`` (``{"4": {...}, "16": {...}}``) that apply with ``n_demos`` demos: the entry
    with the largest key at most ``n_demos`` (none below the smallest key)."""
    keys = [int(k) for k in by_n if int(k) <= n_demos]
    return dict(by_n[str(max(keys))]) if keys else {}


def check_by_n(by_n: Any, allowed: tuple[str, ...], where: str) -> None:
    """A ``by_n`` table: keys are demo counts >= 1 (as strings), values tables of settings from ``allowed``."""
    if not isinstance(by_n, Mapping) or not by_n:
        raise TypeError(f"{where} must be a non-empty table like {{ \"4\" = {{ l2 = 0.1 }} }}, got {by_n!r}")
    for key, entry in by_n.items():
        if not str(key).isdigit() or int(key) < 1 or str(int(key)) != str(key):
            raise ValueError(f"{where} keys must be numbers of demos >= 1 (as strings, e.g. \"4\"), got {key!r}")
        if not isinstance(entry, Mapping) or not entry:
            raise TypeError(f"{where}.{key} must be a non-empty table of settings, got {entry!r}")
        stray = sorted(set(entry) - set(allowed))
        if stray:
            raise ValueError(f"{where}.{key} sets {stray}, which cannot change with the number of demos: allowed {sorted(allowed)}")


#: The most cells a suite may have, and the most held-out tasks or demos per cell: bigger is refused.
MAX_CELLS = 2_000_000
MAX_TASKS = 100_000
MAX_DEMOS = 10_000
MAX_POOL = 1_000_000


#: What a family, method or suite name may be: it becomes part of file names, so no path separators,
#: no ``..``, no leading dot, a bounded length (a suite name: longer, since a tuning sweep's derived
#: suites are named ``SWEEP-METHOD-FAMILY``).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_NAME = 64
MAX_SUITE_NAME = 3 * MAX_NAME + 2


def check_name(name: Any, where: str, maximum: int = MAX_NAME) -> str:
    """``name`` if it is a safe name (see :data:`NAME_PATTERN`), else a one-line ValueError naming ``where``.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: it is empty, too long, or holds a path separator, ``..``, a leading dot or another character.
    """
    if not isinstance(name, str):
        raise TypeError(f"{where} must be a string, got {type(name).__name__}")
    shown = json.dumps(name)[: maximum + 20]
    if not 1 <= len(name) <= maximum or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ValueError(f"{where} {shown} is not a valid name: 1-{maximum} letters, digits, '_', '-' or '.', "
                         "starting with a letter or digit, without '..' (names become file names)")
    return name


def _check_names(data: Mapping[str, Any]) -> None:
    """Refuse unsafe suite, family and method names (:func:`check_name`) before anything else is read."""
    if "name" in data:
        check_name(data["name"], "name", MAX_SUITE_NAME)
    families = data.get("families")
    if isinstance(families, Mapping):
        for family, table in families.items():
            check_name(family, "[families] key")
            if isinstance(table, Mapping) and isinstance(table.get("methods"), Mapping):
                for method in table["methods"]:
                    check_name(method, f"[families.{family}.methods] key")
    methods = data.get("methods")
    if isinstance(methods, (list, tuple)):
        for method in methods:
            check_name(method, "methods entry")
    for section in ("settings", "cells"):
        table = data.get(section)
        if isinstance(table, Mapping):
            for method in table:
                check_name(method, f"[{section}] key")


def _check_int(where: str, value: int, minimum: int, maximum: int) -> None:
    if value < minimum or value > maximum:
        raise ValueError(f"{where} must be between {minimum} and {maximum}, got {value}")


def _check_ints(where: str, values: tuple[int, ...], minimum: int, maximum: int, allow_empty: bool = False) -> None:
    if not values and not allow_empty:
        raise ValueError(f"{where} must be a non-empty list")
    for value in values:
        _check_int(f"{where} entries", value, minimum, maximum)
    if len(set(values)) != len(values):
        raise ValueError(f"{where} has repeated entries: {list(values)}")


@dataclass(frozen=True)
class PoolSpec:
    """The training pool of one family (for methods that learn from training tasks).

    Attributes:
        n_tasks: training tasks (``train`` split, tasks ``0 .. n_tasks - 1`` of the stream ``task_seed``).
        n_demos: expert demos per training task.
        task_seed: seed of the training task stream.
        demo_seed: seed of the training demos.
    """

    n_tasks: int = 500
    n_demos: int = 20
    task_seed: int = 0
    demo_seed: int = 0

    def __post_init__(self) -> None:
        _check_int("[train] n_tasks", self.n_tasks, 1, MAX_POOL)
        _check_int("[train] n_demos", self.n_demos, 2, MAX_DEMOS)
        _check_int("[train] task_seed", self.task_seed, 0, 2**63 - 1)
        _check_int("[train] demo_seed", self.demo_seed, 0, 2**63 - 1)


@dataclass(frozen=True)
class ExpertSpec:
    """The demonstrator (:class:`mandril_envs.demos.ExpertSettings`).

    Attributes:
        policy: ``"soft"``, ``"optimal"`` or ``"epsilon"``.
        temperature: soft-expert temperature.
        epsilon: epsilon-expert exploration rate.
    """

    policy: str = "soft"
    temperature: float = 1.0
    epsilon: float = 0.1

    def settings(self) -> Any:
        """As :class:`mandril_envs.demos.ExpertSettings` (which checks the values)."""
        from mandril_envs.demos import ExpertSettings

        return ExpertSettings(self.policy, self.temperature, self.epsilon)

    def __post_init__(self) -> None:
        self.settings()


@dataclass(frozen=True)
class FamilySpec:
    """One task family of a suite.

    Attributes:
        env_id: a registered ``mandril_envs/`` id.
        env_kwargs: the family config (env kwargs).
        splits: held-out splits to score on (the env's test splits, or ``"validation"`` for tuning).
        n_tasks: held-out tasks per split (tasks ``0 .. n_tasks - 1`` of the stream ``task_seed``).
        task_seed: seed of the held-out task stream.
        n_demos: demo counts for this family (default: the suite's).
        reward_model: the neural reward model of the methods that use one (MandRIL, pre-train +
            fine-tune, demo-conditioned, maxent); default: each method's own.
        input_kind: what that model reads (``features``; ``map`` or ``rgb`` on grids).
        expert: the demonstrator of training and held-out demos.
        train: the training pool.
        methods: per-method settings for this family only (``{method: {setting: value}}``).
        tried: how many settings each method tried when it was tuned on this family (``{method: count}``,
            from the tuning sweep's selected file; a method missing here was not tuned, or not recorded).
    """

    env_id: str
    env_kwargs: dict = field(default_factory=dict)
    splits: tuple[str, ...] = ("test",)
    n_tasks: int = 30
    task_seed: int = 1
    n_demos: tuple[int, ...] = ()
    reward_model: Optional[RewardModelSpec] = None
    input_kind: str = "features"
    expert: ExpertSpec = field(default_factory=ExpertSpec)
    train: PoolSpec = field(default_factory=PoolSpec)
    methods: dict = field(default_factory=dict)
    tried: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_int("n_tasks", self.n_tasks, 1, MAX_TASKS)
        for method, count in self.tried.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"tried[{method!r}] must be a number of settings >= 1, got {count!r}")
        _check_int("task_seed", self.task_seed, 0, 2**63 - 1)
        _check_ints("n_demos", self.n_demos, 1, MAX_DEMOS, allow_empty=True)
        if not self.splits or len(set(self.splits)) != len(self.splits):
            raise ValueError(f"splits must be a non-empty list without repeats, got {list(self.splits)}")
        if "train" in self.splits:
            raise ValueError(f"splits must not include 'train' (the training pool's split); for tuning use '{VALIDATION_SPLIT}', train-split tasks no pool reaches")


@dataclass(frozen=True)
class CellLimits:
    """A reduced grid of cells for one method (an expensive one); empty means no limit.

    Attributes:
        families: only these families.
        splits: only these splits.
        n_demos: only these demo counts.
        n_tasks: only the first ``n_tasks`` held-out tasks of each split (0: all).
        seeds: only these seeds.
    """

    families: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    n_demos: tuple[int, ...] = ()
    n_tasks: int = 0
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_int("n_tasks", self.n_tasks, 0, MAX_TASKS)

    def allows(self, family: Optional[str] = None, split: Optional[str] = None, n_demos: Optional[int] = None, seed: Optional[int] = None) -> bool:
        """Whether cells of this family, split, demo count and seed are in the grid (``None``: not asked)."""
        checks = ((self.families, family), (self.splits, split), (self.n_demos, n_demos), (self.seeds, seed))
        return all(value is None or not allowed or value in allowed for allowed, value in checks)


@dataclass(frozen=True)
class Suite:
    """A benchmark suite (see the module docstring).

    Attributes:
        name: the suite's name.
        description: one paragraph for the report.
        methods: method names from :data:`mandril.methods.METHODS`.
        families: ``{name: FamilySpec}``.
        seeds: runs; each seed prepares methods afresh and draws fresh demos.
        n_demos: demos per held-out task (nested across settings: ``n = 1`` sees the first of ``n = 2``'s).
        likelihood: the likelihood of every MaxEnt-family method.
        settings: ``{method: {setting: value}}`` for every family.
        cells: ``{method: CellLimits}``.
        threads: torch threads per worker.
    """

    name: str
    methods: tuple[str, ...]
    families: dict
    description: str = ""
    seeds: tuple[int, ...] = (0,)
    n_demos: tuple[int, ...] = (1, 2, 4, 8)
    likelihood: str = "start"
    settings: dict = field(default_factory=dict)
    cells: dict = field(default_factory=dict)
    threads: int = 1

    def family_n_demos(self, family: str) -> tuple[int, ...]:
        """The demo counts of ``family``."""
        return self.families[family].n_demos or self.n_demos

    def method_settings(self, method: str, family: str, seed: int, n_demos: Optional[int] = None) -> dict:
        """The settings ``method`` gets on ``family`` in run ``seed`` with ``n_demos`` demos (see the module
        docstring); ``n_demos=None``: the settings before any ``by_n`` entry applies."""
        from mandril.methods import METHODS

        cls = METHODS[method]
        names = {f.name for f in fields(cls.Config)}
        spec = self.families[family]
        resolved: dict = {}
        if cls.family_reward_model and spec.reward_model is not None:
            resolved["reward_model"] = dataclass_to_dict(spec.reward_model)
            resolved["input_kind"] = spec.input_kind
        if "likelihood" in names:
            resolved["likelihood"] = self.likelihood
        if "expert_temperature" in names:  # methods that model the demonstrator (the bayes reference)
            resolved["expert_policy"] = spec.expert.policy
            resolved["expert_temperature"] = spec.expert.temperature
        resolved.update(self.settings.get(method, {}))
        resolved.update(spec.methods.get(method, {}))
        by_n = resolved.pop(BY_N, {})
        if n_demos is not None:
            resolved.update(by_n_entry(by_n, n_demos))
        if "seed" in names:
            resolved["seed"] = seed
        return resolved

    def by_n(self, method: str, family: str) -> Any:
        """``method``'s per-n settings on ``family`` (its ``by_n`` table: the family's, else the suite's; ``None``: none)."""
        for table in (self.families[family].methods.get(method), self.settings.get(method)):
            if isinstance(table, Mapping) and BY_N in table:
                return table[BY_N]
        return None

    def runs_on(self, method: str, family: str) -> bool:
        """Whether ``method`` has cells on ``family`` (its ``[cells]`` limits, if any, allow the family)."""
        limits = self.cells.get(method)
        return limits is None or limits.allows(family=family)

    def make_method(self, method: str, family: str, seed: int, n_demos: Optional[int] = None) -> Any:
        """The method, configured for ``family``, run ``seed`` and ``n_demos`` demos (its ``by_n`` entry applied)."""
        from mandril.methods import make

        return make(method, **self.method_settings(method, family, seed, n_demos))

    def config_hash(self, method: str, family: str, n_demos: Optional[int] = None) -> str:
        """A short hash of the method's settings on the family with ``n_demos`` demos (the run's seed left out)."""
        settings = dataclass_to_dict(self.make_method(method, family, 0, n_demos).config)
        settings.pop("seed", None)
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]

    def preparation_hash(self, method: str, family: str) -> str:
        """A short hash of what a preparation depends on: the method's settings that shape it (not the
        seed, not those that only change fits of new tasks), the family and its training pool."""
        from mandril.methods import METHODS

        settings = dataclass_to_dict(self.make_method(method, family, 0).config)
        for name in ("seed", *METHODS[method].fit_only_settings):
            settings.pop(name, None)
        spec = self.families[family]
        shaped = {"method": method, "settings": settings, "env_id": spec.env_id, "env_config": self.env_configs()[family],
                  "train": dataclass_to_dict(spec.train), "expert": dataclass_to_dict(spec.expert)}
        return hashlib.sha256(json.dumps(shaped, sort_keys=True).encode()).hexdigest()[:10]

    def to_dict(self) -> dict:
        """The suite as plain data (round-trips through :func:`suite_from_dict`)."""
        return dataclass_to_dict(self)

    def env_configs(self) -> dict:
        """Every family's complete env config, defaults included (what ``env.unwrapped.config`` says)."""
        import gymnasium as gym

        return {name: gym.make(spec.env_id, **spec.env_kwargs).unwrapped.config for name, spec in self.families.items()}

    def digest(self) -> str:
        """A hash of everything that decides the results: the whole suite, and each family's complete env
        config (so a changed default of an env makes another suite)."""
        shaped = {"suite": self.to_dict(), "envs": self.env_configs()}
        return hashlib.sha256(json.dumps(shaped, sort_keys=True).encode()).hexdigest()[:16]


#: A replicate's run seeds are the suite's plus this times its number (far from any suite's own seeds).
REPLICATE_SEED_STRIDE = 1000


def replicate(suite: Suite, number: int) -> Suite:
    """The same suite on other held-out tasks with other runs: what a second look at its verdicts needs.

    Replicate ``number`` (>= 1) draws every family's held-out tasks from the stream ``task_seed + number``
    and runs seeds ``s + number * REPLICATE_SEED_STRIDE`` (fresh preparations and demos); the training
    pools, settings and everything else stay. Its name is ``NAME-replicate-NUMBER``.
    """
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"replicate must be an int >= 1, got {number!r}")
    data = suite.to_dict()
    shift = number * REPLICATE_SEED_STRIDE
    data["name"] = f"{suite.name}-replicate-{number}"
    data["seeds"] = [s + shift for s in suite.seeds]
    for family in data["families"].values():
        family["task_seed"] += number
    for limits in data["cells"].values():
        limits["seeds"] = [s + shift for s in limits.get("seeds", [])]
    return suite_from_dict(data, f"{suite.name} replicate {number}")


def suite_from_dict(data: Mapping[str, Any], where: str = "suite") -> Suite:
    """Build and check a :class:`Suite` from plain data (a parsed TOML file); errors name ``where`` and the key."""
    try:
        return _suite_from_dict(data, where)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {error}") from None


def _suite_from_dict(data: Mapping[str, Any], where: str) -> Suite:
    from mandril.methods import METHODS
    from mandril_envs.env_settings import make_env
    from mandril_envs.registration import check_env_id

    if not isinstance(data, Mapping):
        raise TypeError(f"a suite must be a table, got {type(data).__name__}")
    _check_names(data)
    data = dict(data)
    families_data = data.pop("families", None)
    if not isinstance(families_data, Mapping) or not families_data:
        raise ValueError("[families] must have at least one table, e.g. [families.gridworld] with env_id = 'mandril_envs/GridWorld-v0'")
    cells_data = data.pop("cells", {})
    if not isinstance(cells_data, Mapping):
        raise TypeError(f"[cells] must be a table, got {type(cells_data).__name__}")
    families = {}
    for name, table in families_data.items():
        if not isinstance(table, Mapping):
            raise TypeError(f"[families.{name}] must be a table, got {type(table).__name__}")
        if "env_id" in table:  # before anything reaches gym.make: an id naming a module would import it
            check_env_id(table["env_id"], f"[families.{name}] env_id")
        families[name] = build_dataclass(FamilySpec, table, f"[families.{name}]")
    cells = {name: build_dataclass(CellLimits, table, f"[cells.{name}]") for name, table in cells_data.items()}
    suite = build_dataclass(Suite, {**data, "families": families, "cells": cells})
    if not suite.name.strip():
        raise ValueError("name must be a non-empty string")
    unknown = [m for m in suite.methods if m not in METHODS]
    if not suite.methods or unknown or len(set(suite.methods)) != len(suite.methods):
        raise ValueError(f"methods must be a non-empty list of distinct names from {list(METHODS)}, got {list(suite.methods)}")
    _check_ints("seeds", suite.seeds, 0, 2**31 - 1)
    _check_ints("n_demos", suite.n_demos, 1, MAX_DEMOS)
    check_likelihood(suite.likelihood)
    _check_int("threads", suite.threads, 1, MAX_THREADS)
    for section, table in (("settings", suite.settings), ("cells", suite.cells)):
        stray = sorted(set(table) - set(suite.methods))
        if stray:
            raise ValueError(f"[{section}] names methods that are not in methods: {stray}")
        if section == "settings":
            for method, values in table.items():
                if not isinstance(values, Mapping):
                    raise TypeError(f"[settings.{method}] must be a table, got {type(values).__name__}")
    for name, spec in families.items():
        env = make_env(spec.env_id, spec.env_kwargs, f"[families.{name}] env_kwargs")  # render mode, wrapper keys, the env's own checks
        base = env.unwrapped
        allowed = [s for s in base.splits if s != "train"] + [VALIDATION_SPLIT]
        bad = [s for s in spec.splits if s not in allowed]
        if bad:
            raise ValueError(f"[families.{name}] splits {bad} are not splits of {spec.env_id}: allowed {allowed}")
        if spec.input_kind not in base.reward_input_kinds:
            raise ValueError(f"[families.{name}] input_kind {spec.input_kind!r} is not offered by {spec.env_id}: it offers {list(base.reward_input_kinds)}")
        for table in ("methods", "tried"):
            stray = sorted(set(getattr(spec, table)) - set(suite.methods))
            if stray:
                raise ValueError(f"[families.{name}.{table}] names methods that are not in methods: {stray}")
        for method in suite.methods:
            try:
                by_n = suite.by_n(method, name)
                if by_n is not None:
                    check_by_n(by_n, METHODS[method].per_n_settings(), f"[{method}] by_n")
                built = suite.make_method(method, name, suite.seeds[0])
                for n in suite.family_n_demos(name):
                    suite.make_method(method, name, suite.seeds[0], n)
            except (TypeError, ValueError) as error:
                raise type(error)(f"method {method!r} on family {name!r}: {error}") from None
            limits = suite.cells.get(method)
            scored = tuple(n for n in suite.family_n_demos(name) if limits is None or limits.allows(family=name, n_demos=n))
            try:
                built.check_training(spec.train.n_demos, scored)
            except ValueError as error:
                raise ValueError(f"method {method!r} on family {name!r}: {error}") from None
            if built.input_kind not in base.reward_input_kinds:
                raise ValueError(f"method {method!r} reads {built.input_kind!r} inputs, which {spec.env_id} does not offer ({list(base.reward_input_kinds)}): set reward_model/input_kind in [families.{name}]")
        spec.expert.settings()
    for method, limits in cells.items():
        stray = [f for f in limits.families if f not in families]
        if stray:
            raise ValueError(f"[cells.{method}] families {stray} are not families of the suite")
    _check_cell_filters(suite)
    _check_family_envs(suite)
    total = sum(len(suite.seeds) * len(spec.splits) * spec.n_tasks * len(suite.family_n_demos(name)) for name, spec in families.items()) * len(suite.methods)
    if total > MAX_CELLS:
        raise ValueError(f"the suite has {total:,} cells, more than the {MAX_CELLS:,} allowed: fewer tasks, demo counts, seeds or methods")
    return suite


def _check_cell_filters(suite: Suite) -> None:
    """Each ``[cells.METHOD]`` filter must match something (a typo would silently drop the method)."""
    for method, limits in suite.cells.items():
        families = [f for f in suite.families if limits.allows(family=f)]
        splits = sorted({s for f in families for s in suite.families[f].splits})
        stray = [s for s in limits.splits if s not in splits]
        if stray:
            raise ValueError(f"[cells.{method}] splits {stray} match no split of its families: allowed {splits}")
        counts = sorted({n for f in families for n in suite.family_n_demos(f)})
        stray = [n for n in limits.n_demos if n not in counts]
        if stray:
            raise ValueError(f"[cells.{method}] n_demos {stray} are not demo counts of its families: allowed {counts}")
        stray = [seed for seed in limits.seeds if seed not in suite.seeds]
        if stray:
            raise ValueError(f"[cells.{method}] seeds {stray} are not seeds of the suite: allowed {list(suite.seeds)}")
        if not any(limits.allows(family=f, split=s) and any(limits.allows(n_demos=n) for n in suite.family_n_demos(f))
                   for f in families for s in suite.families[f].splits):
            raise ValueError(f"[cells.{method}] matches no cell: no family has both its splits {list(limits.splits)} and its n_demos {list(limits.n_demos)}")


def _check_family_envs(suite: Suite) -> None:
    """Every family's env settings as the run will use them: the sizes of the training pool (when a
    method of the suite trains) and of the held-out demos, and the plans of one held-out task under the
    family's expert (finite, within what float64 can fit and score); see :mod:`mandril_envs.env_settings`."""
    from mandril.eval.protocol import N_HELDOUT
    from mandril.methods import METHODS
    from mandril_envs.env_settings import check_env_settings

    trains = any(METHODS[m].needs_preparation for m in suite.methods)
    for name, spec in suite.families.items():
        datasets = [((f"[families.{name}] n_tasks", "the most n_demos + held-out demos"), spec.n_tasks, N_HELDOUT + max(suite.family_n_demos(name)))]
        if trains:
            datasets.append(((f"[families.{name}.train] n_tasks", "n_demos"), spec.train.n_tasks, spec.train.n_demos))
        split = next(s for s in spec.splits if s != VALIDATION_SPLIT) if any(s != VALIDATION_SPLIT for s in spec.splits) else "train"
        temperatures = {}  # the MaxEnt likelihoods' temperatures of the suite's methods: their soft plans must be finite too
        for method in suite.methods:
            value = getattr(suite.make_method(method, name, suite.seeds[0]).config, "temperature", None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                temperatures[f"method {method!r} temperature"] = value
        check_env_settings(spec.env_id, spec.env_kwargs, f"[families.{name}] env_kwargs", expert=spec.expert.settings(), split=split, datasets=datasets,
                           temperatures=temperatures)


def tuned_settings(path: Path) -> tuple[dict, dict]:
    """``({family: {method: settings}}, {family: {method: settings tried}})`` of a tuning sweep's ``selected.toml``."""
    data = load_toml(path)
    families = data.get("families", {})
    if set(data) - {"families"} or not isinstance(families, dict):
        raise ValueError(f"{path}: a tuned-settings file holds only [families.F.methods.M] and [families.F.tried] tables")
    settings: dict = {}
    tried: dict = {}
    for family, table in families.items():
        if not isinstance(table, dict) or set(table) - {"methods", "tried"} or not isinstance(table.get("methods", {}), dict) or not isinstance(table.get("tried", {}), dict):
            raise ValueError(f"{path}: [families.{family}] may only hold methods.M and tried tables")
        settings[family] = table.get("methods", {})
        for method, count in table.get("tried", {}).items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{path}: [families.{family}.tried] {method} must be a number of settings >= 1, got {count!r}")
        tried[family] = dict(table.get("tried", {}))
    return settings, tried


def packaged_file(name: str, kind: str) -> Path:
    """A committed suite (``kind = "suites"``) or tuning sweep (``"tuning"``) shipped with the package, by name
    (``"quick"`` -> ``mandril/bench/suites/quick.toml``, which is ``benchmarks/suites/quick.toml``).

    Raises:
        ValueError: no such file; the message lists the names there are.
    """
    from importlib import resources

    folder = Path(str(resources.files("mandril.bench") / kind))
    known = sorted(p.stem for p in folder.glob("*.toml") if not p.stem.endswith("-selected"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) or not (folder / f"{name}.toml").is_file():
        raise ValueError(f"{name!r} is neither a TOML file nor the name of a packaged {kind[:-1] if kind == 'suites' else 'tuning sweep'}: one of {known}")
    return folder / f"{name}.toml"


def resolve_file(text: Union[str, Path], kind: str) -> Path:
    """``text`` as a path when it names a file (or looks like one: a ``.toml`` suffix or a separator), else
    the packaged file of that name (:func:`packaged_file`)."""
    path = Path(text)
    if path.exists() or path.suffix == ".toml" or "/" in str(text) or "\\" in str(text):
        return path
    return packaged_file(str(text), kind)


def load_suite(path: Union[str, Path]) -> Suite:
    """Read and check a suite TOML file (see the module docstring); errors name the file and the key.

    A top-level ``tuned = "FILE"`` (relative to the suite file) includes a tuning sweep's selected
    settings as per-family method settings; the suite's own ``[families.F.methods.M]`` entries win.
    """
    path = Path(path)
    data = load_toml(path)
    tuned = data.pop("tuned", None)
    if tuned is not None:
        if not isinstance(tuned, str):
            raise TypeError(f"{path}: tuned must be a file name (relative to the suite), got {type(tuned).__name__}")
        selected, tried = tuned_settings(path.parent / tuned)
        families = data.get("families", {})
        for family, methods in selected.items():
            if not isinstance(families, dict) or family not in families or not isinstance(families[family], dict):
                raise ValueError(f"{path}: {tuned} tunes family {family!r}, which the suite does not have")
            own = families[family].setdefault("methods", {})
            for method, settings in methods.items():
                if method in data.get("methods", []):
                    own[method] = {**settings, **own.get(method, {})}
            budget = {m: n for m, n in tried.get(family, {}).items() if m in data.get("methods", [])}
            if budget:
                families[family]["tried"] = budget
    return suite_from_dict(data, str(path))
