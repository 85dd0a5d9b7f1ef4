"""Check the command line before Hydra creates a run folder, and turn every user mistake into one line.

Hydra reports a bad override as several lines plus a hint about ``HYDRA_FULL_ERROR``; range errors would only
surface inside the job, after the run folder exists. Here the same config is composed with Hydra's compose API
(each value of a multirun sweep once) and handed to the caller's check (the composition root converts it to the
dataclass schema and validates it), and the output folder is checked for room on disk and the replay buffers for
room in memory, so a mistyped override or an impossible run costs a second and touches nothing.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from core.errors import ConfigError, elsewhere, one_of, unknown_key
from core.run_files import is_complete
from training.run_folder import check_memory, check_same_config, check_space, check_writable, complete_note
from training.sweep_plan import job_folder, plan_line, sweep_jobs

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
_SKIP = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}
_PRINT_ONLY = {"--cfg", "-c"}  # prints the config: nothing is written or allocated
_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp",
               "--config-dir", "-cd", "--experimental-rerun"}


class UserError(Exception):
    """A one-line message for the user; the entry point prints it and exits 2."""


class Complete(Exception):
    """The command's run folder holds this very run, finished: the entry point prints where its summary is and exits
    0, and Hydra never opens the folder (a rerun changes nothing in it)."""


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def config_groups() -> str:
    """``group: option, option, ...`` for every group of ``conf/`` (``--help``, through ``${config_groups:}``):
    Hydra's own list also shows the ``schema/*`` groups the suite stores for its YAML files to extend, which a user
    never picks."""
    groups = sorted({p.parent.relative_to(CONF_DIR).as_posix() for p in CONF_DIR.rglob("*.yaml")} - {"."})
    return "\n".join(f"{group}: {', '.join(group_options(group))}" for group in groups)


def split_argv(argv: list[str]) -> tuple[list[str], bool, bool, bool]:
    """(overrides, is_multirun, skip, print_only) from Hydra's command line."""
    overrides, multirun, skip, print_only, i = [], False, False, False, 0
    while i < len(argv):
        arg = argv[i]
        if arg in _SKIP or arg.startswith("--info="):
            skip = True
        elif arg in ("-m", "--multirun"):
            multirun = True
        elif arg in _WITH_VALUE:
            print_only = print_only or arg in _PRINT_ONLY
            i += 1
        elif not arg.startswith("-"):
            overrides.append(arg)
        i += 1
    return overrides, multirun, skip, print_only


def _variants(overrides: list[str], multirun: bool) -> list[list[str]]:
    """One override list per sweep value (others at their first value), or the overrides as they are."""
    if not multirun:
        return [overrides]
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for text, o in zip(overrides, parsed, strict=True):
        if o.is_sweep_override():
            values = list(o.sweep_string_iterator())
            choices.append([f"{o.get_key_element()}={v}" for v in values])
        else:
            choices.append([text])
    variants = [[c[0] for c in choices]]
    for i, c in enumerate(choices):
        for alt in c[1:]:
            variants.append([*variants[0][:i], alt, *variants[0][i + 1:]])
    return variants


