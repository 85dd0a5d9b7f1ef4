"""init.from_run and adapter=lora on real networks, real updates and real runs."""

import copy
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import train
from adapters.lora import add_lora
from adapters.merge import merged_state_dict
from adapters.read import add_read
from adapters.vera import add_vera
from agents.dqn import DQN, DQNConfig
from agents.networks import ImpalaConfig, MinAtarCNNConfig, MLPConfig, NatureCNNConfig, build_network
from evaluate import load_exported
from pruning.measure import prunable_weights
from tests.conftest import run_train
from tests.test_resume import assert_same_run, interrupt
from training.checkpoint import Checkpointer

NETWORKS = [(MLPConfig(), (4,), 2), (MinAtarCNNConfig(), (4, 10, 10), 3), (NatureCNNConfig(), (4, 84, 84), 6),
            (ImpalaConfig(), (4, 84, 84), 6)]


ADAPTERS = {"lora": (lambda net: add_lora(net, 4, 8, [], False), "lora_B"),
            "vera": (lambda net: add_vera(net, 16, 0.1, 0, [], False), "vera_b"),
            "read": (lambda net: add_read(net, 8, False), "proj.weight")}


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.parametrize("cfg, obs_shape, n_out", NETWORKS, ids=lambda x: getattr(x, "name", ""))
def test_adapters_start_as_the_source_network_and_keep_its_names(cfg, obs_shape, n_out, adapter):
    torch.manual_seed(0)
    source = build_network(cfg, obs_shape, n_out)
    add, zero_at_init = ADAPTERS[adapter]
    adapted = add(copy.deepcopy(source))
    x = torch.randn(3, *obs_shape)
    assert torch.equal(adapted(x), source(x))  # the adapted network is the source exactly at init
    target = copy.deepcopy(adapted)  # a DQN target: its own adapter, the same outputs
    assert torch.equal(target(x), source(x))
    names = set(source.state_dict())
    assert names <= set(adapted.state_dict())  # the backbone's names unchanged, the adapters' beside them
    assert set(prunable_weights(adapted)) == set(prunable_weights(source))  # only backbone weights are prunable
    assert all(not p.requires_grad for n, p in adapted.named_parameters() if n in names)
    with torch.no_grad():  # non-zero adapters move the outputs
        for n, p in adapted.named_parameters():
            if n.endswith(zero_at_init):
                p.normal_()
    out = adapted(x)
    assert not torch.equal(out, source(x))
    out.sum().backward()
    assert all(p.grad is None for n, p in adapted.named_parameters() if n in names)  # nothing reaches the backbone


def test_vera_shares_one_projection_pair_and_counts_r_plus_d_out_per_layer():
    net = add_vera(build_network(MLPConfig(), (4,), 2), 256, 0.1, 7, [], False)
    fc1, fc2, head = net.features.fc1, net.features.fc2, net.head
    assert torch.equal(fc1.vera_A, fc2.vera_A[:, :4]) and torch.equal(head.vera_A, fc2.vera_A[:, :84])
    assert torch.equal(fc2.vera_B, fc1.vera_B[:84]) and torch.equal(head.vera_B, fc1.vera_B[:2])
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == (256 + 120) + (256 + 84) + (256 + 2)
    assert torch.all(fc1.vera_d == 0.1) and torch.count_nonzero(fc1.vera_b) == 0
    again = add_vera(build_network(MLPConfig(), (4,), 2), 256, 0.1, 7, [], False)
    assert torch.equal(again.features.fc2.vera_A, fc2.vera_A)  # regenerated from projection_seed
    assert "features.fc1.vera_A" in net.state_dict()  # and stored in checkpoints


