"""gadjax: GAN-based anomaly detection in JAX/Flax, built for speed.

    import gadjax
    from gadjax import data
    mnist = data.load("mnist")
    split = data.one_class_split(mnist, 1, "one-normal")
    det = gadjax.FAnoGAN(steps=1000).fit(split.x_train, split.x_val)   # settings: gadjax.FAnoGANConfig
    scores = det.score_samples(split.x_test)          # higher = more anomalous
    det.save("fanogan_1"); det = gadjax.load("fanogan_1")

Pure functions (``search_latent``, ``fanogan_scores`` and every detector's
``<name>_scores(nets, x, config)``, ``gradient_penalty``, the scores in
``gadjax.scores``) take networks as callables and compose with jit/vmap/grad.
"""
from gadjax.cache import enable_compilation_cache

enable_compilation_cache()  # compiled programs are reused across processes (GADJAX_COMPILATION_CACHE=0: off)

from gadjax import data, losses, metrics, optim, scores, timeseries  # noqa: E402
from gadjax.losses import GAN_LOSSES, gradient_penalty  # noqa: E402
from gadjax.models import (ALAD, DEDGAN, DETECTORS, EGBAD, MADGAN, ALADConfig, AnoGAN, AnoGANConfig, AnoGANResult,
                           CBiGAN, CBiGANConfig, ConfigError, DEDGANConfig, Detector, DetectorConfig, DetectorStack,
                           EGBADConfig,
                           EnsembleConfig, FAnoGAN, FAnoGANConfig, GANDetector, GANEnsemble, GANomaly,
                           GANomalyConfig, JointEncoder, JointEncoderConfig, MADGANConfig, PlayerDetector,
                           SkipGANomaly, SkipGANomalyConfig, fanogan_scores, load, search_latent,
                           search_latent_per_image, train_stack)
from gadjax.nets import NETS, NetSpec, PureNet, bind, build_nets, features_of
from gadjax.parallel import DataParallel, initialize_distributed
from gadjax.train import (Checkpointer, GANConfig, GANTrainer, NonFiniteError, Player, PlayerTrainer, RunConfig,
                          StackMemoryError, StackTrainer, TrainState, train_loop)
from gadjax.train.encoder import EncoderConfig, EncoderTrainer

__version__ = "0.2.0"

__all__ = [
    "ALAD", "ALADConfig", "AnoGAN", "AnoGANConfig", "AnoGANResult", "CBiGAN", "CBiGANConfig", "Checkpointer",
    "ConfigError", "DEDGAN", "DEDGANConfig", "DETECTORS", "DataParallel", "Detector", "DetectorConfig",
    "DetectorStack", "EGBAD",
    "EGBADConfig", "EncoderConfig", "EncoderTrainer", "EnsembleConfig", "FAnoGAN", "FAnoGANConfig", "GANConfig", "GANDetector", "GANEnsemble",
    "GANTrainer", "GAN_LOSSES", "GANomaly", "GANomalyConfig", "JointEncoder", "JointEncoderConfig", "MADGAN",
    "MADGANConfig", "NETS", "NetSpec", "NonFiniteError", "Player", "PlayerDetector", "PlayerTrainer", "PureNet",
    "RunConfig", "SkipGANomaly", "SkipGANomalyConfig", "StackMemoryError", "StackTrainer", "TrainState", "bind", "build_nets", "data",
    "fanogan_scores", "features_of", "gradient_penalty", "initialize_distributed", "load", "losses", "metrics",
    "optim", "scores", "search_latent", "search_latent_per_image", "timeseries", "train_loop", "train_stack",
]
