"""The linear feature baseline equals a direct least-squares solve on the valid steps."""
import jax
import numpy as np

from metajax import baselines


def test_linear_baseline_equals_direct_least_squares():
    rng = np.random.default_rng(0)
    T, B = 100, 20
    obs = rng.uniform(-0.6, 0.6, size=(T, B, 2)).astype(np.float32)
    time = np.broadcast_to(np.arange(T)[:, None], (T, B)).astype(np.int32)
    lengths = rng.integers(5, T + 1, size=B)
    valid = (np.arange(T)[:, None] < lengths[None]).astype(np.float32)
    returns = (-np.linalg.norm(obs - 0.3, axis=-1) * (T - time) / 10 + rng.normal(size=(T, B)) * 0.1)
    returns = (returns * valid).astype(np.float32)

    values = np.asarray(jax.jit(baselines.fit_predict)(obs, time, returns, valid))

    # direct solve in float64: F restricted to valid rows, feature order of rllab/MAML
    o = np.clip(obs.astype(np.float64), -10, 10)
    t = time[..., None] / 100.0
    feats = np.concatenate([o, o**2, t, t**2, t**3, np.ones_like(t)], axis=-1)
    mask = valid.astype(bool)
    w, *_ = np.linalg.lstsq(feats[mask], returns[mask].astype(np.float64), rcond=None)
    expected = feats @ w
    np.testing.assert_allclose(values[mask], expected[mask], rtol=0, atol=2e-3 * np.abs(returns).max())
    assert np.all(values[~mask] == 0.0)
    # and it really fits: residual far below the variance of the targets
    assert np.var(values[mask] - returns[mask]) < 0.2 * np.var(returns[mask])


def test_solve_spd_matches_a_float64_solve_on_a_batch():
    rng = np.random.default_rng(1)
    size = 38  # halfcheetah's feature count (2 x 17 + 4)
    basis = rng.normal(size=(3, 2, 200, size))
    matrices = np.einsum("...ti,...tj->...ij", basis, basis) / 200 + 1e-3 * np.eye(size)
    rhs = rng.normal(size=(3, 2, size))
    got = np.asarray(jax.jit(baselines.solve_spd)(matrices.astype(np.float32), rhs.astype(np.float32)))
    want = np.linalg.solve(matrices, rhs[..., None])[..., 0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * np.abs(want).max())


def test_fit_predict_lowers_without_lapack_calls():
    """Batched LAPACK kernels can deadlock XLA's CPU thread pool (jaxlib 0.10, 2 cores) when two
    run at once, and every meta-iteration runs many baseline fits: the fit must use plain ops."""
    obs = np.zeros((100, 20, 17), np.float32)
    time = np.zeros((100, 20), np.int32)
    hlo = jax.jit(jax.vmap(baselines.fit_predict)).lower(obs[None], time[None], time[None] * 0.0,
                                                         time[None] * 0.0).as_text()
    assert "custom_call" not in hlo, "the baseline fit lowers to a custom call (LAPACK?)"
