"""The GMP schedule against hand values (Obando-Ceron et al. 2024, Eq. 1, with JaxPruner's progress term)."""

import math

import pytest

from pruning.distribution import erk_sparsities, keep_count, uniform_sparsities
from pruning.schedule import gmp_fraction, gmp_sparsity, is_mask_update, pruning_window


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
                         [(1000, [800]), (250, [250, 500, 750, 800]), (200, [200, 400, 600, 800]),
                          (1, list(range(200, 801)))])
def test_mask_updates_on_the_grid_and_always_at_t_end(every, expected):
    assert [t for t in range(2000) if is_mask_update(t, 200, 800, every)] == expected


def test_erk_by_hand_with_a_layer_made_dense():
    # raw scores 20/100 and 200/10,000; eps = 5,050 / 220 would give the small layer density 4.6 > 1, so it is
    # dense and eps is solved again over the big layer: (5,000 - 50) / 200 = 24.75 -> density 0.495
    s = erk_sparsities({"small": (10, 10), "big": (100, 100)}, 0.5)
    assert s["small"] == 0.0 and s["big"] == pytest.approx(0.505)


def test_erk_hits_the_total_within_a_weight_per_layer_and_keeps_small_layers_denser():
    shapes = {"conv1": (32, 4, 8, 8), "conv2": (64, 32, 4, 4), "conv3": (64, 64, 3, 3), "fc1": (512, 7744),
              "head": (6, 512)}
    total = sum(math.prod(shape) for shape in shapes.values())
    for s in (0.5, 0.9, 0.95, 0.99):
        sp = erk_sparsities(shapes, s)
        kept = sum(keep_count(math.prod(shape), sp[k]) for k, shape in shapes.items())
        assert abs(kept - (1 - s) * total) <= len(shapes)
        assert sp["fc1"] > sp["conv2"] > sp["conv1"] and sp["fc1"] > sp["head"]
        assert all(0 <= v < 1 for v in sp.values())


def test_keep_count_rounds_half_to_even_keeps_one_and_all_at_zero():
    assert keep_count(10, 0.75) == 2  # round(2.5) = 2, as jnp.round
    assert keep_count(10, 0.65) == 4 and keep_count(10, 0.0) == 10 and keep_count(10, 0.999) == 1


def test_uniform_gives_every_layer_the_same_sparsity():
    shapes = {"a": (10, 10), "b": (30, 40)}
    sp = uniform_sparsities(shapes, 0.75)
    assert {k: keep_count(math.prod(v), sp[k]) for k, v in shapes.items()} == {"a": 25, "b": 300}


def test_gmp_fraction_scales_final_sparsity():
    assert gmp_fraction(9, 0, 20) == pytest.approx(0.875) and gmp_fraction(4, 5, 5) == 0.0
    assert gmp_sparsity(9, 0, 20, 0.5) == 0.5 * gmp_fraction(9, 0, 20)
