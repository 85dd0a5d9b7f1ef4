"""Network builders: shapes and parameter counts against the formulas, named activations."""

import numpy as np
import pytest
import torch
from torch import nn

import suite
from agents.networks import (
    ImpalaConfig,
    Init,
    MinAtarCNNConfig,
    MLPConfig,
    NatureCNNConfig,
    Padding,
    build_network,
    count_parameters,
)
from core.protocols import BuiltNetwork
from envs import make_env


def nature_params(width, flat_hw, n_actions, c=4):
    c1, c2, c3, h = (round(n * width) for n in (32, 64, 64, 512))
    convs = (c * c1 * 64 + c1) + (c1 * c2 * 16 + c2) + (c2 * c3 * 9 + c3)
    return convs + (c3 * flat_hw * h + h) + (h * n_actions + n_actions)


@pytest.mark.parametrize("padding, flat_hw, total",
                         [(Padding.same, 11 * 11, 4_046_502), (Padding.valid, 7 * 7, 1_687_206)])
def test_nature_cnn_matches_dopamine_and_cleanrl_sizes(padding, flat_hw, total):
    net = build_network(NatureCNNConfig(padding=padding), (4, 84, 84), 6)
    assert count_parameters(net) == nature_params(1, flat_hw, 6) == total
    assert net.features.fc1.in_features == 64 * flat_hw  # 7,744 (SAME) or 3,136 (VALID)
    out = net(torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8))
    assert out.shape == (2, 6)


def test_width_multiplier_scales_every_hidden_layer():
    net = build_network(NatureCNNConfig(width=2), (4, 84, 84), 6)
    assert count_parameters(net) == nature_params(2, 121, 6)
    assert [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)] == [64, 128, 128]
    mlp = build_network(MLPConfig(width=2, hidden_sizes=[120, 84]), (4,), 2)
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [240, 168, 2]


def test_every_nonlinearity_is_a_named_relu_module():
    net = build_network(NatureCNNConfig(), (4, 84, 84), 6)
    relus = [name for name, m in net.named_modules() if isinstance(m, nn.ReLU)]
    assert relus == ["features.relu1", "features.relu2", "features.relu3", "features.relu4"]


def test_channels_last_changes_speed_not_values():
    torch.manual_seed(0)
    a = build_network(NatureCNNConfig(channels_last=True), (4, 84, 84), 6)
    b = build_network(NatureCNNConfig(channels_last=False), (4, 84, 84), 6)
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 255, (3, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-5)


def impala_params(width, n_actions, dense=512, c=4):
    """Per stack: conv 3x3 (in -> k) and two residual blocks of two 3x3 convs (k -> k); 84 -> 42 -> 21 -> 11."""
    total, in_ch = 0, c
    for k in (16 * width, 32 * width, 32 * width):
        total += (9 * in_ch * k + k) + 4 * (9 * k * k + k)
        in_ch = k
    return total + (in_ch * 11 * 11 * dense + dense) + (dense * n_actions + n_actions)


@pytest.mark.parametrize("width, total", [(1, 2_083_798), (3, 6_824_822), (5, 12_339_990)])  # by hand
def test_impala_shapes_and_parameter_counts(width, total):
    net = build_network(ImpalaConfig(width=width), (4, 84, 84), 6)
    assert count_parameters(net) == impala_params(width, 6) == total
    assert [m.out_channels for m in net.features.stack1.modules() if isinstance(m, nn.Conv2d)] == [16 * width] * 5
    assert net.features.fc1.in_features == 32 * width * 11 * 11 and net.features.fc1.out_features == 512
    x = torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)
    assert net(x).shape == (2, 6)


@pytest.mark.parametrize("width, total", [(1, 2_237_698), (3, 6_978_722), (5, 12_493_890)])
def test_rainbow_c51_head_on_impala(width, total):
    """Rainbow's head has actions x atoms outputs: the same formula with 6 x 51 outputs; dueling adds a value
    stream of 51."""
    from agents.rainbow import Rainbow, RainbowConfig

    def online(**kw):
        return Rainbow(RainbowConfig(**kw), ImpalaConfig(width=width), (4, 84, 84), 6, np.random.default_rng(0),
                       torch.device("cpu")).online

    net = online()
    assert count_parameters(net) == impala_params(width, 6 * 51) == total
    assert net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6, 51)
    assert net.q_values(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)
    assert count_parameters(online(dueling=True)) == total + 512 * 51 + 51


