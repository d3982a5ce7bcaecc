"""Rankers, from the simplest baseline to a multi-task neural network, behind one interface.

Every ranker predicts, for each row of a feature table (``newsfeed.features.feature_table``), a probability per
reaction (``p_click`` … ``p_hide``); the feed is ordered by the weighted engagement of those probabilities
(``newsfeed.metrics.engagement_score``). Baselines that only rank (reverse-chronological) return a score in
every column, which is enough for ranking metrics and ROC-AUC but not for calibration.

- ``ranker``: the ``Ranker`` interface, ``serving_view`` and the negative-sampling correction;
- ``baselines``: reverse-chronological, popularity, logistic regression and gradient-boosted trees;
- ``multitask``: the multi-task network, its configuration and training loop;
- ``rungs``: chapter 4's stronger shapes (cross layers, a hide tower, attention over recent engagements) and
  the inputs they and an informed ceiling read; ``ladder``, the studies that measure them (rungs, informed
  ceiling, ablation, learning curve), their results cached beside the shipped models;
- ``calibration``: ``PlattScaling`` of each head on fresh rows, and ``Calibrated``, a ranker recalibrated so
  once, and ``CalibratedNightly``, every night on the days before (``NightlyScaling``);
- ``shipped``: the rankers as the book ships them, trained on weeks 1–3 and cached in
  ``data/models/<scale>-seed<seed>/`` (``newsfeed.world.artifacts_folder``; the default world's are committed),
  keyed by the code and the data; ``fitted_multitask``, any configuration's network cached the same way, and
  ``reseeded``, the shipped recipe with another training seed.
"""

from newsfeed.models.baselines import (
    Chronological,
    PerReaction,
    Popularity,
    gradient_boosting,
    logistic_regression,
)
from newsfeed.models.calibration import Calibrated, CalibratedNightly, NightlyScaling, PlattScaling
from newsfeed.models.multitask import MultiTask, MultiTaskConfig, MultiTaskNetwork
from newsfeed.models.ranker import (
    PROBABILITY_COLUMNS,
    Ranker,
    correct_for_negative_sampling,
    downsample_negatives,
    serving_view,
)
from newsfeed.models.shipped import final_baselines, final_multitask, fitted_multitask, reseeded

__all__ = ["PROBABILITY_COLUMNS", "Calibrated", "CalibratedNightly", "Chronological", "MultiTask", "MultiTaskConfig",
           "MultiTaskNetwork", "NightlyScaling", "PerReaction", "PlattScaling", "Popularity", "Ranker",
           "correct_for_negative_sampling", "downsample_negatives", "final_baselines", "final_multitask",
           "fitted_multitask", "gradient_boosting", "logistic_regression", "reseeded", "serving_view"]
