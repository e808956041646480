"""Detectors: one model family per file, each a config, a trainer, a pure scorer and a
thin ``fit`` / ``score_samples`` wrapper (``gadjax.models.base``).

Adding a detector: write ``gadjax/models/<name>.py`` with a config (a ``DetectorConfig``
subclass), a trainer, a pure ``score_fn(nets, x, config)`` and the ``Detector``
subclass naming them, then add one line to ``DETECTORS`` below.
"""
from gadjax.models.alad import ALAD, ALADConfig, ALADTrainer, alad_scores
from gadjax.models.anogan import AnoGAN, AnoGANConfig, anogan_scores
from gadjax.models.anogan_search import AnoGANResult, search_latent, search_latent_per_image
from gadjax.models.base import Detector, GANDetector, PlayerDetector, map_batches, score_batch
from gadjax.models.bigan import EGBAD, BiGANTrainer, EGBADConfig, egbad_scores
from gadjax.models.cbigan import CBiGAN, CBiGANConfig, CBiGANTrainer
from gadjax.models.config import ConfigError, DetectorConfig, GANConfigFields, option
from gadjax.models.dedgan import DEDGAN, DEDGANConfig, DEDGANTrainer, dedgan_scores
from gadjax.models.ensemble import EnsembleConfig, EnsembleTrainer, GANEnsemble, ensemble_scores
from gadjax.models.fanogan import FAnoGAN, FAnoGANConfig, fanogan_scores
from gadjax.models.ganomaly import GANomaly, GANomalyConfig, GANomalyTrainer, ganomaly_scores
from gadjax.models.joint_encoder import JointEncoder, JointEncoderConfig, JointEncoderTrainer, joint_encoder_scores
from gadjax.models.madgan import MADGAN, MADGANConfig, MADGANTrainer, madgan_scores
from gadjax.models.persist import load
from gadjax.models.stack import DetectorStack, anogan_stack_batch, stack_score_batch, train_stack
from gadjax.models.skip_ganomaly import SkipGANomaly, SkipGANomalyConfig, SkipGANomalyTrainer, skip_ganomaly_scores

# name -> detector class (each class's ``name`` is its key); tests/test_models.py and
# tests/test_config.py exercise every entry.
DETECTORS = {cls.name: cls for cls in (
    AnoGAN,        # Schlegl 2017: latent search
    FAnoGAN,       # Schlegl 2019: WGAN-GP + izi/ziz/izif encoder
    EGBAD,         # Zenati 2018: BiGAN
    ALAD,          # Zenati 2018: BiGAN + Dxx/Dzz cycle discriminators
    GANomaly,      # Akcay 2018
    SkipGANomaly,  # Akcay 2019
    CBiGAN,        # Komoto 2020: consistency-ensured BiGAN
    DEDGAN,        # Liu 2021
    JointEncoder,  # Berg 2020
    GANEnsemble,   # Han 2021: wraps any end-to-end detector
    MADGAN,        # Li 2019: LSTM GAN for multivariate time series
)}

__all__ = [
    "ALAD", "ALADConfig", "ALADTrainer", "AnoGAN", "AnoGANConfig", "AnoGANResult", "BiGANTrainer", "CBiGAN",
    "CBiGANConfig", "CBiGANTrainer", "ConfigError", "DEDGAN", "DEDGANConfig", "DEDGANTrainer", "DETECTORS",
    "Detector", "DetectorConfig", "DetectorStack", "EGBAD", "EGBADConfig", "EnsembleConfig", "EnsembleTrainer", "FAnoGAN",
    "FAnoGANConfig", "GANConfigFields", "GANDetector", "GANEnsemble", "GANomaly", "GANomalyConfig",
    "GANomalyTrainer", "JointEncoder", "JointEncoderConfig", "JointEncoderTrainer", "MADGAN", "MADGANConfig",
    "MADGANTrainer", "PlayerDetector", "SkipGANomaly", "SkipGANomalyConfig", "SkipGANomalyTrainer", "alad_scores",
    "anogan_scores", "anogan_stack_batch", "dedgan_scores", "egbad_scores", "ensemble_scores", "fanogan_scores", "ganomaly_scores",
    "joint_encoder_scores", "load", "madgan_scores", "map_batches", "option", "score_batch", "search_latent",
    "search_latent_per_image", "skip_ganomaly_scores", "stack_score_batch", "train_stack",
]
