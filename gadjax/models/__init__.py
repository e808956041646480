"""Detectors: one model family per file, each a thin ``fit`` / ``score_samples`` wrapper
around pure JAX functions that can be used on their own."""
from gadjax.models.anogan import AnoGAN
from gadjax.models.anogan_search import AnoGANResult, search_latent, search_latent_per_image
from gadjax.models.base import Detector, GANDetector, PlayerDetector, default_gan, map_batches
from gadjax.models.ensemble import EnsembleTrainer, GANEnsemble
from gadjax.models.fanogan import FAnoGAN, fanogan_scores
from gadjax.models.joint_encoder import JointEncoder, JointEncoderTrainer, joint_encoder_scores

# name -> detector class; every entry is exercised by tests/test_models.py.
DETECTORS = {"anogan": AnoGAN, "fanogan": FAnoGAN, "joint_encoder": JointEncoder, "ensemble": GANEnsemble}

__all__ = ["DETECTORS", "AnoGAN", "AnoGANResult", "Detector", "EnsembleTrainer", "FAnoGAN", "GANEnsemble", "GANDetector", "JointEncoder", "JointEncoderTrainer", "PlayerDetector", "default_gan", "fanogan_scores",
           "joint_encoder_scores", "map_batches", "search_latent", "search_latent_per_image"]
