"""MAML: conformance, the meta-gradient against its closed form, config validation."""
import dataclasses

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metajax
from metajax.learners.inner_loop import MetaBatch, make_inner_loop
from metajax.learners.maml import MAMLConfig, make_maml, maml_surrogate_and_kl, outer_update
from metajax.testing import check_learner
from metajax.types import Transition

TINY = dict(meta_batch_size=2, rollouts_per_task=3, hidden_sizes=(8,), cg_iters=3)


@pytest.mark.parametrize("outer", ["trpo", "adam"])
@pytest.mark.parametrize("first_order", [False, True])
def test_conformance(outer, first_order):
    env, tasks = metajax.make("point-nav-v1")
    cfg = MAMLConfig(**TINY, outer_optimizer=outer, first_order=first_order)
    check_learner(make_maml(env, tasks, cfg), env, tasks, eager=(outer == "trpo" and not first_order))


def test_two_inner_steps_conformance():
    env, tasks = metajax.make("point-robot-sparse-v1")
    check_learner(make_maml(env, tasks, MAMLConfig(**TINY, inner_steps=2)), env, tasks, eager=False)


class LinearGaussian(nn.Module):
    """mean = obs @ w, std 1: log pi is quadratic in w, so MAML's meta-gradient has a closed form."""

    @nn.compact
    def __call__(self, obs):
        w = self.param("w", nn.initializers.normal(1.0), (obs.shape[-1], 1))
        return distrax.MultivariateNormalDiag(obs @ w, jnp.ones((*obs.shape[:-1], 1))), None


def _batch(rng, M, T, B, obs_dim, valid_len):
    obs = rng.normal(size=(M, T, B, obs_dim)).astype(np.float32)
    act = rng.normal(size=(M, T, B, 1)).astype(np.float32)
    adv = rng.normal(size=(M, T, B)).astype(np.float32)
    valid = (np.arange(T)[None, :, None] < valid_len[:, None, :]).astype(np.float32)
    zeros = np.zeros((M, T, B), np.float32)
    batch = Transition(obs, act, zeros, zeros.astype(bool), zeros.astype(bool), valid,
                       np.zeros((M, T, B), np.int32), zeros)
    return batch, adv


def test_meta_gradient_equals_closed_form_and_first_order_drops_the_jacobian():
    M, T, B, O, alpha = 2, 4, 3, 2, 0.3
    rng = np.random.default_rng(0)
    inner, inner_adv = _batch(rng, M, T, B, O, rng.integers(1, T + 1, size=(M, B)))
    post, post_adv = _batch(rng, M, T, B, O, rng.integers(1, T + 1, size=(M, B)))
    env, tasks = metajax.make("point-nav-v1")
    policy = LinearGaussian()
    params = policy.init(jax.random.key(0), jnp.zeros((1, O)))
    w = np.asarray(params["params"]["w"], np.float64)[:, 0]

    def mean_valid(x, valid):  # x [T, B, ...]
        v = valid.reshape(valid.shape + (1,) * (x.ndim - 2))
        return (x * v).sum((0, 1)) / valid.sum()

    expected_second, expected_first, adapted_w = np.zeros(O), np.zeros(O), []
    for m in range(M):
        s, a, A, v = inner.observation[m], inner.action[m, ..., 0], inner_adv[m], inner.valid[m]
        w_adapted = w + alpha * mean_valid(((A * (a - s @ w))[..., None] * s), v)
        jac = np.eye(O) - alpha * mean_valid(A[..., None, None] * s[..., :, None] * s[..., None, :], v)
        s2, a2, A2, v2 = post.observation[m], post.action[m, ..., 0], post_adv[m], post.valid[m]
        d_outer = -mean_valid(((A2 * (a2 - s2 @ w_adapted))[..., None] * s2), v2)
        expected_second += jac.T @ d_outer / M
        expected_first += d_outer / M
        adapted_w.append(w_adapted)

    def meta_grad(first_order):
        cfg = MAMLConfig(meta_batch_size=M, inner_lr=alpha, first_order=first_order)
        loop = make_inner_loop(env, tasks, cfg, policy=policy)
        adapted = {"params": {"w": jnp.asarray(np.stack(adapted_w)[:, :, None], jnp.float32)}}
        old_logp = jax.vmap(lambda p, o, a: policy.apply(p, o)[0].log_prob(a))(adapted, post.observation, post.action)
        data = MetaBatch(adapted, ([inner], [inner_adv]), post._replace(log_prob=old_logp), post_adv)
        # the replayed fast weights equal the closed form too
        replayed = jax.vmap(loop.inner_update, in_axes=(None, None, 0, 0))(params, params, inner, inner_adv)
        np.testing.assert_allclose(replayed["params"]["w"], adapted["params"]["w"], rtol=1e-4, atol=1e-5)
        # KL(old || new) vanishes at the old params
        assert float(maml_surrogate_and_kl(loop, params, data)[1]) < 1e-6
        surrogate = lambda p: maml_surrogate_and_kl(loop, p, data)[0]
        return np.asarray(jax.grad(surrogate)(params)["params"]["w"][:, 0])

    second, first = meta_grad(False), meta_grad(True)
    np.testing.assert_allclose(second, expected_second, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first, expected_first, rtol=1e-4, atol=1e-5)
    # the two differ exactly by the inner Jacobian, and the difference is not negligible here
    assert np.linalg.norm(second - first) > 0.05 * np.linalg.norm(first)


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("inner_lr", 0.0, r"in \(0.0, inf\)"),
        ("meta_batch_size", 0, r"in \[1, inf\)"),
        ("outer_optimizer", "sgd", "one of 'trpo', 'adam'"),
        ("discount", 1.5, r"in \[0.0, 1.0\]"),
        ("inner_steps", 2.5, "an int"),
        ("first_order", "yes", "a bool"),
        ("hidden_sizes", (100, 0), r"in \[1, inf\)"),
        ("hidden_sizes", (100.5, 3.2), r"an int in \[1, inf\)"),
        ("hidden_sizes", (), r"a non-empty tuple"),
        ("hidden_sizes", 100, r"a non-empty tuple"),
        ("meta_batch_size", True, r"an int in \[1, inf\)"),
        ("inner_lr", float("inf"), r"in \(0.0, inf\)"),
    ],
)
def test_bad_config_values_name_the_field_and_range(field, value, allowed):
    with pytest.raises(ValueError, match=rf"MAMLConfig\.{field} must be .*{allowed}"):
        MAMLConfig(**{field: value})


