"""Training machinery shared by every detector: states, jitted steps, loop, checkpoints."""
from gadjax.train.checkpoint import CheckpointError, Checkpointer
from gadjax.train.gan import GANConfig, GANState, GANTrainer, default_unroll, sample_latent
from gadjax.train.loop import NonFiniteError, RunConfig, check_range, train_loop

__all__ = ["CheckpointError", "Checkpointer", "GANConfig", "GANState", "GANTrainer", "NonFiniteError",
           "RunConfig", "check_range", "default_unroll", "sample_latent", "train_loop"]
