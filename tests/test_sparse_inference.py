"""Sparse inference (``pruning.sparse_inference=true``): CSR no-grad forwards of the pruned linear layers equal the
masked dense network, follow the weights as they train, refuse a mask that changes, and leave a dense run alone."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import evaluate
import suite
import train
from pruning import sparse_inference
from pruning.sparse_inference import MaskChangedError, SparseInference, SparseLinear
from pruning.sparse_training import SparseTraining
from tests.conftest import run_train
from tests.test_resume import CARTPOLE, interrupt, metric_rows


class Log:
    def log(self, metrics, step):
        pass


def sparse_agent(overrides, obs_shape, n_out, sparsity=0.95):
    """A real agent pruned by the real static method, then converted with every candidate layer forced to CSR."""
    cfg = suite.compose(["pruning=static", f"sparsity={sparsity}", *overrides])
    agent = suite.AGENTS.get(cfg.agent.name).target(cfg.agent, cfg.network, obs_shape, n_out,
                                                    np.random.default_rng(0), torch.device("cpu"))
    trainer = SimpleNamespace(agent=agent, updates=0, resumed=False, env_step=0, total_updates=100, logger=Log())
    method = SparseTraining(cfg.pruning, sparsity, log_every_updates=10 ** 9, seed=0)
    method.on_train_start(trainer)
    converter = SparseInference(method)
    return agent, method, converter, trainer


@pytest.fixture
def always_convert(monkeypatch):
    monkeypatch.setattr(sparse_inference, "GAIN_REQUIRED", math.inf)


def outputs(net, x):
    """(dense, no_grad, inference_mode) outputs: a forward with gradients on runs the masked dense weights."""
    with torch.enable_grad():
        dense = net(x).detach()
    with torch.no_grad():
        no_grad = net(x)
    with torch.inference_mode():
        inference = net(x).clone()
    return dense, no_grad, inference


def assert_equal_to_dense(net, x):
    dense, *sparse = outputs(net, x)
    for out in sparse:
        torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-5 * float(dense.abs().max()))


def train_steps(agent, nets, inputs, n=3):
    """Optimizer steps through the agent's own optimizers, whose hooks re-apply the masks."""
    for _ in range(n):
        for name, net in nets.items():
            loss = net(inputs[name]).square().mean()
            opt = agent.optimizers()[name if name in agent.optimizers() else "critic"]
            opt.zero_grad()
            loss.backward()
            opt.step()


def test_nature_cnn_acts_from_csr_equal_to_the_masked_dense_network(always_convert):
    agent, method, converter, trainer = sparse_agent(["agent=dqn", "network.padding=same"], (4, 84, 84), 6)
    converter.on_train_start(trainer)
    converted = {d.key: d for d in converter.decisions if d.converted}
    assert list(converted) == ["online/features.fc1.weight", "target:online/features.fc1.weight"]
    assert converted["online/features.fc1.weight"].shape == (512, 7744)
    assert not next(d for d in converter.decisions if d.key == "online/head.weight").converted  # 512×6: small
    layer = converter.layers[0]
    assert layer.module is agent.online.features.fc1 and layer.nnz == int(method.pruner.masks[layer.key].sum())
    g = torch.Generator().manual_seed(0)
    for batch in (1, 7, 32):
        x = torch.randint(0, 256, (batch, 4, 84, 84), generator=g, dtype=torch.uint8)
        assert_equal_to_dense(agent.online, x)
        assert_equal_to_dense(agent.online, x.contiguous(memory_format=torch.channels_last))
    version = layer.weight_version
    x = torch.randint(0, 256, (32, 4, 84, 84), generator=g, dtype=torch.uint8)
    train_steps(agent, {"online": agent.online}, {"online": x})
    assert agent.online.features.fc1.weight._version != version  # the weights moved: the CSR copy is stale
    assert_equal_to_dense(agent.online, x)
    assert layer.weight_version == agent.online.features.fc1.weight._version  # refreshed on the first no-grad use
    with torch.no_grad():  # a fresh network's Q-values are all within 1e-3: spread them so most gaps are clear
        agent.online.head.weight.mul_(100)
    with torch.enable_grad():
        q = agent.online(x).detach()
    top2 = q.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3
    greedy = [agent.greedy(x[i].numpy(), eval_mode=False) for i in range(len(x))]
    assert clear.sum() > 20
    assert (torch.tensor(greedy)[clear] == q.argmax(dim=1)[clear]).all()


