"""gadjax: GAN-based anomaly detection in JAX/Flax, built for speed.

    import gadjax
    from gadjax import data
    mnist = data.load("mnist")
    split = data.one_class_split(mnist, 1, "one-normal")
    det = gadjax.FAnoGAN(gadjax.default_gan(), gadjax.RunConfig(steps=1000)).fit(split.x_train, split.x_val)
    scores = det.score_samples(split.x_test)          # higher = more anomalous

Pure functions (``search_latent``, ``fanogan_scores``, ``gradient_penalty``, the
scores in ``gadjax.scores``) take plain pytrees and compose with jit/vmap/grad.
"""
from gadjax import data, losses, metrics, scores, timeseries
from gadjax.losses import GAN_LOSSES, gradient_penalty
from gadjax.models import (ALAD, DEDGAN, DETECTORS, EGBAD, MADGAN, AnoGAN, AnoGANResult, CBiGAN, Detector,
                           FAnoGAN, GANDetector, GANEnsemble, GANomaly, JointEncoder, PlayerDetector,
                           SkipGANomaly, default_gan, fanogan_scores, search_latent, search_latent_per_image)
from gadjax.nets import NETS, NetSpec, PureNet, build_nets
from gadjax.parallel import DataParallel, initialize_distributed
from gadjax.train import (Checkpointer, GANConfig, GANTrainer, NonFiniteError, Player, PlayerTrainer, RunConfig,
                          TrainState, train_loop)
from gadjax.train.encoder import EncoderConfig, EncoderTrainer

__version__ = "0.1.0"

__all__ = [
    "ALAD", "CBiGAN", "DEDGAN", "Detector", "EGBAD", "GANEnsemble", "GANomaly", "JointEncoder", "MADGAN",
    "PlayerDetector", "SkipGANomaly", "timeseries",
    "AnoGAN", "AnoGANResult", "Checkpointer", "DETECTORS", "DataParallel", "EncoderConfig",
    "EncoderTrainer", "FAnoGAN", "GANConfig", "GANDetector", "GANTrainer", "GAN_LOSSES", "NETS",
    "NetSpec", "NonFiniteError", "Player", "PlayerTrainer", "PureNet", "RunConfig", "TrainState", "build_nets", "data", "default_gan", "fanogan_scores",
    "gradient_penalty", "initialize_distributed", "losses", "metrics", "scores", "search_latent",
    "search_latent_per_image", "train_loop",
]
