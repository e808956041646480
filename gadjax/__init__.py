"""gadjax: GAN-based anomaly detection in JAX/Flax."""
