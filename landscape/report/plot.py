"""Figures from a result object, in a notebook: the same figures ``landscape run`` writes, without the disk.

    res = ls.explore(problem, flow, key=key, n=64)
    ls.plot.spectra(res)      # Hessian spectra of the end points and their density
    ls.plot.curves(res)       # loss and gradient-norm curves, coloured by the class of the end point

Each function takes a :class:`landscape.analysis.explore.Exploration` (or anything with ``table()`` and
``arrays()``) and returns a matplotlib Figure.
"""

from __future__ import annotations

from .figures import curves_figure, spectra_figure

__all__ = ["spectra", "curves"]


def spectra(result, *, title: str = ""):
    """Hessian eigenvalues of every end point (sorted by loss, coloured by kind) and their histogram.

    Left: lambda_1..lambda_P of each point (symlog scale) against its rank by loss; right: the histogram of the
    certified points' eigenvalues, where a bulk near a few small constants and Theta(d) outliers show up (Arjevani
    & Field 2021). Needs the ``eigenvalues`` array and the ``kind`` column (the default analyzers).

    Args:
        result: an ``Exploration`` from :func:`landscape.explore`.
        title: figure title prefix.

    Returns:
        ``matplotlib.figure.Figure`` with two axes.

    Example:
        >>> import jax, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1)),
        ...                             ls.TwoLayer(width=3))
        >>> res = ls.explore(problem, ls.GradientFlow(t_max=300.0), key=jax.random.key(0), n=8)  # doctest: +SKIP
        >>> fig = ls.plot.spectra(res, title="relu d=4")  # doctest: +SKIP
        >>> len(fig.axes)  # doctest: +SKIP
        2

    References:
        Arjevani & Field, `Analytic Study of Families of Spurious Minima in Two-Layer ReLU Neural Networks:
        A Tale of Symmetry II <https://arxiv.org/abs/2107.10370>`_, NeurIPS 2021.
    """
    return spectra_figure(result.table(), result.arrays(), title)


def curves(result, *, title: str = ""):
    """Loss and gradient norm along every trajectory against time (log-log), coloured by end-point kind.

    L(theta(t)) and |grad L(theta(t))| at the snapshot times (``curve.*`` arrays; NaN after a trajectory stops),
    e.g. the plateaus of saddle-to-saddle dynamics after a small initialisation (Kumar & Haupt 2024).

    Args:
        result: an ``Exploration`` from :func:`landscape.explore`.
        title: figure title prefix.

    Returns:
        ``matplotlib.figure.Figure`` with two axes.

    Example:
        >>> import jax, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.gaussian(d=4, width=3, key=jax.random.key(1)),
        ...                             ls.TwoLayer(width=3))
        >>> res = ls.explore(problem, ls.GradientFlow(t_max=300.0), key=jax.random.key(0), n=8)  # doctest: +SKIP
        >>> fig = ls.plot.curves(res)  # doctest: +SKIP
        >>> [ax.get_xscale() for ax in fig.axes]  # doctest: +SKIP
        ['log', 'log']

    References:
        Kumar & Haupt, `Early Directional Convergence in Deep Homogeneous Neural Networks for Small
        Initializations <https://arxiv.org/abs/2403.08121>`_, 2024.
    """
    return curves_figure(result.table(), result.arrays(), title)
