"""One exception type for user mistakes, so the entry point can print one line instead of a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value the suite refuses, with the key that holds it and what would be accepted."""

    def __init__(self, key: str, value: object, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed; {allowed}")

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key qualified by the config node it came from (``lr`` -> ``agent.lr``)."""
        return ConfigError(f"{prefix}.{self.key}", self.value, self.allowed)


def require(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)
