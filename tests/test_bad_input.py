"""Every user mistake: exit code 2, one line naming the key and what is allowed, no traceback, no run folder.

Each case goes through ``preflight``, the check ``train.py`` runs before anything else, in this process; a
sample of them also runs as a real ``python train.py`` command, which checks the exit code and the printed line.
"""

import psutil
import pytest
import torch

from core.errors import closest, one_of
from suite import preflight
from tests.conftest import run_train
from training.preflight import UserError

CASES = [
    # (overrides, words the one line must contain)
    (["agent=a2c"], ["agent=a2c", "allowed: dqn, iqn, miqn, ppo, rainbow, sac"]),
    (["env=procgen"], ["env=procgen", "atari, classic, dmc, minatar, mujoco"]),
    (["network=resnet"], ["network=resnet", "impala, minatar_cnn, mlp, nature_cnn"]),
    (["env.id=Pongg"], ["env.id", "Pongg", "did you mean 'Pong'? allowed ALE games: Adventure,", "Breakout"]),
    (["agent=dqnn"], ["agent=dqnn is not an option; did you mean 'dqn'? allowed: dqn, iqn, miqn, ppo, rainbow, sac"]),
    (["pruning=rigel"], ["did you mean 'rigl'? allowed: gmp, lottery, rigl, set, static"]),
    (["env=classic", "env.id=cartpole"], ["did you mean 'CartPole-v1'? allowed classic-control ids: CartPole-v1,"]),
    (["agent.optimizer=rmsprp"], ["agent.optimizer=rmsprp is not allowed; did you mean 'rmsprop'? allowed: adam,"]),
    (["agent.optimizer=rmsprop", "agent.weight_decay=1e-5"], ["agent.weight_decay", "optimizer=rmsprop keep it 0"]),
    (["+agent.bogus=1"], ["unknown key 'agent.bogus'; allowed keys in agent: adam_eps, batch_size,"]),
    (["agent=ppo", "+offline=cql"], ["agent=ppo does not fit conf/offline/cql.yaml, which sets agent.loss; allowed "
                                     "here: dqn"]),
    (["+eval.every_env_step=10"], ["unknown key 'eval.every_env_step'; did you mean 'every_env_steps'? allowed keys"]),
    (["+sparsityy=0.9"], ["unknown key 'sparsityy'; did you mean 'sparsity'? allowed keys: adapter, agent,"]),
    # a key given where it does not live: named where it does
    (["pruning.sparsity=0.9"], ["unknown key 'pruning.sparsity'; sparsity is a top-level key: sparsity=0.9"]),
    (["+pruning.sparsity=0.9"], ["unknown key 'pruning.sparsity'; sparsity is a top-level key: sparsity=0.9"]),
    (["lr=1e-3"], ["unknown key 'lr'; did you mean agent.lr? agent.lr=1e-3"]),
    (["agent.width=3"], ["unknown key 'agent.width'; did you mean network.width? network.width=3"]),
    (["every_updates=5"], ["did you mean one of health.every_updates, redo.every_updates, reset.every_updates?"]),
    # GMP's window of 1 update (2 updates in all) cannot prune gradually, whatever pruning.update_freq_updates
    (["env=classic", "total_env_steps=1002", "sparsity=0.9"],
     ["sparsity=0.9 is not allowed; GMP's window (updates 0 to 1 of the run's 2", "too few to prune gradually"]),
    (["env=classic", "env.id=CartPole-v9"], ["env.id", "CartPole-v9", "CartPole-v1"]),
    (["env=classic", "env.id=Pendulum-v1"], ["env.id", "Pendulum-v1", "discrete", "agent=sac"]),
    (["env=dmc"], ["env.id", "cartpole-swingup", "discrete", "agent=sac"]),
    (["agent=sac"], ["env.id", "Pong", "continuous", "env=dmc"]),
    (["agent=dqn", "env=dmc"], ["env.id", "continuous actions (use agent=ppo or agent=sac"]),
    # PPO (agent=ppo): its own rules, and the on-policy loop's
    (["agent=ppo", "env=classic", "agent.num_minibatches=3"],
     ["agent.num_minibatches=3", "must divide agent.num_envs × agent.num_steps = 512"]),
    (["agent=ppo", "env=classic", "agent.clip_coef=0"], ["agent.clip_coef=0.0", "must be > 0"]),
    (["agent=ppo", "env=classic", "agent.clip_coef=-0.2"], ["agent.clip_coef=-0.2", "must be > 0"]),
    (["agent=ppo", "env=classic", "agent.gae_lambda=1.5"], ["agent.gae_lambda=1.5", "[0, 1]"]),
    (["agent=ppo", "env=classic", "agent.gae_lambda=-0.1"], ["agent.gae_lambda=-0.1", "[0, 1]"]),
    (["agent=ppo", "env=dmc", "agent.policy=categorical"],
     ["agent.policy='categorical'", "cartpole-swingup has continuous actions", "agent.policy=gaussian or auto"]),
    (["agent=ppo", "env=classic", "agent.policy=gaussian"],
     ["agent.policy='gaussian'", "CartPole-v1 has discrete actions", "agent.policy=categorical or auto"]),
    (["agent=ppo", "env=classic", "agent.policy=beta"], ["agent.policy=beta", "auto, categorical, gaussian"]),
    (["agent=ppo", "env=classic", "agent.num_envs=0"], ["agent.num_envs=0", ">= 1"]),
    (["agent=ppo", "env=classic", "agent.update_epochs=0"], ["agent.update_epochs=0", ">= 1"]),
    (["agent=ppo", "env=classic", "agent.max_grad_norm=0"], ["agent.max_grad_norm", "> 0"]),
    (["agent=ppo", "env=classic", "agent.ent_coef=-0.01"], ["agent.ent_coef", ">= 0"]),
    (["agent=ppo", "env=classic", "agent.target_kl=0"], ["agent.target_kl", "> 0, or null"]),
    (["agent=ppo", "env=classic", "total_env_steps=100"], ["total_env_steps=100", "whole rollouts", "at least 512"]),
    (["agent=ppo", "env=classic", "sparsity=0.9", "agent.target_kl=0.02"],
     ["agent.target_kl=0.02", "pruning schedule counts", "agent.target_kl=null"]),
    (["agent=ppo", "env=classic", "agent.lr=1e-3"], ["unknown key 'agent.lr'", "learning_rate"]),
    (["agent=ppo", "env=classic", "offline.write_dataset=/tmp/x"],
     ["offline.write_dataset", "agent=ppo keeps no replay"]),
    (["agent=ppo", "env=classic", "network.activation=gelu"], ["network.activation=gelu", "relu, tanh"]),
    (["env=minatar", "env.id=pong"], ["env.id", "pong", "asterix, breakout, freeway, seaquest, space_invaders"]),
    (["env=minatar", "network=nature_cnn"], ["network", "nature_cnn", "network=minatar_cnn"]),
    (["+sweep=scaling_law_minatar", "network.width=0"], ["network.width", "must be > 0"]),
    (["agent=sac", "env=classic", "env.id=CartPole-v1"], ["env.id", "CartPole-v1", "continuous"]),
    (["agent=sac", "env=dmc", "env.id=walker-fly"], ["env.id", "walker-fly", "walker-walk", "cartpole-swingup"]),
    (["agent=sac", "env=dmc", "network=nature_cnn"],
     ["network=nature_cnn", "conf/tuned/sac_dmc.yaml", "allowed here: mlp"]),
    (["agent=sac", "env=dmc", "env.action_repeat=0"], ["env.action_repeat", ">= 1"]),
    (["env=mujoco"], ["env.id", "HalfCheetah-v5", "agent=dqn needs discrete actions", "continuous", "agent=sac"]),
    (["agent=rainbow", "env=mujoco", "env.id=Hopper-v5"], ["env.id", "Hopper-v5", "agent=rainbow needs discrete"]),
    (["agent=sac", "env=mujoco", "env.id=HalfCheeta-v5"],
     ["env.id='HalfCheeta-v5'", "did you mean 'HalfCheetah-v5'? allowed MuJoCo ids: Ant-v5, HalfCheetah-v5,",
      "Walker2d-v5"]),
    (["agent=sac", "env=mujoco", "env.id=HalfCheetah-v2"],
     ["env.id='HalfCheetah-v2'", "did you mean 'HalfCheetah-v5'"]),
    (["agent=sac", "env=mujoco", "network=nature_cnn"],
     ["network=nature_cnn", "conf/tuned/sac_mujoco.yaml", "allowed here: mlp"]),
    (["agent=sac", "env=mujoco", "agent.reward_scale=0"], ["agent.reward_scale", "> 0"]),
    (["agent=sac", "env=mujoco", "env.reward_clip=-1"], ["env.reward_clip", "> 0 or null"]),
    (["agent=sac", "env=dmc", "agent.tau=0"], ["agent.tau", "(0, 1]"]),
    (["agent=sac", "env=dmc", "agent.n_step=3"], ["agent.n_step", "must be 1"]),
    (["agent=sac", "env=dmc", "agent.log_std_min=3"], ["agent.log_std_min", "agent.log_std_max (2.0)"]),
    (["agent=sac", "env=dmc", "agent.epsilon_end=0.1"], ["unknown key 'agent.epsilon_end'", "tau"]),
    (["agent=sac", "env=dmc", "pruning.mask_targets=sometimes"], ["pruning.mask_targets=sometimes", "bool"]),
    (["total_env_steps=-5"], ["total_env_steps", "-5", "positive"]),
    (["total_env_steps=0"], ["total_env_steps", "positive"]),
    (["total_env_steps=1.5"], ["total_env_steps=1.5", "integer"]),
    (["total_env_steps=1e6"], ["total_env_steps=1e6", "integer", "1_000_000"]),
    (["total_env_steps=lots"], ["total_env_steps=lots", "integer"]),
    (["agent.lr=fast"], ["agent.lr=fast", "float"]),
    (["seed=-1"], ["seed", "non-negative"]),
    (["agent.loss=l1"], ["agent.loss=l1", "mse, huber"]),
    (["env.profile=cleanrl"], ["env.profile=cleanrl", "dopamine, nature"]),
    (["network.padding=full"], ["network.padding=full", "same, valid"]),
    (["agent.double=maybe"], ["agent.double=maybe", "bool"]),
    (["agent.gamma=1.5"], ["agent.gamma", "[0, 1]"]),
    (["agent.target_update_period=8001"], ["agent.target_update_period", "multiple of agent.update_period"]),
    (["agent.batch_size=0"], ["agent.batch_size", ">= 1"]),
    (["agent.learning_starts=0"], ["agent.learning_starts", ">= 1"]),
    (["eval.episodes=0"], ["eval.episodes", ">= 1"]),
    (["network.width=-1"], ["network.width", "> 0"]),
    (["agent.lrr=0.1"], ["unknown key 'agent.lrr'", "lr", "gamma"]),
    (["sparsity=1.0"], ["sparsity=1.0", "[0, 1)"]),
    (["sparsity=-0.1"], ["sparsity=-0.1", "[0, 1)"]),
    (["sparsity=lots"], ["sparsity=lots", "float"]),
    (["sparsity=0.9", "total_env_steps=1000"], ["sparsity", "agent.learning_starts"]),
    (["pruning=random"], ["pruning=random", "allowed: gmp"]),
    (["pruning.start_frac=0.9"], ["pruning.start_frac=0.9", "pruning.end_frac (0.8)"]),
    (["pruning.end_frac=1.2"], ["pruning.end_frac=1.2", "1]"]),
    (["pruning.update_freq_updates=0"], ["pruning.update_freq_updates", ">= 1"]),
    (["pruning.distribution=random"], ["pruning.distribution=random", "erk, uniform"]),
    (["pruning.scope=net"], ["pruning.scope=net", "layer, global"]),
    (["health.every_updates=-1"], ["health.every_updates", ">= 1"]),
    (["sparsityy=0.9"], ["unknown key 'sparsityy'", "sparsity"]),
    (["env=classic", "network=nature_cnn"], ["network", "network=mlp"]),
    (["env=classic", "network=impala"], ["network", "network=mlp"]),
    (["network=impala", "network.blocks_per_stack=-1"], ["network.blocks_per_stack", ">= 0"]),
    (["-m", "seed=0,1", "agent=dqn,a2c"], ["agent=a2c", "allowed: dqn"]),
    (["agent=rainbow", "agent.v_min=10"], ["agent.v_min", "below agent.v_max (10.0)"]),
    (["agent=rainbow", "agent.n_step=0"], ["agent.n_step", "[1, 255]"]),
    (["agent=rainbow", "agent.replay_capacity=6", "agent.batch_size=4"],
     ["agent.replay_capacity=6", "agent.n_step (3) + env.frame_stack (4)"]),
    (["agent=dqn", "agent.num_atoms=51"], ["unknown key 'agent.num_atoms'", "n_step"]),
    (["pruning=set", "sparsity=0.9", "pruning.drop_fraction=1.5"], ["pruning.drop_fraction=1.5", "[0, 1]"]),
    (["pruning=rigl", "sparsity=0.9", "pruning.drop_fraction=-0.1"], ["pruning.drop_fraction=-0.1", "[0, 1]"]),
    (["pruning=rigl", "sparsity=0.9", "pruning.update_freq_updates=0"], ["pruning.update_freq_updates", ">= 1"]),
    (["pruning=set", "sparsity=0.9", "pruning.end_frac=0"], ["pruning.end_frac=0", "(0, 1]"]),
    (["pruning=set", "sparsity=0.9", "pruning.end_frac=1.5"], ["pruning.end_frac=1.5", "(0, 1]"]),
    (["pruning=static"], ["sparsity=0.0", "pruning=static", "sparse network from the first step"]),
    (["pruning=rigl", "sparsity=0"], ["sparsity=0", "pruning=rigl"]),
    (["pruning=set"], ["sparsity=0.0", "pruning=set"]),
    (["pruning=lottery", "sparsity=0.9"], ["pruning.mask_from", "checkpoint.save_init=true"]),
    (["pruning=lottery", "sparsity=0.9", "pruning.mask_from=/nonexistent/run"],
     ["pruning.mask_from='/nonexistent/run'", "no config.yaml"]),
    (["redo.tau=-0.1"], ["redo.tau=-0.1", ">= 0"]),
    (["redo.every_updates=0"], ["redo.every_updates", ">= 1"]),
    (["redo.enabled=true", "network=impala"], ["redo.enabled", "network=impala", "residual", "network=nature_cnn"]),
    (["reset.every_updates=0"], ["reset.every_updates", ">= 1"]),
    (["agent.weight_decay=-1e-5"], ["agent.weight_decay", ">= 0"]),
    (["agent=sac", "env=dmc", "network=mlp", "agent.weight_decay=-1"], ["agent.weight_decay", ">= 0"]),
    (["adapter=lora"], ["adapter='lora'", "init.from_run=<run dir>"]),
    (["adapter=lora", "init.from_run=/nonexistent/run", "sparsity=0.5"], ["sparsity=0.5", "adapter=lora"]),
    (["init.from_run=/nonexistent/run"], ["init.from_run='/nonexistent/run'", "no such folder"]),
    (["init.from_run=/tmp"], ["init.from_run='/tmp'", "not a run folder"]),
    (["init.step=last"], ["init.step='last'", "latest or an agent step"]),
    (["adapter=lora", "adapter.rank=0"], ["adapter.rank", ">= 1"]),
    (["adapter=lora", "adapter.alpha=-1"], ["adapter.alpha", "> 0"]),
    (["adapter=lora", "adapter.train_head=maybe"], ["adapter.train_head", "auto, true, false"]),
    (["env.mode=3"], ["env.mode=3", "Pong has the modes 0, 1"]),
    (["env.id=Breakout", "env.difficulty=9"], ["env.difficulty=9", "Breakout has the difficulties 0, 1"]),
    (["adapter=ia3"], ["adapter=ia3", "allowed: lora, none, read, vera"]),
    (["adapter=vera", "adapter.d_initial=0"], ["adapter.d_initial", "> 0"]),
    (["adapter=read", "adapter.hidden=0"], ["adapter.hidden", ">= 1"]),
    (["checkpoint.every_env_steps=0"], ["checkpoint.every_env_steps", ">= 1"]),
    (["checkpoint.keep=0"], ["checkpoint.keep", ">= 1"]),
    (["checkpoint.replay=sometimes"], ["checkpoint.replay=sometimes", "bool"]),
    (["pruning.sparse_inferenc=true"],
     ["unknown key 'pruning.sparse_inferenc'", "scope, sparse_compute, sparse_inference, start_frac"]),
    (["pruning=static", "sparsity=0.9", "pruning.sparse_compute=fast"],
     ["pruning.sparse_compute='fast'", "allowed: false, auto, true"]),
    # a GPU index this machine does not have (none here; on a GPU machine, past its count): before any work
    (["device=cuda:99"], ["device='cuda:99'", "allowed", "auto, cpu"]),
    *([(["device=cuda"], ["device='cuda'", "allowed here: auto, cpu"])] if not torch.cuda.is_available() else []),
    (["pruning=static", "sparsity=0.9", "pruning.sparse_inference=maybe"],
     ["pruning.sparse_inference=maybe", "not a valid bool"]),
    (["checkpoint.kept=2"], ["unknown key 'checkpoint.kept'", "every_env_steps, keep, replay, save_init"]),
    # 1M Atari transitions are 7.07 GB per checkpoint: no disk holds a million of them
    (["checkpoint.keep=1_000_000"], ["hydra.run.dir", "not enough disk space", "checkpoint.keep"]),
    (["hydra.run.dir=/proc/pedrl/run"], ["hydra.run.dir", "/proc is not writable"]),
    # a replay of 100M Atari transitions (707 GB) fits in no machine's memory: refused before the kernel kills it
    (["agent.replay_capacity=100_000_000", "total_env_steps=100_000_000", "checkpoint.replay=false"],
     ["agent.replay_capacity=100000000", "707.10 GB of memory", "GB are available", "lower agent.replay_capacity"]),
]


