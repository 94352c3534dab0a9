"""Polishing: drive grad L to zero in float64 from a point near a critical point (minimum or saddle).

Levenberg-Marquardt on the gradient system g(theta) = grad L(theta) = 0, whose Jacobian is the symmetric Hessian
H = V diag(lambda) V^T (dense, of the flattened parameters via ``ravel_pytree``):

    step = -(H^2 + mu I)^{-1} H g = -V diag(lambda / (lambda^2 + mu)) V^T g,  mu = c |g| (|g| > 1e-6), c 1e6 |g|^2 below

with c adapted by the trust-region ratio rho = (|g|^2 - |g_new|^2) / (|g|^2 - |g + H step|^2) (step accepted when
rho > 1e-4 and |g| decreases; c * 4 when rho < 0.25, c / 4 when rho > 0.75). The choice mu ~ |g|^2 (Yamashita &
Fukushima 2001) keeps quadratic convergence when the solution set is not isolated (permutation, rescaling and
splitting symmetries make H singular on manifolds of critical points, README science section 1); the ratio test raises
c where the linear model fails. Directions with |lambda| <= 1e-14 max|lambda| get no step, so the iterate
converges to a nearby point of the critical manifold. Newton-type steps do not care about the index, so saddles
polish as well as minima. Convergence is quadratic at Morse-Bott points (relu global minimum: 1e-2 -> 5e-16 in
4 iterations) and only linear where the loss is flatter than quadratic transversally (split global minima with
zero residual are quartic across the split), where |g| reaches 1e-11 in a few iterations and 1e-14 only
sometimes. Stops when |g| <= tol, after ``max_iter`` iterations, when c exceeds 1e20 (stagnation at round-off),
or on NaN (``converged`` False, no exception).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["PolishResult", "PolishState", "polish", "polish_start", "polish_advance", "polish_running",
           "polish_result", "polish_batch", "dense_hessian", "flat_gradient", "hessian_block_size",
           "tangent_words", "HESSIAN_BLOCK_BYTES"]

_C_MIN, _C_MAX = 1.0e-8, 1.0e20

HESSIAN_BLOCK_BYTES = 64 * 2**20
"""Bytes of tangent-carrying intermediates one block of Hessian columns may hold per point (see
:func:`hessian_block_size`)."""


def tangent_words(problem) -> int:
    """float64 words of loss intermediates that each Hessian tangent carries (forward-over-reverse), per point.

    A static count from the problem's structure: a sample loss pushes every tangent through the activations of all
    n inputs, ~ 4 n (m + 1) for hidden widths summing to m; the population loss through its (m + k) m kernel
    entries, ~ 16 (m + k) m with closed forms and, with quadrature, ~ 16 (m + k) m moments plus the grid blocks of
    the quadrature, ``grid_block_nodes(q)`` per pair, as an allowance should a transformation ever batch the grid
    under the tangents (JAX's custom-JVP rule keeps it out today: the tangents only scale moments).
    """
    from ..problem.kernels import grid_block_nodes, has_closed_form

    student = problem.student
    m = int(sum(student.hidden_widths))
    if problem.loss_kind == "sample":
        return 4 * int(problem.x.shape[0]) * (m + 1)
    k = int(problem.teacher.width)
    words = 16 * (m + k) * m
    act, bias = student.activation, bool(student.bias or problem.teacher.bias)
    if not has_closed_form(act, bias):
        order = problem.objective.quadrature_order
        q = int(act.quadrature_order if order is None else order)
        words += (m + k) * m * grid_block_nodes(q)
    return int(words)


def hessian_block_size(problem, n_params: int) -> int:
    """Hessian columns (unit tangents) computed at once for ``problem``: static, in [1, n_params].

    B = HESSIAN_BLOCK_BYTES // (8 * :func:`tangent_words`), at most P; B = P is one ``jax.jacfwd`` over the
    gradient (the fastest), as for closed-form population losses and small sample losses.
    """
    per = 8 * max(1, tangent_words(problem))
    return int(max(1, min(int(n_params), HESSIAN_BLOCK_BYTES // per)))


def flat_gradient(problem, unravel):
    """grad L as a function of the flat trainable vector x (P,): ``x -> ravel(grad L(unravel(x)))``.

    The problem's own :meth:`~landscape.TeacherStudent.value_and_grad`: the closed form where the loss has one
    (population loss of relu and leaky relu nets without biases), else reverse-mode autodiff. Forward mode over the
    closed form is what :func:`dense_hessian` differentiates: the Hessian of the d = 6 Safran-Shamir problem (P =
    36) costs 3x less than ``jax.hessian`` of the loss (forward over reverse through the kernel), and the two agree
    to 1e-15 relative at random, coincident, parallel, antiparallel and zero neurons.

    Args:
        problem: a problem with ``value_and_grad(theta)`` (or only ``loss``: then ``jax.grad``).
        unravel: the inverse of ``ravel_pytree`` for the trainable dict.

    Returns:
        A pure function (P,) -> (P,), in the order of ``ravel_pytree``.
    """
    value_and_grad = getattr(problem, "value_and_grad", None)
    if value_and_grad is None:
        return jax.grad(lambda x: problem.loss(unravel(x)))
    return lambda x: ravel_pytree(value_and_grad(unravel(x))[1])[0]


def dense_hessian(f, x, block_size: int | None = None, grad=None):
    """Dense Hessian of a scalar function ``f`` at the flat vector ``x`` (P,), column-block by column-block.

    H[:, J] = d/de grad f(x + e_J) for blocks J of ``block_size`` unit tangents: the gradient is linearised once
    (``jax.linearize``, forward mode over the gradient) and the linear map is applied to the blocks under
    ``jax.lax.map``, so only ``block_size`` tangents are carried through the loss's intermediates at a time.
    ``block_size`` None or >= P is ``jax.jacfwd(grad)(x)`` (with the default gradient, ``jax.hessian(f)(x)``).
    Not symmetrised. Pure, jittable, vmappable.

    Args:
        f: scalar function of a (P,) array.
        x: (P,) point.
        block_size: columns per block (static).
        grad: the gradient of ``f`` as a function (P,) -> (P,), e.g. a closed form (:func:`flat_gradient`);
            default ``jax.grad(f)`` (reverse mode).

    Returns:
        (P, P) array H_ij = d^2 f / dx_i dx_j.

    Example:
        >>> import jax.numpy as jnp
        >>> from landscape.flow.polish import dense_hessian
        >>> f = lambda x: jnp.sum(x**3) + x[0] * x[1]
        >>> h = dense_hessian(f, jnp.arange(3.0), block_size=2)
        >>> h.tolist()
        [[0.0, 1.0, 0.0], [1.0, 6.0, 0.0], [0.0, 0.0, 12.0]]
    """
    grad = jax.grad(f) if grad is None else grad
    n = x.shape[0]
    if block_size is None or int(block_size) >= n:
        return jax.jacfwd(grad)(x)
    b = max(1, int(block_size))
    n_blocks = -(-n // b)
    _, hvp = jax.linearize(grad, x)
    basis = jnp.eye(n_blocks * b, n, dtype=x.dtype).reshape(n_blocks, b, n)  # padded rows are zero tangents
    cols = jax.lax.map(jax.vmap(hvp), basis)  # (n_blocks, b, n): row j of block J is H e_{J b + j}
    return cols.reshape(n_blocks * b, n)[:n].T


class PolishResult(eqx.Module):
    """Result of :func:`polish` for one point (leaves gain a leading axis under vmap).

    Attributes:
        theta: polished trainable parameters (dict pytree).
        loss: L(theta).
        grad_norm: |grad L(theta)| (Euclidean norm over all trainable parameters).
        n_iter: LM iterations taken (accepted and rejected).
        converged: grad_norm <= tol.

    See :func:`polish` for an example.
    """

    theta: dict
    loss: jax.Array
    grad_norm: jax.Array
    n_iter: jax.Array
    converged: jax.Array


class PolishState(eqx.Module):
    """The Levenberg-Marquardt iteration of :func:`polish` between two segments (one point; leaves gain a leading
    axis under vmap): the accepted iterate with its gradient and Hessian eigendecomposition, the damping, and the
    next trial point.

    Attributes:
        theta: accepted iterate (trainable dict).
        g: (P,) flat gradient at theta; gn: |g| (inf before the first pass).
        lam, v: (P,) eigenvalues and (P, P) eigenvectors (columns) of the Hessian at theta.
        c: damping factor; it: passes done (the first only evaluates the start); loss: L(theta).
        x_try: (P,) flat trial point of the next pass; predicted: its predicted reduction of |g|^2.
    """

    theta: dict
    g: jax.Array
    gn: jax.Array
    lam: jax.Array
    v: jax.Array
    c: jax.Array
    it: jax.Array
    loss: jax.Array
    x_try: jax.Array
    predicted: jax.Array


def polish_start(theta) -> PolishState:
    """The state before the first pass of :func:`polish` at ``theta`` (one point; no evaluation yet)."""
    x0, _ = ravel_pytree(theta)
    n = x0.shape[0]
    zero = jnp.zeros((), x0.dtype)
    return PolishState(theta=theta, g=jnp.zeros(n, x0.dtype), gn=jnp.asarray(jnp.inf, x0.dtype),
                       lam=jnp.zeros(n, x0.dtype), v=jnp.eye(n, dtype=x0.dtype), c=jnp.asarray(1.0, x0.dtype),
                       it=jnp.int32(0), loss=zero, x_try=x0, predicted=zero)


def polish_running(state: PolishState, tol, max_iter: int):
    """Whether :func:`polish` would take another pass from ``state``: the first, or |g| > tol with iterations and
    damping left and |g| finite."""
    return _running(state.it, state.gn, state.c, tol, max_iter)


def _running(it, gn, c, tol, max_iter: int):
    return (it == 0) | ((it <= max_iter) & (gn > tol) & jnp.isfinite(gn) & (c < _C_MAX))


def polish_advance(problem, state: PolishState, *, tol=1e-10, max_iter: int = 100, steps=None) -> PolishState:
    """At most ``steps`` more passes of :func:`polish` from ``state`` (None: until it stops); pure, vmappable.

    The passes are those of one uninterrupted :func:`polish`: a run cut into segments reaches the same iterate.
    ``tol`` and ``steps`` may be traced, ``max_iter`` is static.
    """
    _, unravel = ravel_pytree(state.theta)
    f = lambda x: problem.loss(unravel(x))  # noqa: E731
    n_params = state.x_try.shape[0]
    block = hessian_block_size(problem, n_params)  # static: Hessian columns per block (P: one jacfwd)
    grad = flat_gradient(problem, unravel)  # the closed form where there is one: what the Hessian differentiates

    def local(x):
        # value, gradient and Hessian eigendecomposition at x; traced once (the loop evaluates trial points only)
        loss, g = jax.value_and_grad(f)(x)
        h = dense_hessian(f, x, block, grad)
        lam, v = jnp.linalg.eigh(0.5 * (h + h.T))
        return loss, g, jnp.linalg.norm(g), lam, v

    def trial(x, g, gn, lam, v, c):
        # Two candidate steps in the eigenbasis; returns the chosen one and the predicted |g|^2 reduction of the
        # linear model g + H s. (1) LM: s = -V diag(lam / (lam^2 + mu)) V^T g. (2) Newton with a pseudo-inverse
        # (|lam| > 1e-10 max|lam|), taken once |g| < 1e-6 when it halves |g| and is short: in quartic-flat
        # valleys (split global minima, Hessian ~ delta^2 along the split) it shrinks delta by 1/3 per step.
        lam_max = jnp.max(jnp.abs(lam))
        gt = v.T @ g
        # mu ~ |g| far from a critical point (globalisation, Fan & Yuan 2005), ~ |g|^2 once |g| < 1e-6 (end game,
        # Yamashita & Fukushima 2001); continuous at the switch.
        mu = c * jnp.where(gn > 1e-6, gn, 1e6 * gn**2)
        lam_eff = jnp.where(jnp.abs(lam) > 1e-14 * lam_max, lam, 0.0)
        coef = jnp.where(lam_eff == 0.0, 0.0, lam_eff / (lam_eff**2 + mu))
        st_lm = -coef * gt
        keep = jnp.abs(lam) > 1e-10 * lam_max
        st_nt = -jnp.where(keep, gt / jnp.where(keep, lam, 1.0), 0.0)
        x_nt = x + v @ st_nt
        gn_nt = jnp.linalg.norm(jax.grad(f)(x_nt))
        short = jnp.linalg.norm(st_nt) <= 1e-2 * jnp.maximum(1.0, jnp.linalg.norm(x))
        near = gn < 1e-6  # only in the end game: far from a critical point a full Newton step can jump basins
        use_nt = near & short & jnp.isfinite(gn_nt) & (gn_nt < 0.5 * gn)
        st = jnp.where(use_nt, st_nt, st_lm)
        return x + v @ st, gn**2 - jnp.sum((gt + lam * st) ** 2)

    it0, steps = state.it, jnp.iinfo(jnp.int32).max if steps is None else jnp.asarray(steps, jnp.int32)

    def cond(s):
        _, _, gn, _, _, c, it, _, _, _ = s
        return (it - it0 < steps) & _running(it, gn, c, tol, max_iter)

    def body(s):
        x, g, gn, lam, v, c, it, loss, x_try, predicted = s
        loss_n, g_n, gn_n, lam_n, v_n = local(x_try)
        rho = (gn**2 - gn_n**2) / jnp.maximum(predicted, jnp.finfo(x.dtype).tiny)
        first = it == 0  # the first pass only evaluates the starting point
        ok = first | (jnp.isfinite(gn_n) & (gn_n < gn) & (rho > 1e-4))
        c = jnp.where(first, c, jnp.where(rho < 0.25, 4.0 * c, jnp.where(rho > 0.75, jnp.maximum(c / 4.0, _C_MIN), c)))
        c = jnp.where(first | jnp.isfinite(rho), c, 4.0 * c)
        pick = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
        x, g, gn, lam, v, loss = (pick(a, b) for a, b in zip((x_try, g_n, gn_n, lam_n, v_n, loss_n),
                                                              (x, g, gn, lam, v, loss), strict=True))
        x_try, predicted = trial(x, g, gn, lam, v, c)
        return (x, g, gn, lam, v, c, it + 1, loss, x_try, predicted)

    s = (ravel_pytree(state.theta)[0], state.g, state.gn, state.lam, state.v, state.c, state.it, state.loss,
         state.x_try, state.predicted)
    x, g, gn, lam, v, c, it, loss, x_try, predicted = jax.lax.while_loop(cond, body, s)
    return PolishState(theta=unravel(x), g=g, gn=gn, lam=lam, v=v, c=c, it=it, loss=loss, x_try=x_try,
                       predicted=predicted)


def polish_result(state: PolishState, tol=1e-10) -> PolishResult:
    """:class:`PolishResult` of a finished (or interrupted) :func:`polish_advance` state."""
    return PolishResult(theta=state.theta, loss=state.loss, grad_norm=state.gn, n_iter=state.it - 1,
                        converged=state.gn <= tol)


def polish(problem, theta, *, tol=1e-10, max_iter: int = 100) -> PolishResult:
    """Levenberg-Marquardt on grad L = 0 from ``theta`` (one point); pure, jittable, vmappable over ``theta``.

    With g = grad L and H = V diag(lambda) V^T the dense Hessian of the P flattened trainable parameters, each
    iteration tries

        step = -(H^2 + mu I)^{-1} H g,   mu = c |g| far from a critical point, mu = c 1e6 |g|^2 once |g| < 1e-6,

    (or a short pseudo-inverse Newton step in the end game) with c adapted by a trust-region ratio; see the module
    docstring. Saddles polish like minima. Costs one (P, P) Hessian and ``eigh`` per iteration: meant for small P.
    A ``lax.while_loop``: ``tol`` may be traced, ``max_iter`` is static; never raises (NaN gives ``converged``
    False). The same iterations in segments: :func:`polish_start`, :func:`polish_advance`, :func:`polish_result`
    (what :func:`landscape.flow.packing.polish_packed` runs, re-packing the points still polishing).

    Args:
        problem: a :class:`landscape.problem.Problem`.
        theta: trainable parameter dict near a critical point.
        tol: target |grad L| (may be traced).
        max_iter: iteration cap (static: fixed shapes).

    Returns:
        :class:`PolishResult` (scalars and a ``theta`` of the input's shapes).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> res = jax.jit(ls.polish)(problem, {"w": jnp.eye(3)[:2] + 1e-3, "a": jnp.ones(2)})
        >>> bool(res.converged), float(res.grad_norm) <= 1e-10, float(res.loss) < 1e-18, int(res.n_iter) < 10
        (True, True, True, True)

    References:
        Yamashita & Fukushima, On the Rate of Convergence of the Levenberg-Marquardt Method, Computing (Suppl.)
        15, 2001.

        Fan & Yuan, On the Quadratic Convergence of the Levenberg-Marquardt Method without Nonsingularity
        Assumption, Computing 74, 2005.
    """
    state = polish_advance(problem, polish_start(theta), tol=tol, max_iter=max_iter)
    return polish_result(state, tol)


def polish_batch(problem, theta_batch, *, tol=1e-10, max_iter: int = 100) -> PolishResult:
    """``jit(vmap(polish))`` over the leading axis of every leaf of ``theta_batch``.

    ``tol`` is traced (a new value reuses the compilation); ``max_iter`` is static.

    Args:
        problem: a :class:`landscape.problem.Problem` (shared by the batch).
        theta_batch: trainable parameter dict whose leaves have a leading axis n.
        tol: target |grad L| (traced).
        max_iter: iteration cap (static).

    Returns:
        :class:`PolishResult` whose leaves have a leading axis n.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.flow import polish_batch
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2] + 1e-3, jnp.eye(3)[:2] - 1e-3]), "a": jnp.ones((2, 2))}
        >>> polish_batch(problem, thetas).converged.tolist()
        [True, True]
    """
    return _polish_batch(problem, theta_batch, jnp.asarray(tol, float), max_iter=int(max_iter))


@eqx.filter_jit
def _polish_batch(problem, theta_batch, tol, *, max_iter: int) -> PolishResult:
    return jax.vmap(lambda th: polish(problem, th, tol=tol, max_iter=max_iter))(theta_batch)
