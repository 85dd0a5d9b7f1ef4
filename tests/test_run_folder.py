"""The default run folder: named from the command line, so the same command reaches the same folder, and a folder
says what ran (method and sparsity when not dense, offline for an offline run)."""

import pytest
from omegaconf import OmegaConf

from suite import preflight
from training.preflight import UserError, compose
from training.run_folder import default_name


def folder(*overrides: str) -> str:
    """``hydra.run.dir`` as Hydra resolves it for ``python train.py <overrides>``."""
    return str(compose(list(overrides), with_hydra=True).hydra.run.dir)


@pytest.mark.parametrize("overrides, expected", [
    (["agent=dqn", "env=classic"], "runs/dqn_CartPole-v1_s0"),
    (["env=classic", "sparsity=0.9"], "runs/dqn_CartPole-v1_gmp0.9_s0"),
    (["env=minatar", "env.id=breakout", "sparsity=0.95", "pruning=rigl", "seed=3"], "runs/dqn_breakout_rigl0.95_s3"),
    (["agent=sac", "env=dmc", "env.id=walker-walk", "sparsity=0.9"], "runs/sac_walker-walk_gmp0.9_s0"),
    # the dataset and the +offline option are other overrides: a hash of 8 hex digits
    (["env=minatar", "env.id=space_invaders", "+offline=cql", "offline.dataset=data/si"],
     "runs/dqn_space_invaders_offline_s0_<hash>"),
])
def test_the_folder_says_what_ran(overrides, expected):
    name = folder(*overrides)
    prefix, hashed, _ = expected.partition("<hash>")
    assert name.startswith(prefix) and len(name) == len(prefix) + (8 if hashed else 0), name


def test_the_same_run_spelled_otherwise_or_resumed_with_free_keys_reaches_the_same_folder():
    base = folder("env=classic", "agent.lr=1e-3", "network.hidden_sizes=[64,64]")
    assert base.startswith("runs/dqn_CartPole-v1_s0_")
    assert folder("network.hidden_sizes=[64, 64]", "agent.lr=0.001", "env=classic") == base
    assert folder("env=classic", "agent.lr=1e-3", "network.hidden_sizes=[64,64]", "progress=false",
                  "checkpoint.keep=3", "device=cpu", "require_clean_tree=true") == base


def test_other_configs_get_other_folders():
    names = {folder("env=classic"), folder("env=classic", "agent.lr=1e-3"), folder("env=classic", "agent.lr=1e-2"),
             folder("env=classic", "seed=1"), folder("env=classic", "sparsity=0.5"),
             folder("env=classic", "sparsity=0.5", "pruning=set"), folder("env=classic", "total_env_steps=5000"),
             folder("env=minatar", "env.id=breakout", "+offline=cql", "offline.dataset=data/a"),
             folder("env=minatar", "env.id=breakout", "+offline=cql", "offline.dataset=data/b")}
    assert len(names) == 9


def test_the_name_is_computed_from_the_config_alone_as_the_preflight_does():
    overrides = ["env=classic", "sparsity=0.9", "agent.lr=1e-3"]
    assert "runs/" + default_name(compose(overrides), overrides) == folder(*overrides)


def test_a_default_folder_holding_another_config_is_refused_before_hydra_opens_it(tmp_path, monkeypatch):
    """Two configs meet in one default folder when a default changed between them (a ``git pull``): the command is
    refused in one line naming the differences, and the folder is left as it is."""
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / folder("env=classic")
    run_dir.mkdir(parents=True)
    other = compose(["env=classic", "agent.lr=0.5"])
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(other, resolve=True))
    with pytest.raises(UserError) as e:
        preflight(["env=classic"])
    assert str(e.value).startswith("hydra.run.dir='runs/dqn_CartPole-v1_s0' is not allowed; it holds a run with a "
                                   "different config (agent.lr: 0.5 -> 0.00025)")
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]
