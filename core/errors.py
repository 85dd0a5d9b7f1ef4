"""One exception type for user mistakes, so the entry point can print one line instead of a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A config value the suite refuses, with the key that holds it and what would be accepted."""

    def __init__(self, key: str, value: object, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed; {allowed}")

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key qualified by the config node it came from (``lr`` -> ``agent.lr``)."""
        return ConfigError(f"{prefix}.{self.key}", self.value, self.allowed)


class UnknownKeyError(ConfigError):
    """A key no schema has (``+agent.bogus=1``), named with its parent node's keys, or with where it lives when it
    is a key of another node (``hint``, from ``elsewhere``)."""

    def __init__(self, full_key: str, known: Iterable[str], hint: str | None = None):
        self.key, self.value, self.allowed = full_key, None, sorted(known)
        ValueError.__init__(self, unknown_key(full_key, self.allowed, hint))


def require(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def closest(value: object, choices: Iterable[object]) -> str | None:
    """The choice a mistyped ``value`` most likely meant (``Pongg`` -> ``Pong``, ``cartpole`` -> ``CartPole-v1``),
    compared without case; None when nothing is close."""
    names = [str(c) for c in choices]
    lower = {n.lower(): n for n in names}
    match = difflib.get_close_matches(str(value).lower(), list(lower), n=1, cutoff=0.6)
    if not match:
        prefixed = [n for n in names if n.lower().startswith(str(value).lower())] if str(value) else []
        return prefixed[0] if len(prefixed) == 1 else None
    return lower[match[0]]


def one_of(value: object, choices: Iterable[object], label: str = "allowed") -> str:
    """``label: a, b, c`` for an error message, led by ``did you mean 'b'?`` when one choice is close to ``value``."""
    names = [str(c) for c in choices]
    guess = closest(value, names)
    return (f"did you mean {guess!r}? " if guess is not None else "") + f"{label}: {', '.join(names)}"


def unknown_key(full_key: str, known: Iterable[str], hint: str | None = None) -> str:
    """The one line for a key no schema has: where it lives if it is a key of another node (``hint``), else the keys
    of its parent node, led by the closest one."""
    parent, _, leaf = full_key.rpartition(".")
    label = f"allowed keys in {parent}" if parent else "allowed keys"
    return f"unknown key {full_key!r}; " + (hint or one_of(leaf, sorted(known), label))


def elsewhere(full_key: str, value: object, keys: Iterable[str]) -> str | None:
    """Where a key given in the wrong place lives, from every key of the config (dotted): a top-level key under a
    group (``pruning.sparsity=0.9`` -> "sparsity is a top-level key: sparsity=0.9"), or a group's key given bare or
    under another group (``lr=1e-3`` -> "did you mean agent.lr? agent.lr=1e-3"). None when its name is nowhere else."""
    leaf = full_key.rpartition(".")[2]
    found = sorted(k for k in keys if k.rpartition(".")[2] == leaf and k != full_key)
    given = f"={value}" if value is not None else ""
    if leaf in found:
        return f"{leaf} is a top-level key: {leaf}{given}"
    if len(found) == 1:
        return f"did you mean {found[0]}? {found[0]}{given}"
    if found:
        return f"did you mean one of {', '.join(found)}?"
    return None
