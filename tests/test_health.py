"""Health metrics on hand-built networks whose answers are known."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from agents.networks import QNetwork
from pruning.health import HealthConfig, fanin_pruned_fraction, neuron_scores, probe, srank


def hand_built():
    """Hidden ReLU layer of 4 units on inputs of ones: outputs 2, 2, 0 (dead) and 0.02 (nearly dead)."""
    fc = nn.Linear(2, 4)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [0.01, 0.01]]))
        fc.bias.zero_()
    return QNetwork(nn.Sequential(OrderedDict(fc1=fc, relu1=nn.ReLU())), nn.Linear(4, 3))


def test_dormant_fractions_on_a_known_network():
    m = probe("q", hand_built(), torch.ones(8, 2), HealthConfig())
    # scores: mean |h| = (2, 2, 0, 0.02), layer mean 1.005 -> (1.99, 1.99, 0, 0.0199)
    assert m["dormant/q/features.relu1/tau_0"] == 0.25
    assert m["dormant/q/features.relu1/tau_0.025"] == 0.5
    assert m["dormant/q/tau_0.1"] == 0.5
    assert m["health/q/srank"] == 1  # every state has the same features


def test_conv_channels_are_averaged_over_batch_and_space():
    a = torch.zeros(2, 3, 4, 4)
    a[:, 0] = 1.0  # channel 0 active everywhere
    a[0, 1, 0, 0] = 3.2  # channel 1: active in one position of one sample -> mean 0.1
    scores = neuron_scores(a)
    # means (1, 0.1, 0), layer mean 0.3667
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.1, 0.0]) / (1.1 / 3))


def test_a_layer_silent_everywhere_is_all_dormant_as_in_redos_code():
    """ReDo's and Dopamine's score divides by the layer mean + 1e-9, so a dead layer scores 0 (every neuron dormant),
    not 0/0 = NaN (no neuron dormant, since NaN <= tau is false)."""
    scores = neuron_scores(torch.zeros(8, 5))
    assert torch.equal(scores, torch.zeros(5))
    m = probe("q", hand_built(), torch.zeros(8, 2), HealthConfig())  # zero biases: every unit outputs 0
    assert m["dormant/q/features.relu1/tau_0"] == 1.0 and m["dormant/q/tau_0.1"] == 1.0


def test_srank_of_known_singular_values():
    sv = torch.tensor([10.0, 5.0, 1.0, 0.1, 0.01])
    q1, _ = torch.linalg.qr(torch.randn(50, 5, generator=torch.Generator().manual_seed(0)))
    q2, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)))
    phi = q1 @ torch.diag(sv) @ q2.T
    # cumulative shares 0.621, 0.931, 0.993, 0.999, 1 -> first >= 0.99 at k = 3; >= 0.9 at k = 2
    assert srank(phi, 0.01) == 3
    assert srank(phi, 0.1) == 2
    assert srank(torch.zeros(4, 3)) == 0


def test_units_with_a_fully_pruned_fan_in():
    w = torch.ones(4, 3, 2, 2)
    w[1] = 0
    w[3, :, 0, 0] = 0
    assert fanin_pruned_fraction(w) == 0.25


def test_probe_reports_norms_and_q_statistics():
    net = hand_built()
    with torch.no_grad():
        out = net(torch.ones(8, 2))
    m = probe("q", net, torch.ones(8, 2), HealthConfig())
    expected_norm = torch.sqrt(sum((p.detach() ** 2).sum() for p in net.parameters()))
    assert m["health/q/param_norm"] == pytest.approx(float(expected_norm), rel=1e-5)
    assert m["health/q/q_mean"] == pytest.approx(float(out.mean()), rel=1e-5)
    assert m["health/q/q_var"] == pytest.approx(float(out.var()), rel=1e-5)
    assert m["dormant/q/fanin_pruned/head.weight"] == 0.0
