"""Writes the site's configuration page from the schemas, so the page cannot drift from the code.

Every key, default and allowed value is read from the dataclasses (``suite.Config`` and each registered plugin's
schema); each meaning is the comment on the field's line or the comment lines just above it. mkdocs-gen-files runs
this file at build time (``mkdocs.yml``); ``tests/test_docs.py`` imports ``rows`` and ``page``. The page is also
committed as ``docs/configuration.md``, so the README's link opens it on a code host and in a clone:
``python docs/gen_config.py --write`` rewrites it, and a test fails when it is out of date.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import typing
from enum import Enum
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import suite  # noqa: E402

GROUP_INTRO = {
    "agent": "The learning algorithm. Every period is in agent steps (one agent step = one env step = 4 Atari frames) "
             "unless its name says `_updates`.",
    "env": "The environment family; `env.id` picks the game or task inside it.",
    "network": "The network builder the agent takes its networks from.",
    "pruning": "How the networks the agent lists are sparsified; `sparsity` (top level) is the final sparsity.",
    "adapter": "A parameter-efficient adapter on the frozen networks of `init.from_run` (transfer).",
}


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment: the comment lines right above the field, then the one at the end of its line."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    trailing = {tok.start[0]: tok.string[1:].strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    comments = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, row = [], node.lineno - 1
            while row >= 1 and lines[row - 1].strip().startswith("#"):
                above.insert(0, lines[row - 1].strip()[1:].strip())
                row -= 1
            end = trailing.get(node.end_lineno) if not lines[node.end_lineno - 1].strip().startswith("#") else None
            comments[node.target.id] = " ".join([*above, *([end] if end else [])])
    return comments


def meanings(cls: type) -> dict[str, str]:
    """Comments of ``cls``'s fields, a subclass's comment winning over its base's for a field both declare."""
    found: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base) and base is not object:
            found.update({k: v for k, v in field_comments(base).items() if v or k not in found})
    return found


def default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def render(value) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if value == "":
        return '`""`'
    return str(value)


def allowed(hint) -> str:
    """The values a key takes, from its type: an enum's members, true/false, or the type's name."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    nullable = type(None) in typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) and len(args) == 1:
        hint = args[0]
    if inspect.isclass(hint) and issubclass(hint, Enum):
        text = ", ".join(f"`{m.value}`" for m in hint)
    elif hint is bool:
        text = "`true`, `false`"
    elif typing.get_origin(hint) is list:
        text = f"list of {getattr(typing.get_args(hint)[0], '__name__', 'values')}"
    elif hint is typing.Any:
        text = "see meaning"
    else:
        text = getattr(hint, "__name__", str(hint))
    return text + (", `null`" if nullable else "")


def rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, default, allowed values, meaning) for every field of ``cls``, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    notes = meanings(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name == "name" or (cls is suite.Config and f.name in suite.REGISTRIES):
            continue
        key = f"{prefix}{f.name}"
        value = default_of(f)
        if dataclasses.is_dataclass(value):
            out += rows(type(value), f"{key}.")
            continue
        out.append((key, render(value), allowed(hints[f.name]), notes.get(f.name, "")))
    return out


def table(entries: list[tuple[str, str, str, str]]) -> list[str]:
    lines = ["| key | default | values | meaning |", "|---|---|---|---|"]
    lines += [f"| `{k}` | {d} | {a} | {m.replace('|', '/')} |" for k, d, a, m in entries]
    return lines


def group_defaults() -> dict[str, str]:
    import yaml
    entries = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())["defaults"]
    return {k: v for e in entries if isinstance(e, dict) for k, v in e.items()}


def docstring(cls: type) -> str:
    """The schema's own docstring, else its nearest base's (a dataclass without one gets its signature instead)."""
    for base in cls.__mro__:
        doc = base.__dict__.get("__doc__")
        if dataclasses.is_dataclass(base) and doc and not doc.startswith(f"{base.__name__}("):
            return inspect.cleandoc(doc).replace("``", "`")
    return ""


def tuned_files() -> list[str]:
    lines = []
    for path in sorted((ROOT / "conf" / "tuned").rglob("*.yaml")):
        name = path.relative_to(ROOT / "conf" / "tuned").with_suffix("").as_posix()
        body = "\n".join(line for line in path.read_text().splitlines() if line.strip())
        lines += [f"### `{name}`", "", "```yaml", body, "```", ""]
    return lines


def page() -> str:
    """The whole configuration page as Markdown."""
    chosen = group_defaults()
    lines = [
        "# Configuration",
        "",
        "Generated from the schemas by `docs/gen_config.py` when the site is built (and committed as "
        "`docs/configuration.md`, checked by a test): every key, its default, the "
        "values it takes and its meaning come from the dataclasses in the code, so this page cannot disagree with "
        "them. Set any key on the command line (`python train.py agent=rainbow agent.lr=1e-4 sparsity=0.9`); a "
        "wrong key or value is refused in one line before any work starts.",
        "",
        "`conf/config.yaml` composes the groups below; `conf/tuned/<agent>_<env>.yaml` then applies per-pair "
        "settings (listed at the end) before your overrides, and `tuned=<file>` picks another one.",
        "",
        "## Top-level keys",
        "",
        *table(rows(suite.Config)),
        "",
    ]
    for group, registry in suite.REGISTRIES.items():
        lines += [f"## `{group}`", "", GROUP_INTRO[group], "",
                  f"Options: {', '.join(f'`{s.name}`' for s in registry.specs())}; default "
                  f"`{chosen.get(group, 'none')}` (`conf/config.yaml`).", ""]
        for spec in registry.specs():
            doc = docstring(spec.config)
            lines += [f"### `{group}={spec.name}`", "", *([doc, ""] if doc else [])]
            entries = [(f"{group}.{k}", d, a, m) for k, d, a, m in rows(spec.config)]
            lines += [*(table(entries) if entries else ["No keys."]), ""]
    lines += ["## Tuned settings (`conf/tuned/`)", "",
              "Applied after the group defaults when agent and env match the file name (or named with `tuned=`).",
              "", *tuned_files()]
    return "\n".join(lines) + "\n"


COMMITTED = ROOT / "docs" / "configuration.md"

if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    COMMITTED.write_text(page())
elif __name__ in ("__main__", "<run_path>"):
    import mkdocs_gen_files

    with mkdocs_gen_files.open("configuration.md", "w") as out:
        out.write(page())
