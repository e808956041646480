"""Training machinery shared by every detector: states, jitted steps, loop, checkpoints."""
from gadjax.train.checkpoint import CheckpointError, Checkpointer
from gadjax.train.gan import GANConfig, GANTrainer, sample_latent
from gadjax.train.players import Player, PlayerTrainer, TrainState, all_finite, default_unroll
from gadjax.train.loop import NonFiniteError, RunConfig, check_range, train_loop
from gadjax.train.stack import StackMemoryError, StackTrainer, seed_keys, take_model, train_stack_loop

__all__ = ["CheckpointError", "Checkpointer", "GANConfig", "GANTrainer", "NonFiniteError", "Player", "PlayerTrainer", "TrainState", "all_finite",
           "RunConfig", "StackMemoryError", "StackTrainer", "check_range", "default_unroll", "sample_latent", "seed_keys",
           "take_model", "train_loop", "train_stack_loop"]