def test_sac_width_5_actor_and_critics_equal_the_masked_dense_networks_as_they_train(always_convert):
    agent, method, converter, trainer = sparse_agent(["agent=sac", "env=dmc", "network.width=5"], (5,), 1)
    converter.on_train_start(trainer)
    converted = sorted(d.key for d in converter.decisions if d.converted)
    assert converted == ["actor/features.fc2.weight", "critic1/features.fc2.weight", "critic2/features.fc2.weight",
                         "target:critic1/features.fc2.weight", "target:critic2/features.fc2.weight"]
    assert all(layer.module.weight.shape == (1280, 1280) for layer in converter.layers)
    g = torch.Generator().manual_seed(1)
    obs = {b: torch.randn(b, 5, generator=g) for b in (1, 7, 256)}
    sa = {b: torch.randn(b, 6, generator=g) for b in (1, 7, 256)}
    nets = {"actor": agent.actor, "critic1": agent.critic1, "critic2": agent.critic2}
    for _ in range(2):
        for b in (1, 7, 256):
            assert_equal_to_dense(agent.actor.features, obs[b])
            assert_equal_to_dense(agent.critic1.features, sa[b])
            assert_equal_to_dense(agent.critic2.features, sa[b])
        train_steps(agent, {k: v.features for k, v in nets.items()},
                    {"actor": obs[256], "critic1": sa[256], "critic2": sa[256]})
    for layer in converter.layers:  # the masks held through the steps: zero outside the pattern
        assert int((layer.module.weight != 0).sum()) <= layer.nnz


def test_a_mask_that_changes_after_conversion_is_an_error_naming_the_layer(always_convert):
    agent, method, converter, trainer = sparse_agent(["agent=sac", "env=dmc", "network.width=5"], (5,), 1)
    converter.on_train_start(trainer)
    key = "critic1/features.fc2.weight"
    x = torch.randn(3, 6)
    method.pruner.masks[key][0, :] = 1.0  # in place: a row regrown
    with torch.no_grad(), pytest.raises(MaskChangedError, match=key):
        agent.critic1.features.fc2.weight.add_(0)  # the weight's version moves, so the forward refreshes
        agent.critic1.features(x)
    agent, method, converter, trainer = sparse_agent(["agent=sac", "env=dmc", "network.width=5"], (5,), 1)
    converter.on_train_start(trainer)
    key = "actor/features.fc2.weight"
    method.pruner.masks = {**method.pruner.masks, key: torch.ones_like(method.pruner.masks[key])}  # a new mask
    with torch.no_grad():
        agent.actor.features.fc2.weight.mul_(1)
        with pytest.raises(MaskChangedError, match=key):
            agent.actor.features(torch.randn(1, 5))
    same = {**method.pruner.masks, key: converter.layers[0].mask.clone()}  # an equal copy is not a change
    method.pruner.masks = same
    with torch.no_grad():
        agent.critic2.features(torch.randn(2, 6))
        agent.actor.features.fc2.weight.mul_(1)
        agent.actor.features(torch.randn(1, 5))


def test_a_resumed_run_converts_the_layers_it_chose_without_timing_again(always_convert, monkeypatch):
    agent, method, converter, trainer = sparse_agent(["agent=sac", "env=dmc", "network.width=5"], (5,), 1)
    converter.on_train_start(trainer)
    state = converter.state_dict()
    chosen = [d.key for d in converter.decisions if d.converted]

    def no_timing(*_):
        raise AssertionError("a resumed run must not time the layers again")

    monkeypatch.setattr(sparse_inference, "sparse_over_dense", no_timing)
    monkeypatch.setattr(sparse_inference, "GAIN_REQUIRED", 0.0)  # timing again would convert nothing
    agent, method, converter, trainer = sparse_agent(["agent=sac", "env=dmc", "network.width=5"], (5,), 1)
    converter.load_state_dict(state)
    trainer.resumed, trainer.updates = True, 7
    converter.on_train_start(trainer)
    assert [d.key for d in converter.decisions if d.converted] == chosen
    assert converter.converted_at == 0 and len(converter.layers) == 5  # actor, two critics, two target critics


