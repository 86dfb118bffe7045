#!/usr/bin/env python3
"""Fits one INR per clip on GTZAN: the paper's Table 18 (10 clips per genre, 100 in all).

Clips are drawn per genre with a seeded RNG (``seed``), resampled to 22,050 Hz,
cropped at a seeded random start to ``crop_length`` samples and fitted as by
``recipes/VCTK/fit_inr.py`` (same outputs: results.csv, summary.md, weights,
wavs, figures, loss curve; rerunning resumes). The recipe body is
:func:`fewsound_sb.recipe.run_fitting`; ``gtzan.yaml`` holds the dataset keys.

> python recipes/GTZAN/fit_inr.py hparams/inr/kan.yaml --data_folder /data/gtzan/Data \
      --output_folder results/table18/kan
"""

import os
import sys

from fewsound_sb.recipe import run_fitting

if __name__ == "__main__":
    run_fitting(sys.argv[1:], os.path.join(os.path.dirname(os.path.abspath(__file__)), "gtzan.yaml"))