def test_make_maml_rejects_wrong_config_type():
    env, tasks = metajax.make("point-nav-v1")
    with pytest.raises(TypeError, match="MAMLConfig"):
        make_maml(env, tasks, config=dataclasses.asdict(MAMLConfig()))


def test_remat_changes_memory_not_results():
    env, tasks = metajax.make("point-nav-v1")
    states = []
    for remat in (False, True):
        learner = make_maml(env, tasks, MAMLConfig(**TINY, remat=remat))
        state = learner.init(jax.random.key(0))
        states.append(jax.jit(learner.meta_step)(state, jax.random.key(1)))
    from metajax.testing import assert_trees_close
    assert_trees_close(states[0], states[1], rtol=1e-4, atol=1e-5, what="remat vs plain")


def test_chunked_fisher_product_equals_full():
    env, tasks = metajax.make("point-nav-v1")
    states = []
    for chunks, product in ((1, "gauss_newton"), (2, "gauss_newton"), (2, "kl_hessian")):
        cfg = MAMLConfig(**{**TINY, "meta_batch_size": 4}, fisher_task_chunks=chunks, fisher_product=product)
        learner = make_maml(env, tasks, cfg)
        states.append(jax.jit(learner.meta_step)(learner.init(jax.random.key(0)), jax.random.key(1)))
    from metajax.testing import assert_trees_close
    assert float(states[0][1]["accepted"]) == 1.0
    for chunked, what in zip(states[1:], ("Gauss-Newton", "KL-Hessian")):
        assert_trees_close(states[0], chunked, rtol=1e-3, atol=1e-5, what=f"chunked {what} vs full Fisher")
    with pytest.raises(ValueError, match="fisher_task_chunks must divide meta_batch_size=4"):
        MAMLConfig(meta_batch_size=4, fisher_task_chunks=3)


@pytest.mark.parametrize("options", [dict(), dict(fisher_product="finite_difference"),
                                     dict(outer_optimizer="adam")], ids=["gauss_newton", "fd", "adam"])