def compose(overrides: list[str], with_hydra: bool = False):
    """``conf/`` composed with these overrides by Hydra's compose API, as ``train.py`` would (a ``DictConfig``)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=with_hydra)


def _preset_variants(params, overrides: list[str]) -> list[list[str]]:
    """One override list per value of a config-set sweep (``+sweep=<preset>``'s ``hydra.sweeper.params``) that the
    command line does not replace."""
    given = {_key_of(o)[0] for o in overrides}
    return [[*overrides, f"{key}={value}"] for key, values in params.items() if _key_of(key)[0] not in given
            for value in str(values).split(",")]


def _with_hydra(overrides: list[str], hydra_args: list[str]):
    """The command's config with Hydra's node, its ``hydra.*`` overrides applied (a sweep folder, the keys a job's
    folder name leaves out); without them if they do not compose here (a launcher's keys Hydra checks itself)."""
    try:
        return compose([*overrides, *hydra_args], with_hydra=True)
    except Exception:  # noqa: BLE001 - Hydra reports its own keys' mistakes when it starts
        return compose(overrides, with_hydra=True)


def _key_of(override: str) -> tuple[str, str]:
    key, _, value = override.lstrip("+~").partition("=")
    return key, value


def _explain(exc: Exception, overrides: list[str]) -> str:
    text = str(exc)
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    if isinstance(exc, MissingConfigException) or "Could not find '" in text:
        m = re.search(r"Could not find '([^']+)'", text)
        group, _, option = (m.group(1) if m else "?/?").rpartition("/")
        return f"{group}={option} is not an option; {one_of(option, group_options(group))}"
    m = re.search(r"In '([\w/]+)': ConfigKeyError.*?full_key: ((\w+)\.[\w.]+)", text, re.S)
    if m and m.group(3) in GROUPS:  # a config file (per-pair defaults, +offline=cql) sets a key the choice lacks
        source, key, group = m.groups()
        choice = next((v for k, v in map(_key_of, overrides) if k == group), "?")
        return (f"{group}={choice} does not fit conf/{source}.yaml, which sets {key}; allowed here: "
                f"{', '.join(_known_options(group, key))}")
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        full_key = getattr(cause, "full_key", None) or _failing_key(text)
        parent, _, leaf = full_key.rpartition(".")
        others = [o for o in overrides if _key_of(o)[0] != full_key]
        value = next((v for k, v in map(_key_of, overrides) if k == full_key), None)
        return unknown_key(full_key, _known_keys(parent, others), elsewhere(full_key, value, _all_keys(others)))
    if isinstance(cause, ValidationError):
        full_key = getattr(cause, "full_key", "") or _failing_key(text)
        value = next((v for k, v in map(_key_of, overrides) if k == full_key), getattr(cause, "value", "?"))
        return f"{full_key}={value} is not allowed; {_expected(cause, str(value))}"
    return " ".join(text.split())


GROUPS = ("agent", "env", "network", "pruning", "adapter")


def _known_options(group: str, key: str) -> list[str]:
    """Options of ``group`` whose config has ``key`` (e.g. the networks with ``hidden_sizes``)."""
    return [o for o in group_options(group) if OmegaConf.select(compose([f"{group}={o}"]), key) is not None]


def _failing_key(text: str) -> str:
    m = re.search(r"override '?([\w.]+)", text)
    return m.group(1) if m else "?"


def _expected(cause: ValidationError, value: str) -> str:
    msg = str(cause).splitlines()[0]
    m = re.search(r"expected one of \[([^\]]*)\]", msg)
    if m:
        return one_of(value, [c.strip() for c in m.group(1).split(",")])
    m = re.search(r"could not be converted to (\w+)", msg)
    if m:
        scientific = m.group(1) == "Integer" and re.fullmatch(r"[\d.]+[eE][+-]?\d+", value)
        return f"expected {m.group(1).lower()}" + (" (write 1000000 or 1_000_000, not 1e6)" if scientific else "")
    return msg


def _all_keys(overrides: list[str]) -> list[str]:
    """Every key of the config these overrides compose (dotted, leaves only), for ``elsewhere``."""
    try:
        node = compose(overrides)
    except HydraException:
        node = compose([])
    return flat_keys(node)


def flat_keys(node, prefix: str = "") -> list[str]:
    """The dotted keys of a composed config's leaves."""
    keys = []
    for key, value in node.items_ex(resolve=False):
        full = f"{prefix}{key}"
        keys += flat_keys(value, full + ".") if isinstance(value, DictConfig) else [full]
    return keys


def _known_keys(parent: str, overrides: list[str]) -> list[str]:
    try:
        node = compose(overrides)
    except HydraException:
        node = compose([])
    sub = OmegaConf.select(node, parent) if parent else node
    return sorted(str(k) for k in sub.keys()) if sub is not None else []


def _job_count(overrides: list[str], multirun: bool, preset: dict) -> int:
    """Jobs in the sweep: the product of the sizes of its swept keys, from the command line or the preset."""
    if not multirun:
        return 1
    parsed = OverridesParser.create().parse_overrides(overrides)
    sizes = {o.get_key_element(): len(list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override()}
    given = {_key_of(o)[0] for o in overrides}
    sizes.update({key: len(str(values).split(",")) for key, values in preset.items() if key not in given})
    return math.prod(sizes.values())


def _parallel_jobs(hydra_overrides: dict[str, str], jobs: int) -> int:
    """Jobs that hold their replay in this machine's memory at once: joblib's ``n_jobs`` (negative counts back from
    the core count, as joblib does), at most the sweep's jobs; one otherwise."""
    if hydra_overrides.get("hydra/launcher") != "joblib":
        return 1
    n = int(hydra_overrides.get("hydra.launcher.n_jobs", -1))
    cores = os.cpu_count() or 1
    return max(1, min(n if n > 0 else cores + 1 + n, jobs))


def preflight(argv: list[str], check: Callable[[Any], Any], replay_bytes: Callable[[Any], int],
              check_overrides: Callable[[list[str], Any], None] = lambda overrides, cfg: None,
              run_seconds: Callable[[Any], float | None] = lambda cfg: None) -> str | None:
    """Raise ``UserError`` with one line if the command line would fail. ``check`` turns a composed config into the
    checked config object (raising ``ConfigError``); ``replay_bytes`` gives the memory of a run's full replay buffer,
    which checkpoints also hold; ``check_overrides`` refuses what a config alone cannot tell (a key given on the
    command line that the run would ignore); ``run_seconds`` estimates a run's core-seconds (None where it cannot).
    Returns, for a multirun, the line that says how many runs it holds and what they cost (``sweep_plan``)."""
    overrides, multirun, skip, print_only = split_argv(argv)
    if skip:
        return
    hydra_overrides = dict(_key_of(o) for o in overrides if _key_of(o)[0].startswith("hydra"))
    multirun = multirun or hydra_overrides.get("hydra.mode") == "MULTIRUN" or any(
        _key_of(o)[0] == "sweep" for o in overrides)  # the presets in conf/sweep/ set hydra.mode
    check_launcher(hydra_overrides)
    hydra_args = [o for o in overrides if _key_of(o)[0].startswith("hydra")]
    overrides = [o for o in overrides if not _key_of(o)[0].startswith("hydra")]
    try:
        variants = _variants(overrides, multirun)
    except HydraException as e:
        raise UserError(" ".join(str(e).split())) from None
    checked, preset, run_dir = [], {}, None
    for i, variant in enumerate(variants):
        try:
            if i == 0:
                with_hydra = _with_hydra(variant, hydra_args)
                if multirun:
                    preset = OmegaConf.select(with_hydra, "hydra.sweeper.params") or {}
                    variants += _preset_variants(preset, variant)
                else:  # the default folder is named from the command (training/run_folder.py: default_name)
                    run_dir = hydra_overrides.get("hydra.run.dir") or str(with_hydra.hydra.run.dir)
            cfg = compose(variant)
        except Exception as e:  # noqa: BLE001 - every composition failure is the user's override
            raise UserError(_explain(e, variant)) from None
        finally:
            GlobalHydra.instance().clear()
        try:
            checked.append((cfg, check(cfg)))
            check_overrides(variant, checked[-1][1])
        except ConfigError as e:
            raise UserError(str(e)) from None
        except OmegaConfBaseException as e:
            raise UserError(" ".join(str(e).split())) from None
    if print_only:
        return None
    try:
        jobs = _parallel_jobs(hydra_overrides, _job_count(overrides, multirun, preset))
        check_output(checked, replay_bytes, hydra_overrides, multirun, jobs, run_dir)
    except ConfigError as e:
        raise UserError(str(e)) from None
    if not multirun:
        return None
    sweep = with_hydra.hydra
    seconds = [run_seconds(obj) for _, obj in checked]
    by_value = {_key_of(changed[0]): cost for variant, cost in zip(variants[1:], seconds[1:], strict=True)
                if len(changed := [o for o in variant if o not in variants[0]]) == 1}
    planned = sweep_jobs(preset, overrides)
    subdir = OmegaConf.to_container(sweep.sweep, resolve=False)["subdir"]
    exclude = list(sweep.job.config.override_dirname.exclude_keys)
    folders = [job_folder(str(sweep.sweep.dir), subdir, job, exclude) for job in planned]
    return plan_line(planned, folders, seconds[0], by_value, str(sweep.sweep.dir), jobs)


LAUNCHER_PLUGINS = {"ray": ("hydra_plugins.hydra_ray_launcher", "ray"),
                    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "submitit"),
                    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "submitit"),
                    "joblib": ("hydra_plugins.hydra_joblib_launcher", "joblib")}


def check_launcher(hydra_overrides: dict[str, str]) -> None:
    """What a cluster user meets first, in one line each: a launcher whose plugin is not installed, SLURM's
    ``sbatch`` missing, a partition the cluster does not have (read from ``sinfo``)."""
    launcher = hydra_overrides.get("hydra/launcher")
    if launcher in LAUNCHER_PLUGINS:
        module, extra = LAUNCHER_PLUGINS[launcher]
        if importlib.util.find_spec(module) is None:
            how = ("the ray extra, in an environment of its own: scripts/ray_local.sh env" if extra == "ray" else
                   f'the {extra} extra: pip install -e ".[{extra}]"')
            raise UserError(f"hydra/launcher={launcher} needs its Hydra plugin, which is not installed ({how})")
    if launcher != "submitit_slurm":
        return
    if shutil.which("sbatch") is None:
        raise UserError("hydra/launcher=submitit_slurm submits with sbatch, which is not on the PATH (a SLURM login "
                        "node has it; to try SLURM on this machine: scripts/slurm_local.sh up)")
    partition = hydra_overrides.get("hydra.launcher.partition")
    if partition:
        listed = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=60)
        partitions = sorted(set(listed.stdout.split()))
        if listed.returncode == 0 and partitions and partition not in partitions:
            raise UserError(str(ConfigError("hydra.launcher.partition", partition,
                                            f"this cluster's partitions: {', '.join(partitions)}")))


