"""Puts the committed figures (``analysis/figures/``) into the site at build time, so pages link them as
``figures/<path>`` and the repository keeps one copy of each."""

from pathlib import Path

import mkdocs_gen_files

FIGURES = Path(__file__).resolve().parent.parent / "analysis" / "figures"

for path in sorted(FIGURES.rglob("*.png")):
    with mkdocs_gen_files.open(f"figures/{path.relative_to(FIGURES).as_posix()}", "wb") as out:
        out.write(path.read_bytes())