def test_impala_scale_dense_and_named_relus():
    net = build_network(ImpalaConfig(width=3, scale_dense=True), (4, 84, 84), 6)
    assert count_parameters(net) == impala_params(3, 6, dense=1536)
    relus = [n for n, m in net.named_modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 3 * 2 * 2 + 2 and "features.stack2.block1.relu2" in relus and relus[-1] == "features.relu_fc1"


def test_impala_pools_with_same_padding_and_adds_the_residual():
    """Max-pool pads with -inf: an all-negative input pools to its own values, never to a padded 0."""
    net = build_network(ImpalaConfig(stack_channels=[1], blocks_per_stack=0, channels_last=False), (1, 5, 5), 1)
    stack = net.features.stack1
    with torch.no_grad():
        stack.conv.weight.zero_()
        stack.conv.weight[0, 0, 1, 1] = 1.0  # identity convolution
        x = -torch.arange(1.0, 26.0).view(1, 1, 5, 5)
        pooled = stack(x)
    assert pooled.shape == (1, 1, 3, 3)
    assert pooled[0, 0, 0, 0] == -1.0 and pooled[0, 0, 2, 2] == -19.0  # windows (rows 0-1, cols 0-1), (3-4, 3-4)
    block = build_network(ImpalaConfig(stack_channels=[2]), (2, 8, 8), 1).features.stack1.block1
    with torch.no_grad():
        for conv in (block.conv1, block.conv2):
            conv.weight.zero_()
            conv.bias.zero_()
        y = torch.randn(1, 2, 4, 4)
        assert torch.equal(block(y), y)


def test_torch_init_draws_the_minatar_papers_network_exactly():
    """``network.init=torch`` on ``minatar_cnn``: from the same seed, the same weights as MinAtar's examples/dqn.py
    QNetwork (conv 16-3x3, Linear 1024→128, Linear 128→n, PyTorch's default init, built in that order); ``auto``
    keeps Xavier-uniform and zero biases."""
    torch.manual_seed(0)
    ours = build_network(MinAtarCNNConfig(init=Init.torch), (4, 10, 10), 6)
    torch.manual_seed(0)
    theirs = [nn.Conv2d(4, 16, kernel_size=3, stride=1), nn.Linear(8 * 8 * 16, 128), nn.Linear(128, 6)]
    for mine, ref in zip((ours.features.conv1, ours.features.fc1, ours.head), theirs, strict=True):
        assert torch.equal(mine.weight, ref.weight) and torch.equal(mine.bias, ref.bias)
    dopamine = build_network(MinAtarCNNConfig(), (4, 10, 10), 6)
    assert not dopamine.features.fc1.bias.any() and ours.features.fc1.bias.abs().min() > 0
    g = torch.Generator().manual_seed(1)
    fresh = ours.fresh_parameters(ours.features.fc1, g)  # ReDo and resets redraw with the chosen init too
    assert fresh["bias"].abs().max() <= 1 / 1024 ** 0.5 and fresh["bias"].any()
    mlp_xavier = build_network(MLPConfig(init=Init.xavier), (4,), 2)
    assert not mlp_xavier.features.fc1.bias.any()


@pytest.mark.parametrize("overrides", [["env=minatar"], ["env=minatar", "agent=rainbow"], ["env=classic"],
                                       ["agent=sac", "env=dmc", "env.id=cartpole-swingup"],
                                       ["env=atari", "network=impala"], ["env=atari"]])
def test_every_agents_networks_declare_the_network_contract(compose_cfg, overrides):
    """``core.protocols.BuiltNetwork``: what pruning, the health probe, ReDo, resets and adapters rely on, declared
    and held by every network every agent lists (an Atari env is built only for its spaces)."""
    cfg = compose_cfg(*overrides)
    env = make_env(cfg.env, 0)
    try:
        agent = suite.build_agent(cfg, env, np.random.default_rng(0), torch.device("cpu"))
    finally:
        env.close()
    for name, net in agent.networks().items():
        assert isinstance(net, BuiltNetwork), name
        assert net.builder_weights and all(n in dict(net.named_parameters()) for n in net.builder_weights)
        assert set(net.head.modules()) <= set(net.modules()) and set(net.features.modules()) <= set(net.modules())
    assert not isinstance(nn.Linear(2, 2), BuiltNetwork)