def check_output(checked: list[tuple[Any, Any]], replay_bytes: Callable[[Any], int], hydra_overrides: dict[str, str],
                 multirun: bool, jobs: int, run_dir: str | None = None) -> None:
    """The output folder can be written, holds no run of another config, and has room for the checkpoints; the
    largest replay buffer of the command fits in memory, ``jobs`` times over. ``checked`` holds (composed, checked)
    configs, the first being the command's own; ``run_dir`` is a single run's folder, given or by default. Raises
    ``Complete`` if that folder holds this run, finished."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    explicit = hydra_overrides.get(key)
    path = Path(run_dir) if run_dir else Path(explicit) if explicit else Path("runs")  # Hydra's default: ./runs
    check_writable(path, key)
    existing = 0
    if not multirun:
        if check_same_config(path, checked[0][0], key) and is_complete(path):
            raise Complete(complete_note(path))
        existing = sum(f.stat().st_size for f in (path / "checkpoints").glob("step_*/*") if f.is_file())
    objects = [obj for _, obj in checked]
    replays = [replay_bytes(obj) for obj in objects]
    keep = objects[0].checkpoint.keep
    in_checkpoints = [getattr(obj, "replay_in_checkpoints", obj.checkpoint.replay) for obj in objects]
    stored = max((r for r, kept in zip(replays, in_checkpoints, strict=True) if kept), default=0)
    check_space(path, (keep + 1) * stored - existing, f"checkpoint.keep={keep} checkpoints plus the one being written",
                key)
    largest = max(range(len(objects)), key=replays.__getitem__)
    fix = "lower agent.replay_capacity" + (" or hydra.launcher.n_jobs" if jobs > 1 else "")
    check_memory(replays[largest], jobs, "agent.replay_capacity",
                 getattr(objects[largest].agent, "replay_capacity", None), fix)  # PPO has no replay
