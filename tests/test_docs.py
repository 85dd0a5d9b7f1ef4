"""The docs: the configuration page generated from the schemas, the site built strictly, and a short README whose
links resolve. The page replaces the README's hand-written key tables, so a default can only be stated once."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

import suite
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("gen_config", ROOT / "docs" / "gen_config.py")
gen_config = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_config)


def flat(node, prefix=""):
    """A config node as {dotted key: value}, through OmegaConf rather than the generator's own dataclass walk."""
    out = {}
    for key, value in node.items_ex(resolve=False):
        if OmegaConf.is_missing(node, key):
            continue
        value = node._get_node(key)
        if OmegaConf.is_dict(value):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value._value()
    return out


def schemas():
    yield "", suite.Config
    for group, registry in suite.REGISTRIES.items():
        for option in registry.specs():
            yield f"{group}.", option.config


@pytest.mark.parametrize("prefix, schema", list(schemas()), ids=lambda x: getattr(x, "__name__", x))
def test_every_key_of_every_schema_is_on_the_page_with_its_default_and_a_meaning(prefix, schema):
    rows = gen_config.rows(schema)
    node = OmegaConf.structured(schema)
    expected = {k: v for k, v in flat(node).items() if k != "name" and k.split(".")[0] not in suite.REGISTRIES}
    assert [k for k, *_ in rows] == list(expected)
    for key, default, _, meaning in rows:
        assert default == gen_config.render(expected[key]).replace("???", "(required)"), key
        assert meaning.strip(), f"{prefix}{key} has no comment in {schema.__name__}: the page would say nothing"


def row(schema, key):
    return next(r for r in gen_config.rows(schema) if r[0] == key)


def test_the_page_states_the_papers_numbers():
    """Values from the papers' code (protocol.md), rendered as a reader sees them."""
    agents, methods, nets = suite.REGISTRIES["agent"], suite.REGISTRIES["pruning"], suite.REGISTRIES["network"]
    assert row(suite.Config, "sparsity")[1] == "0.0"
    assert row(suite.Config, "total_env_steps")[1] == "10,000,000"
    assert row(suite.Config, "health.taus")[1:3] == ("[0.0, 0.025, 0.1]", "list of float")
    assert row(agents.get("dqn").config, "lr")[1] == "6.25e-05"
    assert row(agents.get("dqn").config, "loss")[1:3] == ("mse", "`mse`, `huber`")
    assert row(agents.get("rainbow").config, "n_step")[1] == "3"
    assert row(agents.get("sac").config, "target_entropy")[1:3] == ("null", "float, `null`")
    assert [row(methods.get("gmp").config, k)[1] for k in ("start_frac", "end_frac", "update_freq_updates")] == \
        ["0.2", "0.8", "1,000"]
    assert row(nets.get("nature_cnn").config, "padding")[1:3] == ("same", "`same`, `valid`")


def test_the_page_has_a_section_per_option_and_every_tuned_file():
    page = gen_config.page()
    for group, registry in suite.REGISTRIES.items():
        for option in registry.specs():
            assert f"### `{group}={option.name}`" in page
    for path in (ROOT / "conf" / "tuned").rglob("*.yaml"):
        assert f"### `{path.relative_to(ROOT / 'conf' / 'tuned').with_suffix('').as_posix()}`" in page


def test_group_files_set_nothing_so_the_schema_default_is_what_conf_composes():
    for path in ROOT.glob("conf/*/*.yaml"):
        if path.parent.name in suite.REGISTRIES:
            body = yaml.safe_load(path.read_text())
            assert set(body) == {"defaults"}, path
            assert all(isinstance(e, str) and e.startswith("/schema/") or "override" in str(e)
                       for e in body["defaults"]), path


def test_a_field_comment_is_read_from_above_and_from_its_line():
    comments = gen_config.field_comments(suite.REGISTRIES["env"].get("atari").config)
    assert comments["profile"].startswith("dopamine: sticky actions p = 0.25") and "as CleanRL" in comments["profile"]
    assert comments["id"].startswith("ALE game name")


def test_the_committed_configuration_page_is_what_the_schemas_give():
    """The README links docs/configuration.md, the page the site builds: committed so that the link opens on a
    code host and in a clone, and rewritten by ``python docs/gen_config.py --write`` when a schema changes."""
    assert gen_config.COMMITTED.read_text() == gen_config.page(), "run: python docs/gen_config.py --write"


def test_the_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 170  # with its Cite section's BibTeX
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


AGENT_PAGES = {**{name: name for name in suite.REGISTRIES["agent"].names()}, "cql": "cql"}  # offline: +offline=cql
PAGE_SECTIONS = ("## Tuned presets", "## Implementation details", "## Deliberate deviations",
                 "## Benchmark evidence today", "## Benchmark against published numbers",
                 "## Sparse methods and adapters")


