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
from egbad_mnist import main  # noqa: E402  (shared protocol and bookkeeping)

if __name__ == "__main__":
    main(model="cbigan")
