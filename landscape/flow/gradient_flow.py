"""Gradient flow d theta / dt = -grad L(theta) for one student, integrated with diffrax.

Solver choice: Tsit5 (explicit 5(4) Runge-Kutta, stage loop as a plain ``lax`` loop since we never differentiate
through the solve) with a PID step-size controller on (rtol, atol). Its step size is capped by stability at about
3.5 / lambda_max(H), so it needs ~ t * lambda_max / 3.5 steps; small eigenvalues and the long plateaus after small
initialisation make the flow *slow* but cost nothing extra (the controller takes large steps there). For the
ReLU population loss this is the robust choice: measured on d = k = 4 (16 inits, t_max = 1e4), Tsit5 takes
200-450 steps per trajectory, while the implicit Kvaerno5 takes 1000-2100 (its Newton iterations use a Hessian
that jumps at the kinks of the ReLU kernel), runs ~40x slower and compiles ~4x longer. Implicit solvers pay off
for smooth problems that are genuinely stiff over a long horizon: for a softplus student near its teacher
(Hessian eigenvalues from 1e-5 to 4, t_max = 1e4) Tsit5 needs 10k-13k steps, Kvaerno5 190-300 (15x faster
runs); pass ``solver=diffrax.Kvaerno5()`` to :class:`GradientFlow` there.

Stopping: a boolean diffrax Event ends the solve at the end of the first accepted step where |grad L| <= grad_tol,
or where the state is NaN/inf or diverged (loss > 1e30). ``throw=False`` so a failing element never aborts a
vmapped batch; diffrax's result codes become :class:`landscape.flow.trajectory.Status` codes.

Compiled programs without host callbacks: diffrax validates its inputs with ``equinox.error_if`` (the first step
has the sign of t1 - t0, the save times are sorted and inside [t0, t1]). With traced times these checks become
runtime checks, which equinox implements as host callbacks, and JAX never writes a program with host callbacks to
the persistent compilation cache, so every process recompiled the flow. These three conditions hold by
construction here (the first step is min(dt, t_max - t) >= 0, the save times are sorted and clipped into the
solve's interval), so the solve is traced with equinox's runtime checks off (:func:`_without_host_checks`): the
same numbers, no callbacks, and the flow programs are cached like every other stage.
"""

from __future__ import annotations

import contextlib

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .trajectory import (
    CONVERGED,
    MAX_STEPS,
    NONFINITE,
    RUNNING,
    SOLVER_FAILED,
    T_MAX,
    AbstractFlow,
    Trajectory,
    is_bad,
    loss_and_grad,
    mask_after_stop,
    snapshot_times,
    summaries,
)

__all__ = ["GradientFlow", "FlowSegment"]


@contextlib.contextmanager
def _without_host_checks():
    """Trace the enclosed code with equinox's default runtime checks (``error_if``) off (module docstring).

    Only for code whose checked conditions hold by construction. Scoped to the trace: the checks are traced
    unjitted (equinox's own ``filter_jit`` cache, shared with other callers, is not touched) and restored on exit;
    an explicit ``on_error`` is honoured. Another equinox version without these internals: the checks stay on
    (correct results, the program is just not cacheable; ``tests/test_programs.py`` notices).
    """
    try:
        from equinox import _errors
        impl, jitted = _errors.branched_error_if_impl, _errors.branched_error_if_impl_jit
    except (ImportError, AttributeError):
        yield
        return

    def unchecked(x, pred, index, msgs, *, on_error):
        return impl(x, pred, index, msgs, on_error="off" if on_error == "default" else on_error)

    _errors.branched_error_if_impl_jit = unchecked
    try:
        yield
    finally:
        _errors.branched_error_if_impl_jit = jitted


class FlowSegment(eqx.Module):
    """The state a packed gradient flow carries between segments: the trajectory so far and the next first step."""

    trajectory: Trajectory
    dt: jax.Array


