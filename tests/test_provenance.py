"""A run meant for results/ starts only from committed code, and its folder names the code and the machine."""

import shutil
import subprocess
import sys

import pytest

from core.errors import ConfigError
from tests.conftest import ROOT
from training import run_info

STUDY = ["+sweep=minatar_study", "env.id=breakout", "network.width=1", "sparsity=0", "seed=0"]


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_uncommitted_files_are_tracked_changes_and_new_files_outside_results(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    (tmp_path / "agent.py").write_text("a = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(run_info, "ROOT", tmp_path)
    assert run_info.uncommitted_files() == [] and run_info.code_version()["git_dirty"] is False
    run_info.check_clean_tree(True)
    (tmp_path / "results" / "study" / "run").mkdir(parents=True)
    (tmp_path / "results" / "study" / "run" / "summary.json").write_text("{}")  # a study's new run: not code
    assert run_info.uncommitted_files() == []
    (tmp_path / "agent.py").write_text("a = 2\n")
    (tmp_path / "new_method.py").write_text("b = 1\n")
    assert run_info.uncommitted_files() == ["agent.py", "new_method.py"]
    assert run_info.code_version()["git_dirty"] is True
    with pytest.raises(ConfigError, match=r"uncommitted changes \(agent.py, new_method.py\); commit them, or give "
                                          r"require_clean_tree=false"):
        run_info.check_clean_tree(True)
    run_info.check_clean_tree(False)  # an experiment may run from any tree
    monkeypatch.setattr(run_info, "ROOT", tmp_path / "results")
    shutil.rmtree(tmp_path / ".git")
    assert run_info.uncommitted_files() is None
    with pytest.raises(ConfigError, match="not a git checkout"):
        run_info.check_clean_tree(True)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the project's git history")
def test_the_study_preset_refuses_a_dirty_tree_in_one_line_and_writes_nothing(tmp_path):
    """A clone of the last commit, as a user has it: the study's command passes its checks (``--cfg job`` runs them
    and trains nothing); with one changed file the command is refused before any work, naming the file, and no run
    folder is made; require_clean_tree=false lets an experiment through."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{ROOT}", str(clone))

    def train(*args):
        return subprocess.run([sys.executable, "train.py", *STUDY, *args], cwd=clone, capture_output=True, text=True,
                              timeout=300)

    assert train("--cfg", "job").returncode == 0
    with open(clone / "agents" / "dqn.py", "a") as f:
        f.write("# an edit\n")
    refused = train("total_env_steps=2000")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: require_clean_tree=True is not allowed; the tree has uncommitted changes (agents/dqn.py); commit "
        "them, or give require_clean_tree=false for an experiment whose files are not for results/"]
    assert not list((clone / "results" / "minatar_dqn_1m").glob("*total_env_steps=2000*"))
    assert train("require_clean_tree=false", "--cfg", "job").returncode == 0


def test_the_summary_names_the_code_the_run_started_with_not_the_tree_at_its_end(compose_cfg, tmp_path, monkeypatch):
    """An edit to the tree while a run trains (another session, a branch switch) is not code the run imported: the
    summary and resumes.jsonl record the version read as the process started."""
    import train
    from core.callbacks import Callback

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "agent.py").write_text("a = 1\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(run_info, "ROOT", repo)

    class EditTheTree(Callback):
        def on_train_start(self, trainer):
            (repo / "agent.py").write_text("a = 2\n")

    cfg = compose_cfg("env=classic", "total_env_steps=300", "agent.learning_starts=100", "eval.episodes=1",
                      "progress=false")
    summary = train.train(cfg, tmp_path / "run", callbacks=[EditTheTree()])
    assert summary["code"]["git_dirty"] is False
    assert run_info.code_version()["git_dirty"] is True


def test_the_override_for_experiments_keeps_the_sweeps_folder_names():
    """require_clean_tree=false is not part of a job's folder name, so the study's committed runs are still found
    (and skipped) by a command that gives it."""
    import train  # noqa: F401 - registers the run-folder resolver, as the command line does
    from suite import preflight

    plan = preflight(["+sweep=minatar_study", "network.width=1", "seed=0", "require_clean_tree=false"])
    assert plan.startswith("sweep: 6 runs, 6 of them complete in results/minatar_dqn_1m (skipped): nothing to train")