def test_lora_parameter_count_by_formula_and_the_optimizer_holds_only_them():
    """Σ r·(c_in·k_h·k_w + c_out) over the Nature CNN (SAME) with Pong's 6-action head at r = 8: 82,224."""
    agent = DQN(DQNConfig(), NatureCNNConfig(), (4, 84, 84), 6, np.random.default_rng(0), torch.device("cpu"),
                transform=lambda net: add_lora(net, 8, 8, [], False))
    trainable = [p for p in agent.online.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == 8 * (4 * 64 + 32) + 8 * (32 * 16 + 64) + 8 * (64 * 9 + 64) + \
        8 * (7744 + 512) + 8 * (512 + 6) == 82_224
    held = {id(p) for g in agent.optimizer.param_groups for p in g["params"]}
    assert held == {id(p) for p in trainable}


CARTPOLE = ["env=classic", "agent.learning_starts=200", "eval.episodes=1", "progress=false", "health.every_updates=500"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished CartPole run pruned to 50%, the backbone of the runs below."""
    run_dir = tmp_path_factory.mktemp("source")
    out = run_train(*CARTPOLE, "total_env_steps=1000", "sparsity=0.5", "pruning.update_freq_updates=100",
                    f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-2000:]
    return run_dir


def tree(folder):
    return sorted((str(p.relative_to(folder)), p.read_bytes()) for p in folder.rglob("*") if p.is_file())


def source_state(run_dir):
    path = Checkpointer(run_dir / "checkpoints", 1).complete()[0]
    return Checkpointer.load_state(path)


@pytest.mark.parametrize("adapter", ["lora", "vera", "read"])
@pytest.mark.parametrize("agent", ["dqn", "sac"])
def test_after_real_updates_every_frozen_tensor_is_the_sources(compose_cfg, tmp_path, agent, adapter):
    """DQN with its target copies, SAC with its Polyak averages: 50+ updates later every backbone tensor equals the
    source checkpoint's bit for bit, and the pruned backbone's zeros are where they were."""
    extra = ["agent=sac", "env.id=Pendulum-v1", "network.hidden_sizes=[32,32]"] if agent == "sac" else []
    src = tmp_path / "src"
    assert run_train(*CARTPOLE, *extra, "total_env_steps=600", "sparsity=0.5", "pruning.update_freq_updates=50",
                     f"hydra.run.dir={src}").returncode == 0
    before = tree(src)
    summary = train.train(compose_cfg(*CARTPOLE, *extra, "total_env_steps=500", f"adapter={adapter}",
                                      f"init.from_run={src}"), tmp_path / "run")
    assert summary["updates"] >= 50 and summary["init"]["from_run"] == str(src)
    state, sha = source_state(src)
    assert summary["init"]["sha256"] == sha and summary["init"]["step"] == 600
    final, _ = source_state(tmp_path / "run")
    for name, weights in state["agent"].items():
        if not isinstance(weights, dict) or not all(torch.is_tensor(v) for v in weights.values()):
            continue  # optimizers, counters
        if name not in final["agent"] or name.startswith("target"):
            continue
        for k, v in weights.items():
            assert torch.equal(final["agent"][name][k], v), (name, k)
        trained = {"lora": "lora_B", "vera": "vera_b", "read": "read.proj.weight"}[adapter]
        assert any(k.endswith(trained) and torch.count_nonzero(t) for k, t in final["agent"][name].items())
    assert summary["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert tree(src) == before  # the source folder is only read


def test_lora_kill_and_resume_is_exact_and_the_source_is_untouched(tmp_path, source):
    before = tree(source)
    args = [*CARTPOLE, "total_env_steps=1600", "adapter=lora", f"init.from_run={source}",
            "checkpoint.every_env_steps=400", "eval.every_env_steps=800"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_train(*args, f"hydra.run.dir={a}").returncode == 0
    killed = interrupt("SIGKILL", "step", 1000, [*args, f"hydra.run.dir={b}"])
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run_train(*args, f"hydra.run.dir={b}")
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr[-2000:]
    assert_same_run(a, b)
    assert tree(source) == before


@pytest.mark.parametrize("overrides, words", [
    (["agent=rainbow"], ["init.from_run", "agent=dqn, this one agent=rainbow"]),
    (["env.id=Acrobot-v1"], ["init.from_run", "does not fit this run's observations", "(120, 4) there"]),
    (["network.width=2"], ["init.from_run", "network"]),
    (["init.step=5"], ["init.step='5'", "checkpoints at agent steps 1000"]),
    (["adapter=lora", "adapter.targets=[features.fc9]"], ["adapter.targets", "features.fc1, features.fc2, head"]),
])
def test_a_source_that_does_not_fit_is_refused_in_one_line(tmp_path, source, overrides, words):
    out = run_train(*CARTPOLE, f"init.from_run={source}", *overrides, f"hydra.run.dir={tmp_path / 'run'}",
                    timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not (tmp_path / "run").exists()


def test_another_action_count_gets_a_new_trained_head_unless_refused(tmp_path):
    """MinAtar Breakout (3 actions) to Asterix (5 actions, the same 4 channels): a new head, trained."""
    src = tmp_path / "src"
    args = ["env=minatar", "total_env_steps=600", "agent.learning_starts=200", "eval.episodes=1", "progress=false"]
    assert run_train(*args, "env.id=breakout", f"hydra.run.dir={src}").returncode == 0
    refused = run_train(*args, "env.id=asterix", f"init.from_run={src}", "adapter=lora", "adapter.train_head=false",
                        f"hydra.run.dir={tmp_path / 'no'}", timeout=120)
    assert refused.returncode == 2 and "adapter.train_head" in refused.stderr and "another action count" in \
        refused.stderr
    out = run_train(*args, "env.id=asterix", f"init.from_run={src}", "adapter=lora", f"hydra.run.dir={tmp_path / 'ok'}")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    # LoRA on conv1 and fc1 (r = 8) and the new head's 128·5 + 5
    assert summary["num_trainable_params"]["online"] == 8 * (4 * 9 + 16) + 8 * (1024 + 128) + 128 * 5 + 5
    assert summary["adapter_bytes"]["online"] == 4 * summary["num_trainable_params"]["online"]


@pytest.mark.parametrize("adapter", ["lora", "vera"])
@pytest.mark.parametrize("cfg, obs_shape, n_out", NETWORKS, ids=lambda x: getattr(x, "name", ""))
def test_the_dense_export_equals_the_unmerged_network(cfg, obs_shape, n_out, adapter):
    torch.manual_seed(0)
    source = build_network(cfg, obs_shape, n_out)
    adapted = ADAPTERS[adapter][0](copy.deepcopy(source))
    with torch.no_grad():
        for n, p in adapted.named_parameters():
            if n.endswith(("lora_B", "vera_b")):
                p.normal_(0, 0.1)
    plain = copy.deepcopy(source)
    plain.load_state_dict(merged_state_dict(adapted, masked=False))
    x = torch.randn(4, *obs_shape)
    torch.testing.assert_close(plain(x), adapted(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(plain(x), source(x))


def test_a_run_exports_its_merged_networks_masked_keeps_the_zeros(tmp_path, source):
    out = run_train(*CARTPOLE, "total_env_steps=600", "adapter=lora", "adapter.export=masked",
                    f"init.from_run={source}", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    exported = torch.load(tmp_path / summary["export"]["online"]["path"], weights_only=True)
    src, _ = source_state(source)
    for k, v in src["agent"]["online"].items():
        assert torch.equal(exported["state_dict"][k] == 0, v == 0) or k.endswith("bias"), k  # the zeros kept
    assert summary["export"]["online"]["max_output_change"] >= 0 and exported["network"]["name"] == "mlp"
    assert exported["format"] == "pedrl.export/1" and exported["export"] == "masked"
    weights = [v for v in exported["state_dict"].values() if v.dim() > 1]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert exported["sparsity"] == pytest.approx(zeros) and zeros >= 0.5  # the 50%-sparse source's zeros
    agent, env = load_exported(tmp_path / summary["export"]["online"]["path"])  # the same format as evaluate.py's
    state = agent.online.state_dict()
    assert state.keys() == exported["state_dict"].keys()
    assert all(torch.equal(state[k], exported["state_dict"][k]) for k in state)
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(agent.act(obs, 0, eval_mode=True))


def test_sparse_compute_on_a_frozen_backbone_says_it_does_nothing(tmp_path, source):
    out = run_train(*CARTPOLE, "total_env_steps=400", "adapter=lora", f"init.from_run={source}",
                    "pruning.sparse_compute=true", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert ("warning: pruning.sparse_compute=true does nothing with sparsity=0: adapter=lora trains no pruned weight "
            "(the source's pruned backbone is frozen)") in out.stdout
    assert "sparse_compute" not in json.loads((tmp_path / "summary.json").read_text())


def test_the_network_comes_from_the_source_when_the_command_does_not_say(tmp_path):
    """A source trained with network.width=2 on CartPole: the adapter run names neither the env nor the network and
    gets both from it (said in one line); a width the command does set, and that contradicts, is still refused."""
    src = tmp_path / "src"
    out = run_train(*CARTPOLE, "total_env_steps=400", "network.width=2", f"hydra.run.dir={src}")
    assert out.returncode == 0, out.stderr[-2000:]
    args = [a for a in CARTPOLE if a != "env=classic"]
    out = run_train(*args, "total_env_steps=400", "adapter=lora", f"init.from_run={src}",
                    f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "init.from_run: taken from the source run: network=mlp env=classic network.width=2.0" in out.stdout
    config = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert config.network.width == 2.0 and config.env.id == "CartPole-v1" and config.agent.name == "dqn"
    refused = run_train(*CARTPOLE, "adapter=lora", "network.width=3", f"init.from_run={src}",
                        f"hydra.run.dir={tmp_path / 'no'}")
    assert refused.returncode == 2 and "'width': 2.0" in refused.stderr and "'width': 3.0" in refused.stderr
