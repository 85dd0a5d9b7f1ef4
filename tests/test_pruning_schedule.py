"""The GMP schedule against hand values (Obando-Ceron et al. 2024, Eq. 1, with JaxPruner's progress term)."""

import math

import pytest

from pruning.distribution import erk_densities, keep_counts, uniform_densities
from pruning.schedule import gmp_sparsity, is_mask_update, pruning_window


def test_jaxpruner_check_value():
    # progress = (9 + 1 - 0) / 20 = 0.5 -> 0.5 * (1 - 0.5**3)
    assert gmp_sparsity(9, 0, 20, 0.5) == pytest.approx(0.4375)


def test_endpoints_monotonicity_and_constancy_after_the_end():
    values = [gmp_sparsity(t, 100, 300, 0.9) for t in range(0, 500)]
    assert values[:100] == [0.0] * 100  # t < t_start
    assert values[100] == pytest.approx(0.9 * (1 - (1 - 1 / 200) ** 3))
    assert values[299] == values[300] == 0.9  # s_F from t_end - 1 on
    assert values[300:] == [0.9] * 200
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))
    assert gmp_sparsity(199, 100, 300, 0.9) == pytest.approx(0.9 * (1 - 0.5**3))


def test_zero_length_window_jumps_to_the_final_sparsity():
    assert gmp_sparsity(4, 5, 5, 0.9) == 0.0 and gmp_sparsity(5, 5, 5, 0.9) == 0.9


def test_window_is_a_fraction_of_the_updates_and_ends_by_the_last_update():
    assert pruning_window(1000, 0.2, 0.8) == (200, 800)
    assert pruning_window(10, 0.0, 1.0) == (0, 9)
    assert pruning_window(3, 0.2, 0.8) == (0, 2)


@pytest.mark.parametrize("every, expected",
                         [(1000, [200, 800]), (250, [200, 450, 700, 800]), (1, list(range(200, 801)))])
def test_mask_updates_on_the_grid_and_always_at_t_end(every, expected):
    assert [t for t in range(2000) if is_mask_update(t, 200, 800, every)] == expected


def test_erk_by_hand_with_a_layer_made_dense():
    # raw scores 20/100 and 200/10,000; eps = 5,050 / 220 would give the small layer density 4.6 > 1, so it is
    # dense and eps is solved again over the big layer: (5,000 - 50) / 200 = 24.75 -> density 0.495
    d = erk_densities({"small": (10, 10), "big": (100, 100)}, 0.5)
    assert d["small"] == 1.0 and d["big"] == pytest.approx(0.495)


def test_erk_hits_the_total_within_one_weight_and_keeps_small_layers_denser():
    shapes = {"conv1": (32, 4, 8, 8), "conv2": (64, 32, 4, 4), "conv3": (64, 64, 3, 3), "fc1": (512, 7744),
              "head": (6, 512)}
    total = sum(math.prod(shape) for shape in shapes.values())
    for s in (0.5, 0.9, 0.95, 0.99):
        d = erk_densities(shapes, s)
        counts = keep_counts(shapes, d, s)
        assert abs(sum(counts.values()) - (1 - s) * total) <= 1
        assert d["fc1"] < d["conv2"] < d["conv1"] and d["fc1"] < d["head"]
        assert all(0 < v <= 1 for v in d.values())


def test_uniform_gives_every_layer_the_same_density():
    shapes = {"a": (10, 10), "b": (30, 40)}
    counts = keep_counts(shapes, uniform_densities(shapes, 0.75), 0.75)
    assert counts == {"a": 25, "b": 300}
