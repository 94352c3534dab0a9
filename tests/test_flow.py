"""Flows: monotone loss, stopping and status codes, vmap = loop, NaN isolation, one compilation per shape."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape  # noqa: F401
from landscape.config import ConfigError, build_flow, config_from_dict
from landscape.flow import (
    CONVERGED,
    MAX_STEPS,
    NONFINITE,
    T_MAX,
    GradientFlow,
    OptaxFlow,
    Status,
    init_batch,
    run_flow,
    run_flows,
    snapshot_steps,
    status_message,
    status_name,
)

BATCH = 4


@pytest.fixture(scope="module")
def setup():
    """tanh teacher-student on a fixed sample (cheap to compile); d = 3, orthonormal teacher, student width 3."""
    cfg = config_from_dict(
        {
            "problem": {"input_dim": 3, "activation": "tanh", "loss": "sample", "n_samples": 64},
            "teacher": {"width": 3, "kind": "orthonormal"},
            "student": {"width": 3},
            "flow": {"t_max": 200.0, "n_snapshots": 24, "max_steps": 4096, "grad_tol": 1e-8, "steps": 400},
        }
    )
    from landscape.config import build_problem

    problem = build_problem(cfg)
    theta0 = init_batch(jax.random.PRNGKey(0), problem, BATCH, scale=1.0)
    return cfg, problem, theta0


def _flow(cfg, **kw):
    return build_flow(dataclasses.replace(cfg.flow, **kw))


def _finite_increments(loss):
    """Successive differences of the finite (reached) part of each loss curve."""
    out = []
    for row in np.asarray(loss):
        row = row[np.isfinite(row)]
        out.append(np.diff(row))
    return np.concatenate(out)


def test_status_names_and_messages():
    assert status_name(0) == "CONVERGED" and status_name(CONVERGED) == "CONVERGED"
    assert [status_name(s) for s in (T_MAX, MAX_STEPS, NONFINITE)] == ["T_MAX", "MAX_STEPS", "NONFINITE"]
    assert status_name(99) == "UNKNOWN(99)"
    assert "flow.max_steps" in status_message(MAX_STEPS)
    assert "flow.t_max" in status_message(T_MAX) and "flow.lr" in status_message(NONFINITE)
    assert all(status_message(s) for s in Status)


def test_build_flow_static_and_traced(setup):
    import optax

    cfg, _, _ = setup
    gf = build_flow(cfg.flow)
    assert isinstance(gf, GradientFlow) and gf.max_steps == 4096 and gf.n_snapshots == 24
    assert isinstance(gf.t_max, jax.Array) and isinstance(gf.rtol, jax.Array)
    opt = _flow(cfg, method="adam")
    assert isinstance(opt, OptaxFlow) and opt.optimizer is optax.adam
    assert isinstance(opt.hyperparams["learning_rate"], jax.Array)
    with pytest.raises(ConfigError, match="flow.method"):
        build_flow(dataclasses.replace(cfg.flow, method="newton"))


def test_gradient_flow_monotone_snapshots_and_no_recompile(setup):
    cfg, problem, theta0 = setup
    traj = run_flows(problem, build_flow(cfg.flow), theta0)
    n_compiled = run_flows._cache_size()
    assert traj.loss.shape == (BATCH, 24) and traj.ts.shape == (BATCH, 24)
    ts = np.asarray(traj.ts[0])
    assert ts[0] == 0.0 and ts[-1] == 200.0 and np.all(np.diff(ts) > 0)
    assert set(np.asarray(traj.status)) <= {CONVERGED, T_MAX}
    # loss never increases along the flow, up to the solver tolerance
    inc = _finite_increments(traj.loss)
    assert inc.max() <= 1e-9, inc.max()
    # snapshot 0 is the initialisation; the final loss is no larger than the last reached snapshot
    np.testing.assert_allclose(traj.loss[:, 0], jax.vmap(problem.loss)(theta0), rtol=1e-12)
    assert np.all(np.asarray(traj.loss_final) <= np.nanmin(np.asarray(traj.loss), axis=1) + 1e-12)
    # new numbers (t_max, tolerances) reuse the compiled function
    traj2 = run_flows(problem, _flow(cfg, t_max=50.0, grad_tol=1e-7, rtol=1e-7, atol=1e-9), theta0)
    assert run_flows._cache_size() == n_compiled
    assert float(traj2.ts[0, -1]) == 50.0 and np.all(np.asarray(traj2.t_final) <= 50.0)


def test_converges_on_easy_problem_and_blanks_after_stop(setup):
    cfg, problem, _ = setup
    # start near the teacher: the flow reaches |grad L| <= grad_tol long before t_max
    tp = problem.teacher_params
    keys = jax.random.split(jax.random.PRNGKey(3), BATCH)
    theta0 = jax.vmap(
        lambda k: {"w": tp["w"] + 0.05 * jax.random.normal(k, tp["w"].shape), "a": tp["a"]}
    )(keys)
    traj = run_flows(problem, _flow(cfg, t_max=1e4), theta0)
    assert np.all(np.asarray(traj.status) == CONVERGED), traj.status
    assert np.all(np.asarray(traj.grad_norm_final) <= 1e-8)
    assert np.all(np.asarray(traj.loss_final) < 1e-12)
    assert np.all(np.asarray(traj.t_final) < 1e4)
    ts, loss = np.asarray(traj.ts), np.asarray(traj.loss)
    after = ts > np.asarray(traj.t_final)[:, None]
    assert after.any() and np.all(np.isnan(loss[after])) and np.all(np.isfinite(loss[~after]))


def test_vmapped_matches_loop_of_single_runs(setup):
    cfg, problem, theta0 = setup
    flow = build_flow(cfg.flow)
    batch = run_flows(problem, flow, theta0)
    single = jax.jit(run_flow)
    for i in range(BATCH):
        one = single(problem, flow, jax.tree.map(lambda x, i=i: x[i], theta0))
        assert int(one.status) == int(batch.status[i]) and int(one.n_steps) == int(batch.n_steps[i])
        np.testing.assert_allclose(one.theta["w"], batch.theta["w"][i], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(one.loss, batch.loss[i], rtol=1e-9, atol=1e-14, equal_nan=True)


@pytest.mark.parametrize("method", ["gradient_flow", "gd"])
def test_nan_init_flagged_and_batch_unaffected(setup, method):
    cfg, problem, theta0 = setup
    flow = _flow(cfg, method=method, lr=0.05)
    clean = run_flows(problem, flow, theta0)
    bad0 = jax.tree.map(lambda x: x.at[2].set(jnp.nan), theta0)
    bad = run_flows(problem, flow, bad0)
    assert int(bad.status[2]) == NONFINITE
    keep = np.array([0, 1, 3])
    np.testing.assert_array_equal(np.asarray(bad.status)[keep], np.asarray(clean.status)[keep])
    np.testing.assert_allclose(bad.loss[keep], clean.loss[keep], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(bad.theta["w"][keep], clean.theta["w"][keep], rtol=1e-12)


def test_max_steps_status_and_saved_params(setup):
    cfg, problem, theta0 = setup
    traj = run_flows(problem, _flow(cfg, max_steps=8, save_params=True), theta0)
    assert np.all(np.asarray(traj.status) == MAX_STEPS)
    assert np.all(np.asarray(traj.n_steps) == 8) and np.all(np.asarray(traj.t_final) < 200.0)
    # saved snapshot parameters: the initialisation first, losses consistent, NaN after the stop
    assert traj.params["w"].shape == (BATCH, 24, 3, 3)
    np.testing.assert_allclose(traj.params["w"][:, 0], theta0["w"])
    loss_from_params = jax.vmap(jax.vmap(problem.loss))(traj.params)
    np.testing.assert_allclose(loss_from_params, traj.loss, rtol=1e-12, equal_nan=True)
    assert np.isnan(np.asarray(traj.loss)[:, -1]).all() and np.isfinite(np.asarray(traj.loss)[:, :2]).all()


def test_gd_small_lr_monotone_ts_and_no_recompile(setup):
    cfg, problem, theta0 = setup
    traj = run_flows(problem, _flow(cfg, method="gd", lr=0.02, steps=400), theta0)
    n_compiled = run_flows._cache_size()
    assert _finite_increments(traj.loss).max() <= 0.0
    assert np.all(np.asarray(traj.status) == T_MAX) and np.all(np.asarray(traj.n_steps) == 400)
    idx = np.asarray(snapshot_steps(400, 24))
    np.testing.assert_allclose(traj.ts[0], idx * 0.02)
    np.testing.assert_allclose(traj.t_final, 400 * 0.02)
    # snapshot at step k equals k explicit gd steps
    theta = jax.tree.map(lambda x: x[0], theta0)
    for _ in range(int(idx[5])):
        theta = jax.tree.map(lambda p, g: p - 0.02 * g, theta, jax.grad(problem.loss)(theta))
    np.testing.assert_allclose(traj.loss[0, 5], problem.loss(theta), rtol=1e-10)
    # lr, steps, momentum, grad_tol are traced: no recompilation
    run_flows(problem, _flow(cfg, method="gd", lr=0.03, steps=300, momentum=0.5, grad_tol=1e-6), theta0)
    assert run_flows._cache_size() == n_compiled


@pytest.mark.parametrize("method", ["momentum", "adam"])
def test_optax_methods_reduce_loss(setup, method):
    cfg, problem, theta0 = setup
    traj = run_flows(problem, _flow(cfg, method=method, lr=0.02, steps=400), theta0)
    l0 = np.asarray(jax.vmap(problem.loss)(theta0))
    assert np.all(np.asarray(traj.loss_final) < 0.5 * l0)
    assert set(np.asarray(traj.status)) <= {CONVERGED, T_MAX}


def test_gd_divergence_is_flagged_not_raised(setup):
    cfg, problem, theta0 = setup
    traj = run_flows(problem, _flow(cfg, method="gd", lr=1e4, steps=400), theta0)
    assert np.all(np.asarray(traj.status) == NONFINITE)
    assert np.all(np.asarray(traj.n_steps) < 400)


def test_optax_flow_takes_any_transformation_and_traces_hyperparameters(setup):
    """A factory, an inject_hyperparams transformation and a plain chain; lr sweeps reuse one compilation."""
    import optax

    _, problem, theta0 = setup
    by_factory = run_flows(problem, OptaxFlow(optax.sgd, learning_rate=0.02, steps=100), theta0)
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=0.5)
    by_state = run_flows(problem, OptaxFlow(injected, learning_rate=0.02, steps=100), theta0)
    np.testing.assert_allclose(by_state.loss_final, by_factory.loss_final, rtol=1e-12)
    n_compiled = run_flows._cache_size()
    for lr in (0.01, 0.03):
        run_flows(problem, OptaxFlow(injected, learning_rate=lr, steps=100), theta0)
        run_flows(problem, OptaxFlow(optax.sgd, learning_rate=lr, steps=100), theta0)
    assert run_flows._cache_size() == n_compiled
    chained = OptaxFlow(optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.02)), steps=100)
    assert set(np.asarray(run_flows(problem, chained, theta0).status)) <= {CONVERGED, T_MAX}
    with pytest.raises(ValueError, match="inject_hyperparams"):
        run_flows(problem, OptaxFlow(optax.sgd(0.1), learning_rate=0.1, steps=10), theta0)
