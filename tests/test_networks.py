"""Network builders: shapes and parameter counts against the formulas, named activations."""

import pytest
import torch
from torch import nn

from agents.networks import MLPConfig, NatureCNNConfig, Padding, build_network, count_parameters


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
