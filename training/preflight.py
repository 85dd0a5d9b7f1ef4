"""Check the command line before Hydra creates a run folder, and turn every user mistake into one line.

Hydra reports a bad override as several lines plus a hint about ``HYDRA_FULL_ERROR``; range errors would only
surface inside the job, after the run folder exists. Here the same config is composed with Hydra's compose API
(each value of a multirun sweep once), converted to the dataclass schema and validated, so a mistyped override
costs a second and touches nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from training.config import to_objects, validate
from training.errors import ConfigError
from training.run_folder import check_same_config, check_space, check_writable, checkpoint_bytes, is_complete

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
_SKIP = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}
_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp",
               "--config-dir", "-cd", "--experimental-rerun"}


class UserError(Exception):
    """A one-line message for the user; the entry point prints it and exits 2."""


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def split_argv(argv: list[str]) -> tuple[list[str], bool, bool]:
    """(overrides, is_multirun, skip) from Hydra's command line."""
    overrides, multirun, skip, i = [], False, False, 0
    while i < len(argv):
        arg = argv[i]
        if arg in _SKIP or arg.startswith("--info="):
            skip = True
        elif arg in ("-m", "--multirun"):
            multirun = True
        elif arg in _WITH_VALUE:
            i += 1
        elif not arg.startswith("-"):
            overrides.append(arg)
        i += 1
    return overrides, multirun, skip


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


def _compose(overrides: list[str], with_hydra: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=overrides, return_hydra_config=with_hydra)


def _preset_variants(cfg, overrides: list[str]) -> list[list[str]]:
    """One override list per value of a config-set sweep (``+sweep=<preset>``'s ``hydra.sweeper.params``) that the
    command line does not replace."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    given = {_key_of(o)[0] for o in overrides}
    return [[*overrides, f"{key}={value}"] for key, values in params.items() if key not in given
            for value in str(values).split(",")]


def _key_of(override: str) -> tuple[str, str]:
    key, _, value = override.lstrip("+~").partition("=")
    return key, value


def _explain(exc: Exception, overrides: list[str]) -> str:
    text = str(exc)
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    if isinstance(exc, MissingConfigException) or "Could not find '" in text:
        m = re.search(r"Could not find '([^']+)'", text)
        group, _, option = (m.group(1) if m else "?/?").rpartition("/")
        return f"{group}={option} is not an option; allowed: {', '.join(group_options(group))}"
    m = re.search(r"In '(tuned/\w+)': ConfigKeyError.*?full_key: ((\w+)\.[\w.]+)", text, re.S)
    if m:  # a per-(agent, env) defaults file sets a key the chosen group option lacks
        tuned, key, group = m.groups()
        choice = next((v for k, v in map(_key_of, overrides) if k == group), "?")
        return (f"{group}={choice} does not fit conf/{tuned}.yaml, which sets {key}; allowed here: "
                f"{', '.join(_known_options(group, key))}")
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        full_key = getattr(cause, "full_key", None) or _failing_key(text)
        parent, _, leaf = full_key.rpartition(".")
        return f"unknown key {full_key!r}; allowed keys{' in ' + parent if parent else ''}: " + \
            ", ".join(_known_keys(parent, [o for o in overrides if _key_of(o)[0] != full_key]))
    if isinstance(cause, ValidationError):
        full_key = getattr(cause, "full_key", "") or _failing_key(text)
        value = next((v for k, v in map(_key_of, overrides) if k == full_key), getattr(cause, "value", "?"))
        return f"{full_key}={value} is not allowed; {_expected(cause, str(value))}"
    return " ".join(text.split())


def _known_options(group: str, key: str) -> list[str]:
    """Options of ``group`` whose config has ``key`` (e.g. the networks with ``hidden_sizes``)."""
    return [o for o in group_options(group) if OmegaConf.select(_compose([f"{group}={o}"]), key) is not None]


def _failing_key(text: str) -> str:
    m = re.search(r"override '?([\w.]+)", text)
    return m.group(1) if m else "?"


def _expected(cause: ValidationError, value: str) -> str:
    msg = str(cause).splitlines()[0]
    m = re.search(r"expected one of \[([^\]]*)\]", msg)
    if m:
        return f"allowed: {m.group(1)}"
    m = re.search(r"could not be converted to (\w+)", msg)
    if m:
        scientific = m.group(1) == "Integer" and re.fullmatch(r"[\d.]+[eE][+-]?\d+", value)
        return f"expected {m.group(1).lower()}" + (" (write 1000000 or 1_000_000, not 1e6)" if scientific else "")
    return msg


def _known_keys(parent: str, overrides: list[str]) -> list[str]:
    try:
        node = _compose(overrides)
    except HydraException:
        node = _compose([])
    sub = OmegaConf.select(node, parent) if parent else node
    return sorted(str(k) for k in sub.keys()) if sub is not None else []


def preflight(argv: list[str]) -> None:
    """Raise ``UserError`` with one line if the command line would fail; otherwise return silently."""
    overrides, multirun, skip = split_argv(argv)
    if skip:
        return
    hydra_overrides = dict(_key_of(o) for o in overrides if _key_of(o)[0].startswith("hydra"))
    multirun = multirun or hydra_overrides.get("hydra.mode") == "MULTIRUN" or any(
        _key_of(o)[0] == "sweep" for o in overrides)  # the presets in conf/sweep/ set hydra.mode
    overrides = [o for o in overrides if not _key_of(o)[0].startswith("hydra")]
    try:
        variants = _variants(overrides, multirun)
    except HydraException as e:
        raise UserError(" ".join(str(e).split())) from None
    first = None
    for i, variant in enumerate(variants):
        try:
            if i == 0 and multirun:
                variants += _preset_variants(_compose(variant, with_hydra=True), variant)
            cfg = _compose(variant)
        except Exception as e:  # noqa: BLE001 - every composition failure is the user's override
            raise UserError(_explain(e, variant)) from None
        finally:
            GlobalHydra.instance().clear()
        try:
            validate(to_objects(cfg))
        except ConfigError as e:
            raise UserError(str(e)) from None
        except OmegaConfBaseException as e:
            raise UserError(" ".join(str(e).split())) from None
        first = first or cfg
    try:
        check_output(first, hydra_overrides, multirun)
    except ConfigError as e:
        raise UserError(str(e)) from None


def check_output(cfg, hydra_overrides: dict[str, str], multirun: bool) -> None:
    """The output folder can be written, holds no run of another config, and has room for the checkpoints."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    explicit = hydra_overrides.get(key)
    path = Path(explicit) if explicit else Path("runs")  # Hydra's default folders are under ./runs
    check_writable(path, key)
    existing = 0
    if explicit and not multirun:
        if check_same_config(path, cfg, key) and is_complete(path):
            return
        existing = sum(f.stat().st_size for f in (path / "checkpoints").glob("step_*/*") if f.is_file())
    c = to_objects(cfg).checkpoint
    need = (c.keep + 1) * checkpoint_bytes(to_objects(cfg)) - existing
    check_space(path, need, f"checkpoint.keep={c.keep} checkpoints plus the one being written", key)
