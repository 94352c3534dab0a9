import numpy as np

from landscape.analysis.classify import classify_spectrum


def _cls(eigs, loss, certified=True):
    eigs = np.atleast_2d(np.asarray(eigs, float))
    n = eigs.shape[0]
    return classify_spectrum(
        eigs, np.full(n, loss), zero_tol=1e-8, global_loss_tol=1e-20, certified=np.full(n, certified)
    )


def test_strict_minimum_saddle_and_degenerate():
    assert _cls([0.5, 1.0, 3.0], 0.1)["kind"][0] == "minimum"
    c = _cls([-2.0, -1e-3, 1e-12, 4.0], 0.1)
    assert c["kind"][0] == "saddle" and c["index"][0] == 2 and c["null_dim"][0] == 1
    c = _cls([1e-12, 1.0, 2.0], 0.1)
    assert c["kind"][0] == "degenerate" and c["null_dim"][0] == 1


def test_zero_loss_point_is_global_minimum_despite_flat_directions():
    c = _cls([0.0, 1e-13, 1.0], 1e-28)
    assert c["kind"][0] == "minimum" and c["is_global"][0] and c["null_dim"][0] == 2


def test_tolerance_is_relative_to_spectrum_scale():
    # same shape of spectrum at two scales classifies the same way
    for s in (1e-6, 1.0, 1e6):
        c = _cls(np.array([-1e-10, 1.0, 2.0]) * s, 0.1)
        assert c["kind"][0] == "degenerate" and np.isclose(c["zero_tol_abs"][0], 2e-8 * s)


def test_not_converged_and_diverged_are_labelled_not_dropped():
    c = classify_spectrum(
        np.array([[1.0, 2.0], [np.nan, 1.0], [-1.0, 1.0]]),
        np.array([0.1, 0.2, np.nan]),
        zero_tol=1e-8,
        global_loss_tol=1e-20,
        certified=np.array([False, True, True]),
    )
    assert list(c["kind"]) == ["not_converged", "diverged", "diverged"]