class GradientFlow(AbstractFlow):
    """Gradient flow on [0, t_max] stopped at |grad L| <= grad_tol; numbers are traced, structure static.

        d theta / dt = -grad L(theta),   theta(0) = theta0,   t in [0, t_max]

    integrated adaptively (see the module docstring); snapshots at S log-spaced times. Under ``vmap`` every student
    stops on its own and gets its own status code; new values of the traced fields reuse the compilation.

    Args:
        t_max: time horizon (traced).
        grad_tol: stop once |grad L| <= grad_tol (traced).
        rtol, atol: step-size controller tolerances (traced).
        t_min: first nonzero snapshot time (traced; default t_max * 1e-6).
        max_steps: diffrax step budget (static: it bounds the solver loop).
        segment_steps: steps per segment when a batch runs in segments with its unfinished lanes re-packed
            (:func:`landscape.flow.run_flows_packed`, what :func:`landscape.explore` uses); 0 runs every
            trajectory as one solve. A segment restarts the step-size controller from its end state (one extra
            gradient evaluation and its initial step-size choice), so step counts differ slightly from one solve.
        n_snapshots, save_params: static snapshot settings (S log-spaced times; also store parameters there).
        solver: the diffrax solver (static), Tsit5 by default; ``diffrax.Kvaerno5()`` for stiff smooth problems.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> flow = ls.GradientFlow(t_max=300.0)
        >>> float(flow.t_max), flow.n_snapshots
        (300.0, 64)
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> traj = ls.run_flow(problem, flow, {"w": jnp.eye(3)[:2] + 0.1, "a": jnp.ones(2)})  # doctest: +SKIP
        >>> ls.flow.status_name(traj.status)  # doctest: +SKIP
        'CONVERGED'

    References:
        Kumar & Haupt, `Early Directional Convergence in Deep Homogeneous Neural Networks for Small
        Initializations <https://arxiv.org/abs/2403.08121>`_, 2024 (gradient flow from small initialisations).
    """

    t_max: jax.Array
    grad_tol: jax.Array
    rtol: jax.Array
    atol: jax.Array
    t_min: jax.Array
    max_steps: int = eqx.field(static=True)
    segment_steps: int = eqx.field(static=True)
    n_snapshots: int = eqx.field(static=True)
    save_params: bool = eqx.field(static=True)
    solver: diffrax.AbstractSolver = eqx.field(static=True)

    def __init__(self, t_max=1.0e4, *, grad_tol=1.0e-6, rtol=1.0e-8, atol=1.0e-10, t_min=None,
                 max_steps: int = 200_000, segment_steps: int = 256, n_snapshots: int = 64,
                 save_params: bool = False, solver: diffrax.AbstractSolver | None = None):
        self.t_max = jnp.asarray(t_max, float)
        self.grad_tol = jnp.asarray(grad_tol, float)
        self.rtol = jnp.asarray(rtol, float)
        self.atol = jnp.asarray(atol, float)
        self.t_min = self.t_max * 1e-6 if t_min is None else jnp.asarray(t_min, float)
        self.max_steps = int(max_steps)
        self.segment_steps = int(segment_steps)
        self.n_snapshots = int(n_snapshots)
        self.save_params = bool(save_params)
        self.solver = diffrax.Tsit5(scan_kind="lax") if solver is None else solver

    def start(self, problem, theta0) -> FlowSegment:
        """The state before the first segment (one student): t = 0, no steps, status RUNNING, no snapshots."""
        ts = snapshot_times(self.t_max, self.n_snapshots, self.t_min)
        s = summaries(problem, theta0, self.save_params)
        blank = jax.tree.map(lambda x: jnp.full((self.n_snapshots,) + jnp.shape(x), jnp.nan, jnp.result_type(x)),
                             s)
        traj = Trajectory(theta=theta0, t_final=jnp.zeros((), float), n_steps=jnp.zeros((), jnp.int32),
                          status=jnp.asarray(RUNNING, jnp.int32), ts=ts, loss=blank["loss"],
                          grad_norm=blank["grad_norm"], param_norm=blank["param_norm"], params=blank.get("params"),
                          loss_final=s["loss"], grad_norm_final=s["grad_norm"])
        return FlowSegment(trajectory=traj, dt=jnp.asarray(jnp.nan, float))

    def advance(self, problem, segment: FlowSegment) -> FlowSegment:
        """At most ``segment_steps`` more solver steps from ``segment`` (one student; see :meth:`start`).

        The solve runs on [t_start, t_max] with the same stopping event as :meth:`run`, its first step the last
        accepted step of the previous segment (so the controller does not climb back from a cold start's step);
        snapshots planned in (t_start, t_end] are filled in (the planned times are clipped into the segment, so
        the saves outside it are discarded). The status stays RUNNING while the segment only ran out of steps
        and the total budget ``max_steps`` is not used up; a finished segment passes through unchanged.
        """
        state = segment.trajectory
        t_start = state.t_final
        ts = state.ts
        dt0 = jnp.where(jnp.isfinite(segment.dt), jnp.minimum(segment.dt, self.t_max - t_start), jnp.nan)
        sol, theta, t_end, n_seg = self._solve(problem, state.theta, t_start, jnp.clip(ts, t_start, self.t_max),
                                               self.segment_steps, dt0=dt0)
        n_total = state.n_steps + n_seg
        final = summaries(problem, theta)
        bad = is_bad(final["loss"], final["grad_norm"])
        res = sol.result
        out_of_steps = res == diffrax.RESULTS.max_steps_reached
        status = jnp.select(
            [bad, (res == diffrax.RESULTS.event_occurred) | (final["grad_norm"] <= self.grad_tol),
             res == diffrax.RESULTS.successful, out_of_steps & (n_total >= self.max_steps), out_of_steps],
            [NONFINITE, CONVERGED, T_MAX, MAX_STEPS, RUNNING],
            default=SOLVER_FAILED,
        ).astype(jnp.int32)
        snaps = sol.ys[0]
        fresh = (sol.ts[0] <= t_end) & jnp.isfinite(sol.ts[0]) & ((ts > t_start) | (t_start == 0))

        def merge(old, new):
            m = fresh.reshape(fresh.shape + (1,) * (new.ndim - 1))
            return jnp.where(m, new, old)

        new = Trajectory(theta=theta, t_final=t_end, n_steps=n_total, status=status, ts=ts,
                         loss=merge(state.loss, snaps["loss"]), grad_norm=merge(state.grad_norm, snaps["grad_norm"]),
                         param_norm=merge(state.param_norm, snaps["param_norm"]),
                         params=None if state.params is None else jax.tree.map(merge, state.params, snaps["params"]),
                         loss_final=final["loss"], grad_norm_final=final["grad_norm"])
        # the last accepted step: the first of the next segment
        steps_t = sol.ys[2]
        k = jnp.sum(jnp.isfinite(steps_t))
        last = jnp.where(k >= 2, steps_t[jnp.maximum(k - 1, 0)] - steps_t[jnp.maximum(k - 2, 0)], t_end - t_start)
        new = FlowSegment(trajectory=new, dt=jnp.where(last > 0, last, jnp.nan))
        running = state.status == RUNNING
        return jax.tree.map(lambda a, b: jnp.where(running, a, b), new, segment)

    def _solve(self, problem, theta0, t0, save_ts, max_steps: int, dt0=None):
        """One diffrax solve on [t0, t_max] saving ``summaries`` at ``save_ts``: (solution, theta, t_end, steps).

        With ``dt0`` (a segment; NaN: choose automatically) the accepted step times are saved too (``sol.ys[2]``).
        """
        def vector_field(t, y, args):
            return jax.tree.map(jnp.negative, loss_and_grad(problem, y)[1])

        def stop(t, y, args, **kwargs):
            s = summaries(problem, y)
            return (s["grad_norm"] <= self.grad_tol) | is_bad(s["loss"], s["grad_norm"])

        save_params = self.save_params
        subs = [
            diffrax.SubSaveAt(ts=save_ts, fn=lambda t, y, args: summaries(problem, y, save_params)),
            diffrax.SubSaveAt(t1=True),
        ]
        if dt0 is not None:
            subs.append(diffrax.SubSaveAt(steps=True, fn=lambda t, y, args: t))
            controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
            # NaN: let diffrax choose the first step (its initial-step heuristic), as a single solve does
            auto = controller.init(diffrax.ODETerm(vector_field), t0, self.t_max, theta0, None, None,
                                   self.solver.func, self.solver.error_order(diffrax.ODETerm(vector_field)))[0] - t0
            dt0 = jnp.where(jnp.isfinite(dt0), dt0, auto)
        saveat = diffrax.SaveAt(subs=subs)
        with _without_host_checks():  # dt0 >= 0 and sorted save times in [t0, t_max] by construction
            sol = diffrax.diffeqsolve(
                diffrax.ODETerm(vector_field),
                self.solver,
                t0=t0,
                t1=self.t_max,
                dt0=dt0,
                y0=theta0,
                saveat=saveat,
                stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
                event=diffrax.Event(stop),
                max_steps=max_steps,
                adjoint=diffrax.ForwardMode(),
                throw=False,
            )
        theta = jax.tree.map(lambda x: x[0], sol.ys[1])
        return sol, theta, sol.ts[1][0], jnp.asarray(sol.stats["num_steps"], jnp.int32)

    def run(self, problem, theta0) -> Trajectory:
        """Integrate d theta/dt = -grad L from theta0 (one student) as one solve; see the module docstring."""
        ts = snapshot_times(self.t_max, self.n_snapshots, self.t_min)
        sol, theta, t_final, n_steps = self._solve(problem, theta0, 0.0, ts, self.max_steps)
        snaps = sol.ys[0]
        final = summaries(problem, theta)
        bad = is_bad(final["loss"], final["grad_norm"])
        res = sol.result
        status = jnp.select(
            [
                bad,
                (res == diffrax.RESULTS.event_occurred) | (final["grad_norm"] <= self.grad_tol),
                res == diffrax.RESULTS.successful,
                res == diffrax.RESULTS.max_steps_reached,
            ],
            [NONFINITE, CONVERGED, T_MAX, MAX_STEPS],
            default=SOLVER_FAILED,
        ).astype(jnp.int32)
        # unreached save times are +inf in diffrax; blank them (and anything after a blow-up) with NaN
        reached = (sol.ts[0] <= t_final) & jnp.isfinite(sol.ts[0])
        snaps = mask_after_stop(snaps, reached)
        return Trajectory(
            theta=theta,
            t_final=t_final,
            n_steps=n_steps,
            status=status,
            ts=ts,
            loss=snaps["loss"],
            grad_norm=snaps["grad_norm"],
            param_norm=snaps["param_norm"],
            params=snaps.get("params"),
            loss_final=final["loss"],
            grad_norm_final=final["grad_norm"],
        )
