"""Barrier between a spurious and a global minimum of the Safran-Shamir problem (issue 11, item 3).

ReLU, population loss, x ~ N(0, I_d), teacher V = I_d with unit output weights, student of width k = d with output
weights frozen to one (Safran & Shamir 2018). A spurious minimum is found inside the fixed subspace of the isotropy
group Delta S_{d-1} x S_1 of Arjevani & Field (2021) (W = [[a I + b (J - I), c 1], [e 1^T, f]]): gradient descent
started in that 5-dimensional subspace stays in it (the gradient of an invariant function at a fixed point is
fixed), and the end points are polished in the full 36-dimensional space and classified there. The nearest
global minimum (a permutation of I, by optimal assignment) is joined to it by a climbing-image NEB; the top image is
polished into a certified saddle and identified. Prints the numbers; no figure.

    python experiments/paths_safran_shamir.py [--d 6] [--starts 8] [--images 15]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

import landscape as ls
from landscape.analysis.paths import NEB, certify_saddle, neb


def fixed_subspace_point(d, p):
    a, b, c, e, f = p
    w = np.full((d, d), b)
    np.fill_diagonal(w, a)
    w[:, -1] = c
    w[-1, :] = e
    w[-1, -1] = f
    return w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=6)
    ap.add_argument("--starts", type=int, default=8)
    ap.add_argument("--images", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20000)
    args = ap.parse_args()
    d = args.d
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=d, width=d), ls.TwoLayer(width=d, activation=ls.ReLU()),
                                ls.PopulationLoss(), output_weights="teacher")
    V = np.asarray(problem.teacher_params["w"], float)
    rng = np.random.default_rng(0)
    # the Delta S_{d-1} x S_1 family needs the teacher I: rotate the student into the teacher's basis
    starts = np.stack([V.T @ fixed_subspace_point(d, rng.normal([1.0, 0.0, 0.3, 0.3, -1.0], 1.0)).T
                       for _ in range(args.starts)]).transpose(0, 2, 1)

    @jax.jit
    def descend(w0):
        def body(_, w):
            return w - 0.05 * jax.grad(lambda ww: problem.loss({"w": ww}))(w)
        return jax.lax.fori_loop(0, args.steps, body, w0)

    t0 = time.time()
    ends = jax.vmap(descend)(jnp.asarray(starts))
    print(f"{args.starts} descents of {args.steps} steps in the fixed subspace: {time.time() - t0:.1f} s")
    best = None
    for i in range(args.starts):
        sd = certify_saddle(problem, {"w": ends[i]})
        print(f"  start {i}: {sd.kind} index {sd.index}, loss {sd.loss:.9e}, |grad| {sd.grad_norm:.1e}, "
              f"{sd.sym_class} r={sd.reduced_width}")
        if sd.certified and sd.kind == "minimum" and sd.loss > 1e-10 and (best is None or sd.loss < best.loss):
            best = sd
    if best is None:
        print("no spurious minimum among the starts; try more --starts or another --d")
        return
    w = best.theta["w"]
    cost = -np.abs(w @ V.T)  # match student rows to teacher rows
    rows, cols = linear_sum_assignment(cost)
    glob = np.zeros_like(w)
    glob[rows] = V[cols]
    print(f"spurious minimum: loss {best.loss:.9e} (d * loss = {d * best.loss:.6f}), nearest global minimum at "
          f"distance {np.linalg.norm(w - glob):.4f}")
    t0 = time.time()
    res = neb(problem, {"w": jnp.asarray(w)}, {"w": jnp.asarray(glob)}, NEB(n_images=args.images))
    sd = res.saddle
    print(f"NEB ({args.images} images): {res.n_iter} iterations, max force {res.max_force:.2e}, "
          f"{'converged' if res.converged else 'NOT converged'}, band length {res.s[-1]:.4f}, {time.time() - t0:.1f} s")
    print(f"  top image polished: {sd.kind} index {sd.index}, loss {sd.loss:.9e}, |grad| {sd.grad_norm:.1e} "
          f"({'certified' if sd.certified else 'NOT certified'}), {sd.sym_class} r={sd.reduced_width}")
    print(f"  barrier from the spurious minimum {res.barrier_from:.6e}, from the global minimum {res.barrier_to:.6e}")
    print("  loss profile: " + ", ".join(f"{x:.4e}" for x in res.loss))


if __name__ == "__main__":
    main()
