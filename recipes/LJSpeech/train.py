#!/usr/bin/env python3
"""Recipe for training FewSound / HyperSound hypernetworks on LJSpeech-1.1 (seeded 95/5 split).

The paper's Table 6 (arXiv 2503.02585): the same model YAMLs as VCTK, with the
41.2M hypernetwork (see README.md). ``ljspeech.yaml`` (next to this file) holds the
dataset keys; the recipe body is :func:`fewsound_sb.recipe.run_training`.

> python recipes/LJSpeech/train.py hparams/fewsound_kan.yaml --data_folder /data/LJSpeech-1.1 \
      --output_folder results/ljspeech_kan
"""

import os
import sys

from fewsound_sb.recipe import run_training

if __name__ == "__main__":
    run_training(sys.argv[1:], os.path.join(os.path.dirname(os.path.abspath(__file__)), "ljspeech.yaml"))
