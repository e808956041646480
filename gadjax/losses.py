"""GAN losses as pure functions of critic outputs.

Shapes: ``real_logits`` and ``fake_logits`` are (B,) critic outputs; every loss returns a
scalar.  ``GAN_LOSSES`` names the four objectives gadjax trains with, together with the
optimiser and schedule their papers prescribe.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from gadjax import optim


def bce_critic_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """Standard GAN discriminator loss (Goodfellow 2014): BCE with real=1, fake=0."""
    return (optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits)).mean()
            + optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits)).mean())


def bce_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """Non-saturating generator loss: -log D(G(z)), i.e. BCE of fakes against label 1."""
    return optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)).mean()


def lsgan_critic_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """LSGAN (Mao 2017), a-b-c = 0-1-1: 0.5 E[(D(x)-1)^2] + 0.5 E[D(G(z))^2]."""
    return 0.5 * jnp.mean((real_logits - 1.0) ** 2) + 0.5 * jnp.mean(fake_logits ** 2)


def lsgan_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """LSGAN generator loss: 0.5 E[(D(G(z)) - 1)^2]."""
    return 0.5 * jnp.mean((fake_logits - 1.0) ** 2)


def wasserstein_critic_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """WGAN critic loss (Arjovsky 2017): E[D(G(z))] - E[D(x)], minimised by the critic."""
    return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """WGAN generator loss: -E[D(G(z))]."""
    return -jnp.mean(fake_logits)


def gradient_penalty(critic_fn: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> jax.Array:
    """WGAN-GP penalty (Gulrajani 2017): E[(||grad_x D(x_hat)||_2 - 1)^2].

    Args:
      critic_fn: images (B, ...) -> logits (B,); must treat samples independently
        (no BatchNorm), so the gradient of the summed logits is the per-sample gradient.
      real, fake: (B, H, W, C) (or any (B, ...)) batches of equal shape.
      key: PRNG key for the interpolation weights eps ~ U[0, 1], one per sample.

    Returns the scalar penalty, without the lambda factor.  The norm is a safe norm
    (``optax.safe_norm``), so a zero gradient gives a penalty of 1 and finite
    parameter gradients instead of NaN from d sqrt(0).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches differ in shape: {real.shape} vs {fake.shape}")
    eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype)
    x_hat = eps * real + (1.0 - eps) * fake
    grads = jax.grad(lambda x: jnp.sum(critic_fn(x)))(x_hat)
    norms = optax.safe_norm(grads.reshape(grads.shape[0], -1), 0.0, axis=-1)
    return jnp.mean((norms - 1.0) ** 2)


@dataclasses.dataclass(frozen=True)
class GANLoss:
    """A GAN objective and the training schedule its paper uses.

    Attributes:
      critic_loss: (real_logits (B,), fake_logits (B,)) -> scalar.
      generator_loss: fake_logits (B,) -> scalar.
      n_critic: critic updates per generator update.
      gp_weight: lambda of the gradient penalty (0 disables it).
      clip: weight-clipping bound for the critic (0 disables it).
      optimizer: (learning_rate) -> optax transformation for both networks.
      learning_rate: the paper's default.
    """

    critic_loss: Callable
    generator_loss: Callable
    n_critic: int = 1
    gp_weight: float = 0.0
    clip: float = 0.0
    optimizer: Callable[[float], optax.GradientTransformation] = lambda lr: optim.adam(lr, b1=0.5, b2=0.999)
    learning_rate: float = 2e-4


GAN_LOSSES: dict[str, GANLoss] = {
    # Radford 2016: Adam 2e-4, beta1 0.5, one D step per G step.
    "dcgan": GANLoss(bce_critic_loss, bce_generator_loss),
    "lsgan": GANLoss(lsgan_critic_loss, lsgan_generator_loss),
    # Arjovsky 2017: RMSProp 5e-5, clip 0.01, n_critic 5.
    "wgan": GANLoss(wasserstein_critic_loss, wasserstein_generator_loss, n_critic=5, clip=0.01,
                    optimizer=lambda lr: optim.rmsprop(lr, decay=0.99, eps=1e-8), learning_rate=5e-5),
    # Gulrajani 2017: Adam 1e-4, betas (0, 0.9), lambda 10, n_critic 5.
    "wgan-gp": GANLoss(wasserstein_critic_loss, wasserstein_generator_loss, n_critic=5, gp_weight=10.0,
                       optimizer=lambda lr: optim.adam(lr, b1=0.0, b2=0.9), learning_rate=1e-4),
}


def clip_weights(params, bound: float):
    """WGAN weight clipping: every critic parameter into [-bound, bound]."""
    return jax.tree.map(lambda p: jnp.clip(p, -bound, bound), params)
