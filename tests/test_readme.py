"""The README's config tables against the schema: every default the README states is the dataclass default of the
option it names, so the schema stays the one source of each number (the YAML group files repeat none of them)."""

import dataclasses
import math
import re
from enum import Enum

import pytest
import yaml

import suite
from tests.conftest import ROOT

# the options a table's rows default to, by the README section that holds the table
SECTION_OPTIONS = {"Config keys": {"agent": "dqn", "env": "atari", "network": "nature_cnn", "pruning": "gmp"},
                   "SAC": {"agent": "sac", "env": "dmc", "network": "mlp", "pruning": "gmp"}}


def split_top(cell: str) -> list[str]:
    """Split on ", " outside brackets (so "[0, 0.1], 0.01" is two values and "1,000" one)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(cell):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth == 0 and cell.startswith(", ", i):
            parts.append(cell[start:i])
            start = i + 2
    return [p.strip() for p in [*parts, cell[start:]]]


def parse(text: str):
    """A README value: numbers with thousands separators and a Unicode minus, null, booleans, lists, words."""
    t = text.strip().replace("−", "-").strip("`")
    if t.startswith("["):
        return [parse(x) for x in split_top(t[1:-1])] if t != "[]" else []
    if t in ("null", "true", "false"):
        return {"null": None, "true": True, "false": False}[t]
    if re.fullmatch(r"-?[\d,]*\.?\d+(e-?\d+)?", t):
        return float(t.replace(",", ""))
    return t


def same(readme, schema) -> bool:
    if isinstance(schema, Enum):
        schema = schema.value
    if isinstance(schema, (list, tuple)):
        return isinstance(readme, list) and len(readme) == len(schema) and all(map(same, readme, schema))
    if isinstance(schema, bool) or schema is None or isinstance(readme, str):
        return readme == schema
    return isinstance(readme, float) and math.isclose(readme, schema)


def schema_default(key: str, options: dict[str, str]):
    """The dataclass default of ``key``: a group key is looked up in the named option's schema, a top-level one in
    ``suite.Config`` (nested dataclasses followed)."""
    group, _, rest = key.partition(".")
    if group in suite.REGISTRIES and rest:
        node, path = suite.REGISTRIES[group].get(options[group]).config(), rest.split(".")
    else:
        node, path = suite.Config(agent=None, env=None, network=None, pruning=None), key.split(".")
    for name in path:
        if not dataclasses.is_dataclass(node) or name not in {f.name for f in dataclasses.fields(node)}:
            raise KeyError(key)
        node = getattr(node, name)
    return node


def group_defaults() -> dict[str, str]:
    """The group options ``conf/config.yaml`` selects by default."""
    entries = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())["defaults"]
    return {k: v for e in entries if isinstance(e, dict) for k, v in e.items() if k in suite.REGISTRIES}


def readme_rows():
    """(section, keys, values, meaning) for every row of a ``| key | default | meaning |`` table."""
    section, in_table = None, False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("| key | default | meaning |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
        if in_table and not line.startswith("|---"):
            key_cell, default_cell, meaning = (c.strip() for c in line.strip("|").split(" | ", 2))
            keys = re.findall(r"`([^`]+)`", key_cell)
            prefix = keys[0].rpartition(".")[0]
            keys = [keys[0], *(k if "." in k or not prefix else f"{prefix}.{k}" for k in keys[1:])]
            yield section, keys, default_cell, meaning


ROWS = list(readme_rows())


def test_the_readme_has_its_config_tables():
    assert {s for s, *_ in ROWS} == set(SECTION_OPTIONS) and len(ROWS) >= 50


@pytest.mark.parametrize("section, keys, cell, meaning", ROWS, ids=[" ".join(r[1]) for r in ROWS])
def test_readme_default_is_the_schemas(section, keys, cell, meaning):
    options = dict(SECTION_OPTIONS[section])
    only = re.match(r"`?(\w+)`? only", meaning)
    if only:  # "Rainbow only: ...", "`dmc` only: ...": the row is that option's
        group = keys[0].split(".")[0]
        options[group] = suite.REGISTRIES[group].get(only.group(1).lower()).name
    values = split_top(cell)
    if len(keys) == 1 and keys[0] in suite.REGISTRIES:  # the group's own row: which option conf/ selects
        assert values == [group_defaults()[keys[0]]]
        return
    annotated = [re.fullmatch(r"(.+) \((\w+)\)", v) for v in values]
    if len(keys) == 1 and len(values) > 1 and all(annotated):  # "1 (DQN), 3 (Rainbow)": one per option
        group = keys[0].split(".")[0]
        for m in annotated:
            per_option = {**options, group: m.group(2).lower()}
            assert same(parse(m.group(1)), schema_default(keys[0], per_option)), (keys[0], m.group(0))
        return
    if len(values) == 1 < len(keys):  # "false" for three switches
        values = values * len(keys)
    assert len(values) == len(keys), (keys, cell)
    for key, value in zip(keys, values, strict=True):
        expected = schema_default(key, options)
        assert same(parse(value), expected), f"README says {key} = {value}, the schema's default is {expected!r}"


def test_the_check_catches_a_wrong_number():
    assert not same(parse("10,000"), 20_000) and same(parse("20,000"), 20_000)
    assert same(parse("[0, 0.025, 0.1]"), [0.0, 0.025, 0.1]) and same(parse("−5"), -5.0)
    assert split_top("[16, 32, 32], 2") == ["[16, 32, 32]", "2"] and split_top("1,000") == ["1,000"]