def test_gmp_converts_after_its_last_mask_update_in_a_real_run(tmp_path, always_convert, capsys):
    """CartPole DQN (width 4: 480 and 336 units) at 90%: 1,000 updates, GMP's window ends at t_end = ⌊0.8·1000⌋ =
    800, so the layers turn CSR after update 801; the last evaluation acts from them, and the summary lists the
    choice."""
    cfg = suite.compose(["agent=dqn", "env=classic", "network.width=4", "sparsity=0.9", "pruning.sparse_inference=true",
                         "total_env_steps=2000", "agent.learning_starts=1000", "pruning.update_freq_updates=50",
                         "eval.every_env_steps=2000", "eval.episodes=2", "progress=false"])
    summary = train.train(cfg, tmp_path)
    assert summary["updates"] == 1000
    si = summary["sparse_inference"]
    assert si["converted_at_update"] == 801
    layers = si["layers"]
    assert layers["online/features.fc2.weight"]["converted"] and layers["online/features.fc2.weight"]["shape"] == [
        336, 480]
    assert not layers["online/features.fc1.weight"]["converted"]  # 4→480: small
    assert "sparse inference at update 801: 2 of 4 layers CSR" in capsys.readouterr().out
    assert math.isfinite(summary["final_eval_return"]) and summary["sparsity"] == pytest.approx(0.9, abs=2e-3)
    assert json.loads((tmp_path / "summary.json").read_text())["sparse_inference"] == si