@pytest.mark.parametrize("agent", sorted(AGENT_PAGES))
def test_every_agent_has_a_page_with_the_sections_of_issue_44_in_the_nav(agent):
    """docs/agents/<agent>.md: the command, the tuned presets (each conf/tuned/<agent>_*.yaml named), numbered
    implementation details citing lines of reference code, and the benchmark sections; listed in mkdocs.yml."""
    page = (ROOT / "docs" / "agents" / f"{AGENT_PAGES[agent]}.md").read_text()
    assert "python train.py" in page
    positions = [page.find(section) for section in PAGE_SECTIONS]
    assert -1 not in positions and positions == sorted(positions), dict(zip(PAGE_SECTIONS, positions, strict=True))
    details = page[positions[1]:positions[2]]
    assert re.search(r"^1\. \*\*", details, re.M) and re.search(r"L\d+-L\d+", details)
    for path in (ROOT / "conf" / "tuned").glob(f"{agent}_*.yaml"):
        assert f"tuned/{path.name}" in page, path.name
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    assert f"agents/{AGENT_PAGES[agent]}.md" in str(nav)


def test_the_sac_page_quotes_dopamines_halfcheetah_baseline_as_the_data_file_holds_it():
    """The numbers beside which the HalfCheetah benchmark will be set come from analysis/data, not from memory."""
    from analysis import dopamine_baselines

    page = (ROOT / "docs" / "agents" / "sac.md").read_text()
    stats = dopamine_baselines.across_runs(dopamine_baselines.load("halfcheetah")).set_index("iteration")
    for iteration in (90, 100):
        row = stats.loc[iteration]
        for value in (row["mean"], row["std"], row.ci_low, row.ci_high):
            assert f"{value:,.1f}" in page, (iteration, value)
    assert f"{stats.loc[1000, 'mean']:,.1f}" in page


def test_the_site_builds_strictly(tmp_path):
    """Broken links, unknown anchors and pages missing from the nav fail the build (``strict: true``)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    config_page = (tmp_path / "site" / "configuration" / "index.html").read_text()
    assert "pruning.update_freq_updates" in config_page and "agent.noisy_sigma0" in config_page
    assert (tmp_path / "site" / "figures" / "minatar_study" / "learning_curves_per_game.png").exists()
    assert "class=\"doc doc-heading\"" in (tmp_path / "site" / "architecture" / "index.html").read_text()
    for page in AGENT_PAGES.values():
        assert (tmp_path / "site" / "agents" / page / "index.html").exists(), page


def bibtex_entries(text: str) -> dict[str, str]:
    """{key: entry} of every ``@type{key, ...}`` in the ```bibtex blocks of a Markdown text; braces must balance."""
    entries = {}
    for block in re.findall(r"```bibtex\n(.*?)```", text, re.S):
        for m in re.finditer(r"@(\w+)\{([\w-]+),", block):
            depth, i = 0, m.end() - len(m.group(2)) - 2
            for j in range(i, len(block)):
                depth += {"{": 1, "}": -1}.get(block[j], 0)
                if depth == 0:
                    break
            assert depth == 0, m.group(2)
            assert m.group(2) not in entries, m.group(2)
            entries[m.group(2)] = block[m.start():j + 1]
    return entries


def test_license_citation_and_cite_section_agree_with_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()  # read by pattern: tomllib is Python 3.11+, the suite 3.10+
    project = {"version": re.search(r'^version = "(.+)"', pyproject, re.M).group(1),
               "license": {"text": re.search(r'^license = \{ text = "(.+)" \}', pyproject, re.M).group(1)}}
    license_text = (ROOT / "LICENSE").read_text()
    assert project["license"]["text"] == "Apache-2.0"
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == project["license"]["text"]
    assert cff["version"] == project["version"] and cff["title"].startswith("pedrl")
    assert cff["references"][0]["title"].startswith("In value-based deep reinforcement learning, a pruned network")
    readme = (ROOT / "README.md").read_text()
    assert "\n## Cite\n" in readme
    ours = bibtex_entries(readme)
    assert set(ours) == {"pedrl2026", "obandoceron2024pruned"} and f"version = {{{project['version']}}}" in ours[
        "pedrl2026"]
    papers = bibtex_entries((ROOT / "docs" / "cite.md").read_text())
    assert ours.items() <= papers.items()
    for key in ("mnih2015human", "hessel2018rainbow", "dabney2018implicit", "vieillard2020munchausen",
                "haarnoja2018soft", "zhu2017prune", "mocanu2018scalable", "evci2020rigging", "frankle2019lottery",
                "sokar2023dormant", "nikishin2022primacy", "hu2022lora", "kopiczko2024vera", "wang2023read",
                "kumar2020conservative", "espeholt2018impala", "agarwal2021deep"):
        assert key in papers, key


def test_the_home_page_shows_the_headline_figure_and_every_part_of_the_readme():
    """docs/index.md embeds the study's scaling figure (gen_figures.py puts analysis/figures/ into the site) and
    links every page the README's table of parts links, offline RL included."""
    index = (ROOT / "docs" / "index.md").read_text()
    assert "](figures/minatar_study/scaling_law.png)" in index
    assert (ROOT / "analysis" / "figures" / "minatar_study" / "scaling_law.png").is_file()
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| part | where to read |"):readme.index("## Set up and train")]
    pages = set(re.findall(r"\]\(docs/([\w-]+\.md)", table))
    assert "offline.md" in pages
    for page in pages:
        assert f"]({page}" in index, page
