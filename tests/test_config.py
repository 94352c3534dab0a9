import pytest

from landscape.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_toml,
    load_config,
)

BASE = {"problem": {"input_dim": 4}, "teacher": {"width": 3}, "student": {"width": 5}}


def _with(**sections):
    raw = {k: dict(v) for k, v in BASE.items()}
    for sec, kv in sections.items():
        raw.setdefault(sec, {}).update(kv)
    return raw


def test_defaults_fill_everything_but_sizes():
    cfg = config_from_dict(BASE)
    assert cfg.problem.activation == "relu" and cfg.init.count == 64 and cfg.polish.tol == 1e-10
    assert cfg.flow.method == "gradient_flow"


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (_with(problem={"bogus": 1}), "unknown key problem.bogus"),
        (_with(init={"count": "many"}), "init.count must be an integer"),
        (_with(init={"count": 0}), "init.count = 0 must be >= 1"),
        (_with(problem={"loss": "exact"}), "problem.loss = 'exact' is not valid"),
        (_with(problem={"activation": "swish"}), "problem.activation: unknown activation 'swish'"),
        (_with(teacher={"width": 9}), "teacher.width = 9 exceeds problem.input_dim = 4"),
        (_with(init={"scale": -1.0}), "init.scale = -1.0 must be > 0"),
        (_with(polish={"segment_iters": -1}), "polish.segment_iters = -1 must be >= 0"),
        (_with(flow={"method": "sgd"}), "flow.method = 'sgd' is not valid"),
        (_with(student={"bias": True}), "population"),
        (_with(student={"hidden_widths": [4, 4]}), "student.hidden_widths = [4, 4] must end with student.width = 5"),
        ({"problem": {"input_dim": 4}, "teacher": {"width": 3}}, "missing section [student]"),
        (_with(extra={"x": 1}), "unknown section [extra]"),
        ({"problem": {}, "teacher": {"width": 3}, "student": {"width": 5}}, "missing required key problem.input_dim"),
        (_with(student={"train_output_weights": False, "output_weights": [1, 2]}), "needs student.width = 5"),
    ],
)
def test_bad_input_is_one_clear_line(raw, fragment):
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw)
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg


def test_int_accepted_for_float_and_bool_rejected_for_int():
    assert config_from_dict(_with(init={"scale": 1})).init.scale == 1.0
    with pytest.raises(ConfigError, match="init.count must be an integer"):
        config_from_dict(_with(init={"count": True}))


def test_overrides_and_toml_roundtrip(tmp_path):
    raw = apply_overrides(BASE, ["init.count=7", "problem.activation=\"erf\"", "flow.t_max=1e3"])
    cfg = config_from_dict(raw)
    assert cfg.init.count == 7 and cfg.problem.activation == "erf" and cfg.flow.t_max == 1000.0
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(path) == cfg
    assert load_config(path, ["init.seed=3"]).init.seed == 3
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        apply_overrides(BASE, ["count=3"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[problem\ninput_dim = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_shipped_configs_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].joinpath("configs").glob("*.toml")):
        load_config(path)
