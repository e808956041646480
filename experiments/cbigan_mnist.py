"""CBiGAN (Komoto et al. 2020) on shipped MNIST, one-anomalous protocol, both L_D variants.

    /work/venv/bin/python experiments/cbigan_mnist.py --digits 0 1 2 3 4 5 6 7 8 9 --seeds 0

The protocol, split, thresholds, test subset and output format are those of
``egbad_mnist.py`` (same defaults, so the two runs are directly comparable), with the
CBiGAN detector: projection discriminator and both consistency losses
(``--image-consistency``, ``--latent-consistency``; ``--discriminator concat`` ablates the
projection).  Output: ``<out>/cbigan_mnist.jsonl``.
"""
from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import egbad_mnist  # noqa: E402  (shared protocol and bookkeeping)


def parse_args(argv=None):
    """egbad_mnist's flags plus CBiGAN's (--image-consistency, --latent-consistency, --discriminator)."""
    return egbad_mnist.parse_args(argv, model="cbigan")


def main(argv=None):
    egbad_mnist.main(argv, model="cbigan")


if __name__ == "__main__":
    main()