def check_line(line: str, words: list[str]) -> None:
    assert line.startswith("error: ") and "\n" not in line, line
    for word in words:
        assert word in line, (word, line)


@pytest.mark.parametrize("overrides, words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_clear_line(tmp_path, overrides, words):
    run_dir = tmp_path / "run"
    with pytest.raises(UserError) as e:
        preflight([f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={run_dir}", *overrides])
    check_line(f"error: {e.value}", words)  # what train.py prints
    assert not run_dir.exists()


COMMANDS = [c for c in CASES if c[0] in (["agent=a2c"], ["total_env_steps=1e6"], ["agent.lrr=0.1"], ["sparsity=1.0"],
                                          ["+agent.bogus=1"], ["pruning.sparsity=0.9"], ["lr=1e-3"],
                                          ["agent=sac"], ["env=mujoco"], ["-m", "seed=0,1", "agent=dqn,a2c"],
                                          ["agent=ppo", "env=classic", "agent.num_minibatches=3"])]


@pytest.mark.parametrize("overrides, words", COMMANDS, ids=[" ".join(c[0]) for c in COMMANDS])
def test_bad_command_exits_2_with_one_line(tmp_path, overrides, words):
    run_dir = tmp_path / "run"
    out = run_train(f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={run_dir}", *overrides, timeout=120)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    check_line(lines[0], words)
    assert "Traceback" not in out.stderr + out.stdout
    assert not run_dir.exists()


def test_parallel_jobs_must_fit_in_memory_together(tmp_path):
    """A replay buffer that fits once does not fit twice: a joblib sweep of two parallel jobs is refused, naming
    the figure and both keys to lower; one job at a time (n_jobs=1) passes, and so does printing the config."""
    capacity = int(0.6 * psutil.virtual_memory().available / 7071)  # 7,071 bytes per Atari transition
    args = [f"agent.replay_capacity={capacity}", f"total_env_steps={capacity}", "checkpoint.replay=false"]
    preflight([f"hydra.run.dir={tmp_path / 'one'}", *args])
    sweep = ["-m", "hydra/launcher=joblib", f"hydra.sweep.dir={tmp_path / 'sweep'}", "seed=0,1", *args]
    with pytest.raises(UserError) as e:
        preflight([*sweep, "hydra.launcher.n_jobs=2"])
    check_line(f"error: {e.value}", [f"agent.replay_capacity={capacity}", "for each of 2 parallel jobs",
                                     "lower agent.replay_capacity or hydra.launcher.n_jobs"])
    preflight([*sweep, "hydra.launcher.n_jobs=1"])
    preflight(["--cfg", "job", "agent.replay_capacity=100_000_000", "total_env_steps=100_000_000"])


def tree(folder):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_folder_of_another_config_is_refused_and_left_untouched(tmp_path):
    run_dir = tmp_path / "run"
    args = ["env=classic", "total_env_steps=300", "agent.learning_starts=100", "checkpoint.every_env_steps=100",
            "progress=false", f"hydra.run.dir={run_dir}"]
    assert run_train(*args).returncode == 0
    (run_dir / "summary.json").unlink()  # as if the run had been interrupted
    before = tree(run_dir)
    out = run_train(*args, "agent.lr=0.001", "seed=3", timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr + out.stdout
    for word in (f"hydra.run.dir='{run_dir}'", "different config", "agent.lr: 0.00025 -> 0.001", "seed: 0 -> 3"):
        assert word in lines[0], (word, lines[0])
    assert tree(run_dir) == before


def test_a_run_folder_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "run"
    path.write_text("not a folder")
    out = run_train("env=classic", f"hydra.run.dir={path}", timeout=120)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: hydra.run.dir='{path}' is not allowed; {path} is a file, not a folder"]
    assert path.read_text() == "not a folder"


def test_the_closest_choice_leads_the_list_and_only_when_close():
    assert one_of("Pongg", ["Alien", "Pong", "Pooyan"]) == "did you mean 'Pong'? allowed: Alien, Pong, Pooyan"
    assert closest("BREAKOUT", ["breakout", "asterix"]) == "breakout"  # case aside
    assert closest("space", ["space_invaders", "seaquest"]) == "space_invaders"  # a unique prefix
    assert closest("ppo", ["dqn", "rainbow", "sac"]) is None
    assert one_of("ppo", ["dqn", "sac"], "allowed agents") == "allowed agents: dqn, sac"