def test_outer_step_over_blocks_of_tasks_gives_the_single_pass_step(options):
    """Fisher products, gradient and line search over blocks of tasks only reorder sums (the
    metrics compared include the line search's loss and KL). One collected batch for all: the
    collection's own blocks are tested below."""
    from metajax.testing import assert_trees_close
    env, tasks = metajax.make("point-nav-v1")
    base = MAMLConfig(**{**TINY, "meta_batch_size": 4}, **options)
    loop = make_inner_loop(env, tasks, base)
    state = make_maml(env, tasks, base).init(jax.random.key(0))
    data = jax.jit(loop.collect, static_argnums=2)(state.params, jax.random.key(1), 0)
    steps = []
    for block in (4, 1, 2):  # 4: all tasks in one pass
        cfg = dataclasses.replace(base, fisher_block_tasks=block)
        steps.append(jax.jit(lambda s, d, cfg=cfg: outer_update(loop, cfg, s, d))(state, data))
    if "outer_optimizer" not in options:
        assert float(steps[0][2]["accepted"]) == 1.0
    for blocked, block in zip(steps[1:], (1, 2)):
        assert_trees_close(steps[0], blocked, rtol=1e-4, atol=1e-6, what=f"blocks of {block} vs one pass")


@pytest.mark.parametrize("baseline", ["none", "linear"])
def test_collection_over_blocks_of_tasks_gives_the_single_pass_batch(baseline):
    """Rollouts and inner steps over blocks of tasks: the same tasks, keys and episodes (the
    pre-update rollouts are bit for bit the same), with sums reordered. The linear baseline's
    float32 normal equations amplify reordered sums (advantages move by ~1e-3), so the tight check
    of everything runs without it; on a CPU the automatic block is 2 (1 for an odd meta-batch)."""
    from metajax.learners.inner_loop import auto_block_tasks
    from metajax.testing import assert_trees_close
    env, tasks = metajax.make("point-nav-v1")
    cfg = MAMLConfig(**{**TINY, "meta_batch_size": 4}, baseline=baseline)
    loop = make_inner_loop(env, tasks, cfg)
    params = make_maml(env, tasks, cfg).init(jax.random.key(0)).params
    collect = jax.jit(loop.collect, static_argnums=2)
    one_pass = collect(params, jax.random.key(1), 0)
    assert jax.tree.leaves(one_pass.post)[0].shape[0] == 4
    for block in (1, 2):
        blocked = collect(params, jax.random.key(1), block)
        assert_trees_close(one_pass.inner_data[0], blocked.inner_data[0], rtol=0, atol=0,
                           what=f"pre-update rollouts in blocks of {block}")
        if baseline == "none":
            assert_trees_close(one_pass, blocked, rtol=1e-4, atol=1e-6,
                               what=f"collection in blocks of {block} vs one pass")
    assert (auto_block_tasks(4), auto_block_tasks(3)) == ((2, 1) if jax.default_backend() == "cpu" else (0, 0))


def test_blocks_of_tasks_are_validated():
    for bad in (dict(fisher_block_tasks=3), dict(fisher_block_tasks=2, fisher_task_chunks=2)):
        with pytest.raises(ValueError, match="fisher_block_tasks must be 0 or divide meta_batch_size=4"):
            MAMLConfig(meta_batch_size=4, **bad)


def test_gauss_newton_fisher_product_equals_the_kl_hessian_product():
    env, tasks = metajax.make("point-nav-v1")
    from metajax.learners.inner_loop import make_inner_loop
    from metajax.optim import gauss_newton_product_at, hvp_at
    from jax.flatten_util import ravel_pytree

    cfg = MAMLConfig(**TINY)
    loop = make_inner_loop(env, tasks, cfg)
    params = make_maml(env, tasks, cfg).init(jax.random.key(0)).params
    data = loop.collect(params, jax.random.key(1))
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.key(2), flat.shape)
    kl = lambda x: maml_surrogate_and_kl(loop, unravel(x), data)[1]
    expected = hvp_at(kl, flat)(v)
    got = gauss_newton_product_at(lambda x: loop.post_policy_params(unravel(x), data),
                                  lambda out: loop.post_kl_from_params(data, out), flat)(v)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-5 * float(jnp.abs(expected).max()))
    assert float(jnp.abs(expected).max()) > 1e-3
    # at initialisation the zero biases and the start state (0, 0) put first-layer pre-activations
    # exactly on ReLU's kink, where the KL Hessian is undefined and programs that order their sums
    # differently break the tie differently: start the steps a little away from it
    start = make_maml(env, tasks, cfg).init(jax.random.key(0))
    noise = jax.random.normal(jax.random.key(3), flat.shape)
    start = start._replace(params=unravel(flat + 1e-3 * noise))
    start_data = jax.jit(loop.collect, static_argnums=2)(start.params, jax.random.key(1), 0)
    products = (("gauss_newton", 0), ("kl_hessian", 0), ("kl_hessian", 1))  # 1: KL Hessians over blocks
    states = [jax.jit(lambda s, d, c=MAMLConfig(**TINY, fisher_product=f, fisher_block_tasks=b):
                      outer_update(loop, c, s, d))(start, start_data) for f, b in products]
    from metajax.testing import assert_trees_close
    for (product, block), state in zip(products[1:], states[1:]):
        assert_trees_close(states[0], state, rtol=1e-3, atol=1e-5,
                           what=f"Gauss-Newton vs KL Hessian (blocks of {block or 'all'})")


