#!/usr/bin/env python3
"""Recipe for training FewSound / HyperSound hypernetworks on VCTK-Corpus-0.92.

A sound encoder and a hypernetwork learn to turn a 32,768-sample clip into the
weights of a small target network (KAN, NeRF, SIREN) that reproduces the clip
(paper: "FewSound", https://arxiv.org/abs/2503.02585). The model YAML decides
the method (FewSoundHead or HyperSoundHead) and the target; ``vctk.yaml``
(next to this file) holds the dataset keys (data_folder, valid_speakers, mic,
skip_prep, the manifests).

To run this recipe:

> python train.py hparams/fewsound_kan.yaml --data_folder /data/VCTK-Corpus-0.92

Multi-GPU (SpeechBrain DDP):

> torchrun --nproc_per_node=8 train.py hparams/fewsound_kan.yaml --data_folder ...

Validation: the last 10 speakers; the final evaluation runs on them too (the
paper has no separate VCTK test split). Metric tables and example
reconstructions are written under ``<output_folder>/eval/``. The recipe body
(load, prepare, train, evaluate) is :func:`fewsound_sb.recipe.run_training`,
shared by every dataset recipe.
"""

import os
import sys

from fewsound_sb.recipe import run_training

if __name__ == "__main__":
    run_training(sys.argv[1:], os.path.join(os.path.dirname(os.path.abspath(__file__)), "vctk.yaml"))
