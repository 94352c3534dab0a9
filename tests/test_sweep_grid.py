"""Grid expansion of [sweep] tables: products, zips, seeds, and one-line errors before anything runs."""

import pytest

import landscape  # noqa: F401  (x64)
from landscape.config import ConfigError, config_from_dict, config_to_toml
from landscape.grid import config_hash, derive_seed, expand_sweep, resolved_dict

BASE = {"problem": {"input_dim": 4}, "teacher": {"width": 3}, "student": {"width": 4}, "init": {"seed": 7}}


def with_sweep(**sweep):
    return {**BASE, "sweep": sweep}


def test_cartesian_grid_order_values_and_configs():
    pts = expand_sweep(with_sweep(grid={"student.width": [3, 4, 5], "init.scale": [1e-4, 1e-2]}))
    assert len(pts) == 6
    assert [p.values for p in pts[:3]] == [
        {"student.width": 3, "init.scale": 1e-4},
        {"student.width": 3, "init.scale": 1e-2},
        {"student.width": 4, "init.scale": 1e-4},
    ]
    for p in pts:
        assert p.config.student.width == p.values["student.width"]
        assert p.config.init.scale == p.values["init.scale"]
        assert p.config.init.seed == p.seed
        assert p.config.teacher.width == 3  # untouched keys keep the base values
    assert [p.index for p in pts] == list(range(6))
    assert len({p.seed for p in pts}) == 6  # every point has its own seed


def test_zip_and_product_with_grid():
    pts = expand_sweep(with_sweep(grid={"student.width": [4, 5]}, zip={"flow.lr": [0.1, 0.2, 0.3], "init.count": [1, 2,
                                                                                                                   3]}))
    assert len(pts) == 6
    assert [(p.config.student.width, p.config.flow.lr, p.config.init.count) for p in pts] == [
        (4, 0.1, 1), (4, 0.2, 2), (4, 0.3, 3), (5, 0.1, 1), (5, 0.2, 2), (5, 0.3, 3)]
    only_zip = expand_sweep(with_sweep(zip={"student.width": [4, 5], "init.scale": [1.0, 0.5]}))
    assert [(p.config.student.width, p.config.init.scale) for p in only_zip] == [(4, 1.0), (5, 0.5)]


def test_sweep_of_one_keeps_base_seed():
    (p,) = expand_sweep(BASE)
    assert p.values == {} and p.seed == 7 and p.config.init.seed == 7 and p.label == "base"
    (q,) = expand_sweep({**BASE, "sweep": {}})
    assert q.seed == 7


def test_seeds_depend_on_values_not_position():
    a = expand_sweep(with_sweep(grid={"student.width": [4, 5]}))
    b = expand_sweep(with_sweep(grid={"student.width": [3, 5, 4]}))
    seed_a = {p.values["student.width"]: p.seed for p in a}
    seed_b = {p.values["student.width"]: p.seed for p in b}
    assert seed_a[4] == seed_b[4] and seed_a[5] == seed_b[5]
    # the base seed matters, and ints given for float keys name the same point as floats
    assert derive_seed(7, {"init.scale": 1.0}) != derive_seed(8, {"init.scale": 1.0})
    c = expand_sweep(with_sweep(grid={"init.scale": [1, 0.5]}))
    d = expand_sweep(with_sweep(grid={"init.scale": [1.0, 0.5]}))
    assert [p.seed for p in c] == [p.seed for p in d]
    assert c[0].config.init.scale == 1.0 and isinstance(c[0].values["init.scale"], float)


def test_explicit_seed_grid_is_used_as_given():
    pts = expand_sweep(with_sweep(grid={"init.seed": [11, 12]}))
    assert [p.config.init.seed for p in pts] == [11, 12]


def test_sweep_may_supply_required_sizes():
    raw = {"problem": {"input_dim": 4}, "teacher": {"width": 3}, "student": {}, "sweep": {"grid": {"student.width":
                                                                                                   [2, 3]}}}
    assert [p.config.student.width for p in expand_sweep(raw)] == [2, 3]


@pytest.mark.parametrize(
    ("sweep", "match"),
    [
        ({"grid": {"student.wdith": [1, 2]}}, "unknown key 'wdith'"),
        ({"grid": {"nosuch.width": [1]}}, "unknown section"),
        ({"grid": {"width": [1]}}, "section.key"),
        ({"grid": {}}, "sweep.grid is empty"),
        ({"grid": {"student.width": []}}, "empty list"),
        ({"grid": {"student.width": 3}}, "must be a list"),
        ({"grid": {"student.width": [3, 3]}}, "twice"),
        ({"zip": {"student.width": [3, 4], "init.scale": [1.0]}}, "equal lengths"),
        ({"grid": {"student.width": [3]}, "zip": {"student.width": [4]}}, "both"),
        ({"grdi": {"student.width": [3]}}, "unknown key sweep.grdi"),
        ({"grid": {"student.width": [3, 0]}}, "sweep point student.width=0: student.width = 0 must be >= 1"),
        ({"grid": {"init.scale": [1.0, "big"]}}, "sweep point init.scale=big: init.scale must be a number"),
        ({"grid": {"teacher.width": [3, 9]}}, "sweep point teacher.width=9: teacher.width = 9 exceeds"),
    ],
)
def test_bad_sweeps_give_one_line(sweep, match):
    with pytest.raises(ConfigError, match=match) as e:
        expand_sweep(with_sweep(**sweep))
    assert "\n" not in str(e.value)


def test_resolved_config_round_trips_and_hash_is_stable():
    import tomllib

    raw = with_sweep(grid={"student.width": [3, 4]}, zip={"init.scale": [1e-3, 1.0]})
    pts = expand_sweep(raw)
    resolved = resolved_dict(raw, pts)
    assert resolved["init"]["seed"] == 7 and "sweep" in resolved
    again = tomllib.loads(config_to_toml(resolved))
    assert config_hash(again) == config_hash(resolved)
    assert [p.config for p in expand_sweep(again)] == [p.config for p in pts]
    assert config_from_dict({k: v for k, v in again.items() if k != "sweep"}).flow == pts[0].config.flow
    other = with_sweep(grid={"student.width": [3, 5]}, zip={"init.scale": [1e-3, 1.0]})
    assert config_hash(resolved_dict(other, expand_sweep(other))) != config_hash(resolved)
