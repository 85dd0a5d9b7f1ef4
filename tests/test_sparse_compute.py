"""Sparse compute (``pruning.sparse_compute``): a converted layer's forward and both gradients equal the masked-dense
computation, the optimizer holds state for the kept entries only, whole updates of DQN, Rainbow and SAC equal the
switch-off path, masks follow GMP, SET and RigL as without the switch, and runs resume with the switch on or off."""

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import suite
from pruning.registry import METHODS
from pruning.sparse_compute import SparseCompute, SparseTrainingLinear, TargetCSR, eligible
from tests.conftest import run_train
from tests.test_resume import CARTPOLE, interrupt, metric_rows, summary


class Log:
    def log(self, metrics, step):
        pass


GPU = torch.cuda.is_available()  # cuSPARSE, marked cuda: scripts/gpu_check.sh runs them (-m cuda)
DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)] if GPU else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, sparsity", [((64, 200), 0.5), ((128, 1024), 0.95), ((384, 3072), 0.9),
                                             ((30, 40), 0.99), ((17, 5), 0.7)])
def test_forward_and_both_gradients_equal_the_masked_dense_layer(shape, sparsity, device):
    out_f, in_f = shape
    g = torch.Generator().manual_seed(out_f)
    dense = nn.Linear(in_f, out_f).to(device)
    mask = (torch.rand(shape, generator=g) >= sparsity).float().to(device)
    mask[1], mask[:, 2] = 0, 0  # a row and a column with no kept entry
    with torch.no_grad():
        dense.weight.mul_(mask)
    layer_module = copy.deepcopy(dense)
    opt = torch.optim.Adam(layer_module.parameters())
    layer = SparseTrainingLinear("k", layer_module, mask, opt)
    assert layer.nnz == int(mask.sum())
    for batch in (1, 7, 32):
        x = torch.randn(batch, in_f, generator=g).to(device).requires_grad_(True)
        x_ref = x.detach().clone().requires_grad_(True)
        out, ref = layer_module(x), dense(x_ref)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        grad_out = torch.randn(batch, out_f, generator=g).to(device)
        out.backward(grad_out)
        ref.backward(grad_out)
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5 * float(x_ref.grad.abs().max()))
        # the weight gradient leaves the path at the kept entries only: nnz numbers, not out × in
        assert layer.values.grad.shape == (layer.nnz,) and layer_module.weight.grad is None
        assert layer.values.grad.numel() < out_f * in_f
        kept = (dense.weight.grad * mask).reshape(-1)[layer.pattern.index]
        torch.testing.assert_close(layer.values.grad, kept, rtol=1e-5, atol=1e-5 * float(kept.abs().max()))
        torch.testing.assert_close(layer_module.bias.grad, dense.bias.grad, rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            torch.testing.assert_close(layer_module(x), dense(x), rtol=1e-5, atol=1e-6)
        for p in (*dense.parameters(), layer.values, layer_module.bias, x, x_ref):
            p.grad = None


def test_the_optimizer_steps_the_kept_values_and_holds_a_twentieth_of_the_state():
    module = nn.Linear(1024, 128)
    mask = (torch.rand(128, 1024, generator=torch.Generator().manual_seed(0)) >= 0.95).float()
    opt = torch.optim.Adam(module.parameters(), fused=True)
    module(torch.randn(4, 1024)).sum().backward()
    opt.step()  # moments exist before the conversion and are gathered
    dense_state = opt.state[module.weight]["exp_avg"].clone()
    layer = SparseTrainingLinear("k", module, mask, opt)
    assert module.weight not in opt.state and [p.shape for p in opt.param_groups[0]["params"]] == [(layer.nnz,), (128,)]
    torch.testing.assert_close(opt.state[layer.values]["exp_avg"], dense_state.reshape(-1)[layer.pattern.index])
    state_bytes = sum(v.numel() for v in opt.state[layer.values].values() if v.dim())
    assert state_bytes <= 0.1 * 2 * module.weight.numel()
    before = module.weight.detach().clone()
    opt.zero_grad()
    module(torch.randn(4, 1024)).sum().backward()
    opt.step()
    layer.write_back()
    moved = module.weight != before
    assert moved.any() and not (moved & (mask == 0)).any() and not (module.weight[mask == 0] != 0).any()
    saved = opt.state_dict()  # the dense format: moments at the weight's shape
    assert saved["state"][0]["exp_avg"].shape == (layer.nnz,)  # no hook installed on a bare layer


def test_a_target_copy_follows_its_own_nonzeros_and_a_dense_polyak_copy_goes_back_to_dense():
    g = torch.Generator().manual_seed(3)
    target, online = nn.Linear(300, 200), nn.Linear(300, 200)
    mask = (torch.rand(200, 300, generator=g) >= 0.95).float()
    with torch.no_grad():
        target.weight.mul_(mask)
        online.weight.mul_(mask)
    copy_ = TargetCSR(target, 0.5)
    x = torch.randn(32, 300, generator=g)

    def check():
        with torch.no_grad():
            out = target(x)
        torch.testing.assert_close(out, nn.functional.linear(x, target.weight, target.bias), rtol=1e-5, atol=1e-6)

    check()
    pattern = copy_.pattern
    with torch.no_grad():  # a Polyak step toward masked weights keeps the zeros: same pattern, new values
        target.weight.lerp_(online.weight, 0.005)
    check()
    assert copy_.pattern is pattern
    with torch.no_grad():  # a hard copy after a mask update: sparser, so the pattern is rebuilt
        target.weight.copy_(online.weight * (torch.rand(200, 300, generator=g) >= 0.5))
    check()
    assert copy_.pattern is not pattern and copy_.pattern.nnz == int(target.weight.count_nonzero())
    for _ in range(TargetCSR.GIVE_UP_AFTER):  # toward dense weights: never sparse enough again
        with torch.no_grad():
            target.weight.lerp_(torch.randn(200, 300, generator=g), 0.005)
        check()
    assert copy_.gave_up and "forward" not in target.__dict__


def make_agent(overrides, seed=0, device="cpu"):
    cfg = suite.compose(overrides)
    env = suite.build_env(cfg, "train")
    agent = suite.build_agent(cfg, env, np.random.default_rng(seed), torch.device(device))
    replay = suite.build_replay(cfg, env, np.random.default_rng(seed), torch.device(device))
    return cfg, env, agent, replay


def fill(env, replay, steps, seed=0):
    """Real transitions of a random policy."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = env.action_space.sample()
        nxt, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, float(reward), terminated, terminated or truncated, nxt)
        obs = env.reset()[0] if terminated or truncated else nxt


def pair(overrides, mode=True, device="cpu"):
    """Two copies of one real agent under one pruning method: masked dense, and with ``sparse_compute=mode``."""
    torch.manual_seed(0)
    cfg, env, agent, replay = make_agent(overrides, device=device)
    fill(env, replay, 600)
    runs = []
    for compute in (False, mode):
        a = copy.deepcopy(agent)
        trainer = SimpleNamespace(agent=a, updates=0, resumed=False, env_step=0, total_updates=300, logger=Log())
        method = METHODS.get(cfg.pruning.name).target(cfg.pruning, cfg.sparsity, log_every_updates=10 ** 9, seed=0)
        callbacks = [method] + ([SparseCompute(method, compute)] if compute is not False else [])
        for cb in callbacks:
            cb.on_train_start(trainer)
        runs.append(SimpleNamespace(agent=a, trainer=trainer, method=method, callbacks=callbacks))
    return replay, runs


def step(run, batch):
    torch.manual_seed(run.trainer.updates)  # noise (noisy nets, SAC) drawn alike in both runs
    result = run.agent.update(batch)
    run.trainer.updates += 1
    for cb in run.callbacks:
        cb.on_update_end(run.trainer, result)
    return result


def weights(agent):
    return {f"{n}/{k}": v.detach().clone() for n, net in {**agent.networks(), **{
        f"target:{k}": t for k, t in agent.target_networks().items()}}.items() for k, v in net.state_dict().items()}


AGENTS = {
    "dqn": ["agent=dqn", "env=minatar", "env.id=breakout"],
    # MinAtar's network with its Dense layer (Rainbow's MinAtar preset has none): fc1 converts, the noisy head not
    "rainbow": ["agent=rainbow", "env=minatar", "env.id=breakout", "agent.noisy=true", "agent.dueling=true",
                "network.padding=valid", "network.dense=128"],
    "sac": ["agent=sac", "env=classic", "env.id=Pendulum-v1", "agent.batch_size=64"],
}
# SAC's free trajectories drift apart on float rounding alone: Adam turns a near-zero gradient whose sign the
# summation order decides into a full ±lr step (the first steps especially), and the masked-dense path against itself
# with every weight scaled by 1 + 1e-7 drifts to 1.7e-2 relative after 1,000 updates (Pendulum, width 2). So for SAC
# every tenth of the 1,000 updates starts from the dense path's state (through a checkpoint's state_dict) and must
# end within 1e-3 of it (measured: 5e-5 at worst, one entry whose Adam step rounding moved by 1.4% of lr).
RESYNC = {"sac": 10}


@pytest.mark.slow
@pytest.mark.parametrize("agent, device", [(a, "cpu") for a in AGENTS] +
                         ([pytest.param("dqn", "cuda", marks=pytest.mark.cuda)] if GPU else []))
def test_updates_equal_the_masked_dense_path(agent, device):
    """One update within 1e-5; after 1,000 every kept weight within 1e-3 relative and every pruned one exactly 0."""
    replay, (dense, sparse) = pair([*AGENTS[agent], "pruning=static", "sparsity=0.95"], device=device)
    converted = sparse.callbacks[-1].layers
    assert converted, "no layer converted"
    g = np.random.default_rng(0)
    batch_size = 64 if agent == "sac" else 32
    for i in range(1000):
        replay.rng = np.random.default_rng(int(g.integers(1 << 31)))
        batch = replay.sample(batch_size)
        rd, rs = step(dense, batch), step(sparse, batch)
        if i == 0:
            for tag in rd.losses:
                torch.testing.assert_close(rs.losses[tag], rd.losses[tag], rtol=1e-5, atol=1e-6)
            a, b = weights(dense.agent), weights(sparse.agent)
            for k in a:
                torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
        if (i + 1) % RESYNC.get(agent, 1000) == 0:
            assert_close_after_training(dense, sparse, 1e-3)
            sparse.agent.load_state_dict(copy.deepcopy(dense.agent.state_dict()))


def assert_close_after_training(dense, sparse, rtol):
    a, b = weights(dense.agent), weights(sparse.agent)
    masks = sparse.method.current_masks()
    for key in sparse.callbacks[-1].layers:
        net, name = key.split("/", 1)
        w = b[f"{net}/{name}"]
        assert torch.equal(w[masks[key] == 0], torch.zeros_like(w[masks[key] == 0]))
    for k in a:
        scale = float(a[k].abs().max()) or 1.0
        assert float((b[k] - a[k]).abs().max()) <= rtol * scale, k


def mask_history(run, replay, updates):
    g = np.random.default_rng(1)
    seen = []
    for _ in range(updates):
        replay.rng = np.random.default_rng(int(g.integers(1 << 31)))
        step(run, replay.sample(32))
        masks = run.method.current_masks()
        if masks is not None:
            seen.append({k: m.clone() for k, m in masks.items()})
    return seen


@pytest.mark.parametrize("method", ["gmp", "set", "rigl"])
def test_masks_follow_the_method_as_without_the_switch(method):
    """GMP through its whole ramp (converting as layers cross 80%), SET and RigL through their mask updates: the same
    masks at every update as the masked-dense run, up to ties in |w|."""
    extra = {"gmp": ["pruning.update_freq_updates=20", "sparsity=0.95"],
             "set": ["pruning=set", "pruning.update_freq_updates=30", "sparsity=0.9"],
             "rigl": ["pruning=rigl", "pruning.update_freq_updates=30", "sparsity=0.9"]}[method]
    replay, (dense, sparse) = pair([*AGENTS["dqn"], *extra])
    a, b = mask_history(dense, replay, 300), mask_history(sparse, replay, 300)
    assert len(a) == len(b) > 0
    compute = sparse.callbacks[-1]
    assert "online/features.fc1.weight" in compute.layers
    differ = 0
    for ma, mb in zip(a, b, strict=True):
        for k in ma:
            assert int(mb[k].sum()) == int(ma[k].sum()), k  # the same counts at every update
            differ = max(differ, int((ma[k] != mb[k]).sum()))
    assert differ <= 2  # ties only
    layer = compute.layers["online/features.fc1.weight"]
    assert layer.nnz == int(b[-1]["online/features.fc1.weight"].sum())
    w = sparse.agent.online.features.fc1.weight
    assert not (w[b[-1]["online/features.fc1.weight"] == 0] != 0).any()


def test_the_fixed_rule_converts_large_sparse_layers_only():
    assert eligible("auto", 640 * 5120, 0.95)[0] and eligible("auto", 384 * 3072, 0.9)[0]
    assert eligible(True, 120 * 84, 0.9)[0] and eligible(True, 128 * 1024, 0.8)[0]
    assert not eligible("auto", 128 * 1024, 0.99)[0] and not eligible(True, 10 ** 6, 0.7)[0]
    assert not eligible("auto", 640 * 5120, 0.8)[0]
    assert not eligible("auto", 640 * 5120, 0.95, "cuda")[0] and eligible(True, 640 * 5120, 0.95, "cuda")[0]


def test_the_checkpoint_format_is_dense_and_loads_back_converted():
    replay, (dense, sparse) = pair([*AGENTS["dqn"], "pruning=static", "sparsity=0.95"])
    for _ in range(3):
        batch = replay.sample(32)
        step(dense, batch), step(sparse, batch)
    a, b = dense.agent.state_dict(), sparse.agent.state_dict()
    for k, v in a["optimizer"]["state"].items():
        for name, t in v.items():
            assert b["optimizer"]["state"][k][name].shape == t.shape, (k, name)
            torch.testing.assert_close(b["optimizer"]["state"][k][name][t != 0], t[t != 0], rtol=1e-5, atol=1e-8)
    sparse.agent.load_state_dict(a)  # a switch-off checkpoint into a converted agent
    layer = sparse.callbacks[-1].layers["online/features.fc1.weight"]
    exp_avg = a["optimizer"]["state"][2]["exp_avg"]  # conv1 weight, conv1 bias, fc1 weight, ...
    torch.testing.assert_close(sparse.agent.optimizer.state[layer.values]["exp_avg"],
                               exp_avg.reshape(-1)[layer.pattern.index])
    batch = replay.sample(32)
    rd, rs = step(dense, batch), step(sparse, batch)
    torch.testing.assert_close(rs.losses["losses/td_loss"], rd.losses["losses/td_loss"], rtol=1e-5, atol=1e-7)


SPARSE_CARTPOLE = [a for a in CARTPOLE if not a.startswith("pruning.")] + [
    "pruning=static", "network.width=2", "pruning.sparse_compute=true"]


def test_a_run_resumes_exactly_with_itself_and_with_the_switch_flipped(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    out = run_train(*SPARSE_CARTPOLE, f"hydra.run.dir={a}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trains from CSR" in out.stdout
    s = json.loads((a / "summary.json").read_text())
    assert s["sparse_compute"]["layers"]["online/features.fc2.weight"].endswith("CSR")
    assert s["learner_bytes"]["optimizer"] < 0.3 * 2 * 4 * sum(s["num_params"].values())
    for run_dir in (b, c):
        killed = interrupt("SIGKILL", "step", 1300, [*SPARSE_CARTPOLE, f"hydra.run.dir={run_dir}"])
        assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = run_train(*SPARSE_CARTPOLE, f"hydra.run.dir={b}")
    assert resumed.returncode == 0 and "resuming with" not in resumed.stdout, resumed.stderr[-3000:]
    assert summary(b) == summary(a) and metric_rows(b) == metric_rows(a)
    flipped = run_train(*SPARSE_CARTPOLE[:-1], "pruning.sparse_compute=false", f"hydra.run.dir={c}")
    assert flipped.returncode == 0, flipped.stderr[-3000:]
    assert "resuming with pruning.sparse_compute: True -> False" in flipped.stdout
    assert json.loads((c / "summary.json").read_text())["env_steps"] == 3000


def test_the_switch_on_a_dense_run_says_it_does_nothing(tmp_path):
    out = run_train("env=classic", "total_env_steps=600", "agent.learning_starts=200", "eval.episodes=1",
                    "pruning.sparse_compute=true", "progress=false", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "pruning.sparse_compute=true does nothing with sparsity=0" in out.stdout
    assert "sparse_compute" not in json.loads((tmp_path / "summary.json").read_text())


def test_a_bad_value_is_one_line_before_any_work(tmp_path):
    out = run_train("env=classic", "sparsity=0.9", "pruning.sparse_compute=fast", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: pruning.sparse_compute='fast' is not allowed; allowed: false, auto, true"
    assert not (tmp_path / "run").exists()


def test_a_lottery_run_starts_from_the_source_weights_with_its_final_masks(tmp_path):
    src = tmp_path / "src"
    out = run_train("env=classic", "network.width=2", "total_env_steps=800", "agent.learning_starts=200",
                    "sparsity=0.9", "pruning.update_freq_updates=50", "checkpoint.save_init=true", "eval.episodes=1",
                    "progress=false", f"hydra.run.dir={src}")
    assert out.returncode == 0, out.stderr[-3000:]
    overrides = ["env=classic", "network.width=2", "sparsity=0.9", "pruning=lottery", f"pruning.mask_from={src}"]
    cfg = suite.compose(overrides)
    env = suite.build_env(cfg, "train")
    agent = suite.build_agent(cfg, env, np.random.default_rng(5), torch.device("cpu"))  # other weights than src's
    method, _ = suite.build_callbacks(cfg)
    compute = SparseCompute(method, True)
    trainer = SimpleNamespace(agent=agent, updates=0, resumed=False, env_step=0, total_updates=100, logger=Log())
    method.on_train_start(trainer)
    compute.on_train_start(trainer)
    layer = compute.layers["online/features.fc2.weight"]
    initial, final = method.source.initial["online"], method.source.final["online"]
    keep = final["features.fc2.weight"] != 0
    assert torch.equal(agent.online.features.fc2.weight, initial["features.fc2.weight"] * keep)
    assert torch.equal(layer.values.detach(), initial["features.fc2.weight"].reshape(-1)[keep.reshape(-1)])
    assert torch.equal(agent.target.features.fc2.weight, agent.online.features.fc2.weight)


def test_redo_reset_mask_targets_and_health_run_with_the_switch(tmp_path):
    """RigL (dense gradients on its mask updates), ReDo's re-initialisations, the last-layer reset, re-masked targets
    and the health probe, in one real run with the switch on: it ends at the method's sparsity with every pruned
    weight 0 in the online and target networks, and the logged health metrics are finite."""
    out = run_train(*[a for a in CARTPOLE if not a.startswith("pruning.")], "network.width=2", "pruning=rigl",
                    "pruning.update_freq_updates=100", "pruning.mask_targets=true", "redo.enabled=true",
                    "redo.every_updates=300", "reset.enabled=true", "reset.every_updates=700",
                    "pruning.sparse_compute=true", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["sparsity"] == pytest.approx(0.9, abs=2e-3)
    assert s["sparse_compute"]["layers"]["online/features.fc2.weight"].endswith("CSR")
    from tests.test_resume import final_weights
    online, target = final_weights(tmp_path, "online"), final_weights(tmp_path, "target")
    assert torch.equal(online["features.fc2.weight"] == 0, target["features.fc2.weight"] == 0)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    grown = [r["sparse/online/grown"] for r in rows if "sparse/online/grown" in r]
    dormant = [v for r in rows for k, v in r.items() if k.startswith("dormant/")]
    assert grown and max(grown) > 0 and dormant and all(np.isfinite(dormant))
    assert any("redo/" in k for r in rows for k in r) and any("reset" in k for r in rows for k in r)
