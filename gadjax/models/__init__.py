"""Detectors: one model family per file, each a thin ``fit`` / ``score_samples`` wrapper
around pure JAX functions that can be used on their own."""
from gadjax.models.alad import ALAD, ALADConfig, ALADTrainer
from gadjax.models.anogan import AnoGAN
from gadjax.models.anogan_search import AnoGANResult, search_latent, search_latent_per_image
from gadjax.models.base import Detector, GANDetector, PlayerDetector, default_gan, map_batches
from gadjax.models.bigan import EGBAD, BiGANConfig, BiGANTrainer
from gadjax.models.cbigan import CBiGAN, CBiGANConfig, CBiGANTrainer
from gadjax.models.dedgan import DEDGAN, DEDGANConfig, DEDGANTrainer, dedgan_scores
from gadjax.models.ensemble import EnsembleTrainer, GANEnsemble
from gadjax.models.fanogan import FAnoGAN, fanogan_scores
from gadjax.models.ganomaly import GANomaly, GANomalyConfig, GANomalyTrainer, ganomaly_scores
from gadjax.models.joint_encoder import JointEncoder, JointEncoderTrainer, joint_encoder_scores
from gadjax.models.madgan import MADGAN, MADGANTrainer, madgan_scores
from gadjax.models.skip_ganomaly import SkipGANomaly, SkipGANomalyConfig, SkipGANomalyTrainer, skip_ganomaly_scores

# name -> detector class; every entry is exercised by tests/test_models.py.
DETECTORS = {
    "anogan": AnoGAN,              # Schlegl 2017: latent search
    "fanogan": FAnoGAN,            # Schlegl 2019: WGAN-GP + izi/ziz/izif encoder
    "egbad": EGBAD,                # Zenati 2018: BiGAN
    "alad": ALAD,                  # Zenati 2018: BiGAN + Dxx/Dzz cycle discriminators
    "ganomaly": GANomaly,          # Akcay 2018
    "skip_ganomaly": SkipGANomaly, # Akcay 2019
    "cbigan": CBiGAN,              # Komoto 2020: consistency-ensured BiGAN
    "dedgan": DEDGAN,              # Liu 2021
    "joint_encoder": JointEncoder, # Berg 2020
    "ensemble": GANEnsemble,       # Han 2021: wraps any end-to-end detector
    "madgan": MADGAN,              # Li 2019: LSTM GAN for multivariate time series
}

__all__ = [
    "ALAD", "ALADConfig", "ALADTrainer", "AnoGAN", "AnoGANResult", "BiGANConfig", "BiGANTrainer", "CBiGAN",
    "CBiGANConfig", "CBiGANTrainer", "DEDGAN", "DEDGANConfig", "DEDGANTrainer", "DETECTORS", "Detector", "EGBAD",
    "EnsembleTrainer", "FAnoGAN", "GANDetector", "GANEnsemble", "GANomaly", "GANomalyConfig", "GANomalyTrainer",
    "JointEncoder", "JointEncoderTrainer", "MADGAN", "MADGANTrainer", "PlayerDetector", "SkipGANomaly",
    "SkipGANomalyConfig", "SkipGANomalyTrainer", "dedgan_scores", "default_gan", "fanogan_scores",
    "ganomaly_scores", "joint_encoder_scores", "madgan_scores", "map_batches", "search_latent",
    "search_latent_per_image", "skip_ganomaly_scores",
]