@pytest.mark.parametrize("first_order,block_tasks,learned_step_sizes,remat", [
    (False, 0, False, False), (True, 0, False, False), (False, 1, False, False), (True, 1, False, False),
    (False, 1, True, False), (False, 1, False, True)])
def test_post_params_linearization_equals_the_generic_one(first_order, block_tasks, learned_step_sizes, remat):
    # per-task linearisations, products over blocks of tasks, and J^T u by the inner steps' own
    # (symmetric) Hessian products == autodiff of the whole batch's outputs, K = 2; Meta-SGD's
    # learned step sizes and remat take the per-task generic path
    from metajax.optim import linearize_outputs

    env, tasks = metajax.make("point-nav-v1")
    cfg = MAMLConfig(**TINY, inner_steps=2, first_order=first_order, remat=remat)
    loop = make_inner_loop(env, tasks, cfg, learned_step_sizes=learned_step_sizes)
    params = make_maml(env, tasks, cfg).init(jax.random.key(0)).params
    if learned_step_sizes:  # unequal step sizes, so a transposition error would show
        steps = jax.tree.map(lambda p: 0.5 * jax.random.uniform(jax.random.key(4), p.shape), params)
        params = {"policy": params, "step_size": steps}
    data = loop.collect(params, jax.random.key(1))
    structured = loop.post_params_linearization(params, data, block_tasks)
    generic = linearize_outputs(lambda m: loop.post_policy_params(m, data), params)
    v = jax.tree.map(lambda x: jax.random.normal(jax.random.key(2), x.shape), params)
    from metajax.testing import assert_trees_close
    assert_trees_close(structured.outputs, generic.outputs, rtol=1e-6, atol=1e-6, what="outputs")
    jv = generic.jvp(v)
    assert_trees_close(structured.jvp(v), jv, rtol=1e-4, atol=1e-5, what="J v")
    u = jax.tree.map(lambda x: jax.random.normal(jax.random.key(3), x.shape), jv)
    expected = generic.vjp(u)
    assert_trees_close(structured.vjp(u), expected, rtol=1e-4, atol=1e-5, what="J^T u")
    assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(expected)) > 1e-2


def test_finite_difference_fisher_product_gives_a_valid_trust_region_step():
    # the MAML authors' TRPO (rllab's FiniteDifferenceHvp): a secant of the KL gradient through the
    # ReLU inner update, so not the Gauss-Newton step, but still inside the trust region
    env, tasks = metajax.make("point-nav-v1")
    states = {}
    for product in ("gauss_newton", "finite_difference"):
        learner = make_maml(env, tasks, MAMLConfig(**TINY, fisher_product=product))
        states[product] = jax.jit(learner.meta_step)(learner.init(jax.random.key(0)), jax.random.key(1))
    from jax.flatten_util import ravel_pytree
    (fd_state, fd_metrics), (gn_state, _) = states["finite_difference"], states["gauss_newton"]
    assert float(fd_metrics["accepted"]) == 1.0 and 0.0 < float(fd_metrics["kl"]) <= 0.01
    assert float(fd_metrics["loss_after"]) < float(fd_metrics["loss_before"])
    fd_flat, gn_flat = ravel_pytree(fd_state.params)[0], ravel_pytree(gn_state.params)[0]
    assert float(jnp.linalg.norm(fd_flat - gn_flat)) > 1e-3
    with pytest.raises(ValueError, match="fisher_task_chunks must be 1 with fisher_product='finite_difference'"):
        MAMLConfig(meta_batch_size=4, fisher_task_chunks=2, fisher_product="finite_difference")
    with pytest.raises(ValueError, match="finite_difference_eps"):
        MAMLConfig(finite_difference_eps=0.0)
