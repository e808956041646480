"""GAN losses: reference values and the safe gradient penalty."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gadjax import losses


def test_reference_values():
    real = jnp.array([2.0, 0.0])
    fake = jnp.array([-1.0, 1.0])
    sp = lambda t: np.log1p(np.exp(t))  # softplus
    expected_bce = np.mean([sp(-2.0), sp(0.0)]) + np.mean([sp(-1.0), sp(1.0)])
    np.testing.assert_allclose(losses.bce_critic_loss(real, fake), expected_bce, rtol=1e-6)
    np.testing.assert_allclose(losses.bce_generator_loss(fake), np.mean([sp(1.0), sp(-1.0)]), rtol=1e-6)
    np.testing.assert_allclose(losses.lsgan_critic_loss(real, fake), 0.5 * (1 + 1) / 2 + 0.5 * (1 + 1) / 2)
    np.testing.assert_allclose(losses.lsgan_generator_loss(fake), 0.5 * (4 + 0) / 2)
    np.testing.assert_allclose(losses.wasserstein_critic_loss(real, fake), 0.0 - 1.0)
    np.testing.assert_allclose(losses.wasserstein_generator_loss(fake), -0.0)


def test_gradient_penalty_of_linear_critic_is_exact():
    w = jnp.arange(1.0, 13.0).reshape(2, 2, 3) / 10.0
    critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
    real = jax.random.normal(jax.random.PRNGKey(0), (4, 2, 2, 3))
    fake = jax.random.normal(jax.random.PRNGKey(1), (4, 2, 2, 3))
    penalty = losses.gradient_penalty(critic, real, fake, jax.random.PRNGKey(2))
    np.testing.assert_allclose(penalty, (np.linalg.norm(np.asarray(w)) - 1.0) ** 2, rtol=1e-5)


def test_gradient_penalty_is_finite_for_zero_gradient():
    # A critic whose input gradient is exactly zero: the norm's derivative at 0 is the
    # classic NaN source.  The safe norm must give penalty 1 and finite parameter grads.
    real = jnp.ones((3, 4, 4, 1))
    fake = jnp.zeros((3, 4, 4, 1))

    def penalty(theta):
        critic = lambda x: theta * jnp.sum(x * 0.0, axis=(1, 2, 3))
        return losses.gradient_penalty(critic, real, fake, jax.random.PRNGKey(0))

    value, grad = jax.value_and_grad(penalty)(jnp.float32(2.0))
    assert float(value) == pytest.approx(1.0)
    assert np.isfinite(float(grad))


def test_gradient_penalty_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="differ in shape"):
        losses.gradient_penalty(lambda x: x.sum((1, 2, 3)), jnp.ones((2, 4, 4, 1)), jnp.ones((3, 4, 4, 1)),
                                jax.random.PRNGKey(0))


def test_registry_and_paper_defaults():
    assert set(losses.GAN_LOSSES) == {"dcgan", "lsgan", "wgan", "wgan-gp"}
    gp = losses.GAN_LOSSES["wgan-gp"]
    assert (gp.n_critic, gp.gp_weight, gp.learning_rate) == (5, 10.0, 1e-4)
    clip = losses.GAN_LOSSES["wgan"]
    assert clip.clip == 0.01 and clip.n_critic == 5
    for name, obj in losses.GAN_LOSSES.items():
        real, fake = jnp.array([0.3, -0.2]), jnp.array([0.1, 0.5])
        assert np.isfinite(float(obj.critic_loss(real, fake))), name
        assert np.isfinite(float(obj.generator_loss(fake))), name
        obj.optimizer(obj.learning_rate).init({"w": jnp.zeros(2)})


def test_clip_weights():
    clipped = losses.clip_weights({"a": jnp.array([-1.0, 0.005, 2.0])}, 0.01)
    np.testing.assert_allclose(clipped["a"], [-0.01, 0.005, 0.01])