def test_a_dense_run_converts_nothing_and_says_so(tmp_path):
    out = run_train("agent=dqn", "env=classic", "pruning.sparse_inference=true", "total_env_steps=1200",
                    "agent.learning_starts=1000", "eval.episodes=1", "progress=false", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert ("warning: pruning.sparse_inference=true does nothing with sparsity=0: a dense network has no masked "
            "layer to convert") in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "sparse_inference" not in summary and summary["sparsity"] == 0.0


def test_sparse_linear_keeps_leading_dimensions_and_a_missing_bias():
    linear = torch.nn.Linear(300, 200, bias=False)
    mask = (torch.rand(200, 300, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    with torch.no_grad():
        linear.weight.mul_(mask)
    layer = SparseLinear("net/w", linear, mask, lambda: {"net/w": mask})
    layer.install()
    x = torch.randn(2, 3, 300)
    with torch.no_grad():
        out = linear(x)
    torch.testing.assert_close(out, x @ linear.weight.T, rtol=1e-5, atol=1e-6)
    layer.remove()
    assert "forward" not in linear.__dict__


# CartPole DQN at width 8 (960 and 672 units) and 95%: GMP's last mask update is at update 2,000 (agent step 2,500),
# so the 960→672 layer turns CSR after it (at 95% it is about 0.4 of dense, far below the 0.9 the timed check needs).
SPARSE_CARTPOLE = [*(a for a in CARTPOLE if not a.startswith("sparsity=")), "network.width=8", "sparsity=0.95",
                   "pruning.sparse_inference=true"]


@pytest.fixture(scope="module")
def converted_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("converted") / "run"
    out = run_train(*SPARSE_CARTPOLE, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sparse inference at update 2001: 2 of 4 layers CSR" in out.stdout
    return run_dir


def test_a_run_killed_after_conversion_resumes_exactly_with_the_layers_it_chose(converted_run, tmp_path):
    """``SPARSE_CARTPOLE`` killed at step 2,903 resumes from the checkpoint at 2,800, which holds the choice, and
    ends exactly as an uninterrupted run: every logged number, the summary, the final weights."""
    baseline, run_dir = converted_run, tmp_path / "run"
    assert interrupt("SIGKILL", "step", 2903, [*SPARSE_CARTPOLE, f"hydra.run.dir={run_dir}"]).returncode == -9
    resumed = run_train(*SPARSE_CARTPOLE, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run_dir}/checkpoints/step_000000002800" in resumed.stdout
    a, b = (json.loads((d / "summary.json").read_text()) for d in (baseline, run_dir))
    for s in (a, b):
        for key in ("wall_time_s", "wall_time_s_per_process", "median_update_ms", "code"):
            s.pop(key)
        for layer in s["sparse_inference"]["layers"].values():
            layer.pop("why")  # the measured ratio differs from process to process
    assert a == b and b["sparse_inference"]["layers"]["online/features.fc2.weight"]["converted"]
    assert metric_rows(run_dir) == metric_rows(baseline)


def test_a_hard_target_copy_acts_from_csr_once_it_holds_the_pattern(always_convert):
    """DQN's target is a hard copy nothing re-masks: while it holds weights outside the pattern (a copy taken before
    the masks froze) its forwards run dense; after the next sync it runs from CSR, equal to the dense target."""
    agent, method, converter, trainer = sparse_agent(["agent=dqn", "network.padding=same"], (4, 84, 84), 6)
    converter.on_train_start(trainer)
    target = next(layer for layer in converter.layers if layer.module is agent.target.features.fc1)
    assert target.verify and target.usable
    x = torch.randint(0, 256, (32, 4, 84, 84), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    with torch.no_grad():
        agent.target.features.fc1.weight.add_(1e-3)  # an older copy: weights outside the pattern
    assert_equal_to_dense(agent.target, x)
    assert not target.usable and target.failures == 1
    train_steps(agent, {"online": agent.online}, {"online": x})
    agent.sync_target()
    assert_equal_to_dense(agent.target, x)
    assert target.usable and target.failures == 0
    with torch.enable_grad():
        dense = agent.target(x).detach()
    with torch.no_grad():
        torch.testing.assert_close(agent.target(x), dense, rtol=1e-5, atol=1e-5 * float(dense.abs().max()))


def test_a_polyak_target_outside_the_pattern_goes_back_to_dense_for_good(always_convert):
    agent, method, converter, trainer = sparse_agent(["agent=sac", "env=dmc", "network.width=5"], (5,), 1)
    converter.on_train_start(trainer)
    copy = agent.target1.features.fc2
    layer = next(la for la in converter.layers if la.module is copy)
    x = torch.randn(4, 6)
    for i in range(sparse_inference.GIVE_UP_AFTER):
        assert "forward" in copy.__dict__
        with torch.no_grad():
            copy.weight.mul_(0.99).add_(1e-4)  # an average with a dense tensor: no exact zeros anywhere
        assert_equal_to_dense(agent.target1.features, x)
        assert layer.failures == i + 1
    assert layer.gave_up and "forward" not in copy.__dict__
    why = converter.summary()["layers"]["target:critic1/features.fc2.weight"]
    assert not why["converted"] and "back to dense" in why["why"]
    assert converter.summary()["layers"]["target:critic2/features.fc2.weight"]["converted"]


def test_evaluate_plays_the_layers_the_run_converted_from_csr(converted_run, capsys):
    """evaluate.py on a checkpoint written after conversion converts the same online layer; asked to play dense
    (``pruning.sparse_inference=false``) it converts nothing, and the greedy episodes are the same."""
    tmp_path = converted_run
    assert evaluate.main([str(tmp_path), "--episodes", "3"]) == 0
    assert "sparse inference: online/features.fc2.weight from CSR, as the run chose" in capsys.readouterr().out
    assert evaluate.main([str(tmp_path), "--episodes", "3", "pruning.sparse_inference=false"]) == 0
    assert "sparse inference" not in capsys.readouterr().out
    sparse, dense = (json.loads((tmp_path / "eval" / name / "returns.json").read_text())
                     for name in ("3000", "3000_pruning.sparse_inference=false"))
    assert sparse["sparse_inference"] == ["online/features.fc2.weight"] and dense["sparse_inference"] == []
    assert sparse["returns"] == dense["returns"] and sparse["lengths"] == dense["lengths"]

    cfg = evaluate.run_config(tmp_path, [])
    _, state, _ = evaluate.load_checkpoint(tmp_path, None)
    _, agent = evaluate.build(cfg, state, 0, torch.device("cpu"))
    layers = evaluate.sparse_layers(cfg, agent, state)
    x = torch.randn(64, 4)
    with torch.enable_grad():
        want = agent.online(x).detach()
    with torch.inference_mode():
        got = agent.online(x)
    assert "forward" in agent.online.features.fc2.__dict__ and layers[0].nnz <= 0.06 * 672 * 960
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
