"""Online experiments on the simulated world: randomize users into arms, serve both arms in one rollout, and
compare per-user metrics with the statistics an A/B test report uses.

Chapter 5 runs a simulated A/B test of a new ranking policy against the legacy ranker. The pieces, in the order
an experiment uses them:

1. ``sample_size_per_arm`` / ``minimum_detectable_lift``: how many users the test needs (power analysis).
2. ``assign_arms``: deterministic, hash-based randomization by user.
3. ``run_ab_test``: one rollout in which each user's feed is ranked by their arm's policy.
4. ``sample_ratio_mismatch``: is the split what was intended? (if not, stop and debug before reading results)
5. ``compare_arms`` / ``compare_all``: means, lifts, confidence intervals and Welch p-values per metric.

The unit of randomization is the user, so the unit of analysis is the user too: every metric is one number
per user over the test window. Sessions and impressions of one user are correlated (same interests, same
friends), so treating them as independent observations would understate the variance and overstate
significance; users are (nearly) independent of each other.

Use::

    from functools import partial
    from newsfeed.experiments import run_ab_test
    from newsfeed.metrics import engagement_score
    from newsfeed.policies import legacy_ranker, oracle_policy

    result = run_ab_test(world, legacy_ranker(0), oracle_policy(world, partial(engagement_score, prefix="p_")),
                         sessions, seed=0, earlier_impressions=earlier_impressions)
    result.sample_ratio()
    result.compare(["engagement", "clicks", "hides"])
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from newsfeed.metrics import REPORT_NAMES, engagement_score
from newsfeed.policies import split_policy
from newsfeed.validation import is_number, require, require_int
from newsfeed.world import REACTIONS, Policy, Rollout, World, storage

CONTROL, TREATMENT = "control", "treatment"
ARMS: tuple[str, str] = (CONTROL, TREATMENT)
DEFAULT_SALT = "feed-ab-1"

#: The per-user metric columns of ``run_ab_test``'s table, in order. ``expected_engagement`` reads the ground
#: truth (the sum of the true engagement probabilities of what was shown): only a simulator has it.
PER_USER_METRICS: tuple[str, ...] = ("sessions", "impressions", *(REPORT_NAMES[r] for r in REACTIONS),
                                     "dwell_seconds", "engagement", "expected_engagement")

#: Conventional SRM threshold: the check runs on every experiment, so it must rarely fire by chance.
SRM_THRESHOLD = 0.001


# --------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------
def _check_open_unit(name: str, value: Any) -> None:
    """A probability strictly between 0 and 1 (alpha, power, a treatment share that leaves both arms users)."""
    require(name, value, is_number(value) and 0.0 < value < 1.0, "a number strictly between 0 and 1")


def _check_design(baseline_mean: Any, baseline_std: Any, alpha: Any, power: Any) -> None:
    require("baseline_mean", baseline_mean, is_number(baseline_mean) and baseline_mean != 0,
             "a finite non-zero number (a relative lift is a share of it)")
    require("baseline_std", baseline_std, is_number(baseline_std) and baseline_std > 0,
             "a finite number > 0 (the per-user standard deviation of the metric)")
    _check_open_unit("alpha", alpha)
    _check_open_unit("power", power)


# --------------------------------------------------------------------------------------------------------
# Randomization
# --------------------------------------------------------------------------------------------------------
def _bucket(user_id: int | str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, user): the first 8 bytes of a SHA-256 digest."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_arms(user_ids: npt.ArrayLike, treatment_share: float = 0.5, salt: str = DEFAULT_SALT) -> pd.Series:
    """The arm (``"control"`` or ``"treatment"``) of each user, indexed by ``user_id``.

    Randomization is a hash, not a random draw: a user's arm is a pure function of ``(salt, user_id)``, so the
    same user sees the same arm in every session, on every server, in every re-run (SHA-256, unlike Python's
    ``hash()``, does not change between processes). A new ``salt`` reshuffles users, which is how a new
    experiment avoids inheriting the previous one's split (carry-over effects). With a fixed salt, raising
    ``treatment_share`` only moves users from control into treatment, never back: a ramp-up keeps its users.
    """
    require("treatment_share", treatment_share, is_number(treatment_share) and 0.0 <= treatment_share <= 1.0,
             "a number from 0 to 1")
    require("salt", salt, isinstance(salt, str), "a string")
    ids = pd.Index(np.ravel(np.asarray(user_ids, dtype=object)), name="user_id").infer_objects()
    values = ids.tolist()
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | np.integer | str)]
    require("user_ids", bad[:3], not bad, "integer or string ids")
    buckets = np.array([_bucket(int(v) if not isinstance(v, str) else v, salt) for v in values])
    arms = np.where(buckets < treatment_share, TREATMENT, CONTROL)
    return pd.Series(arms, index=ids, name="arm", dtype="str")


# --------------------------------------------------------------------------------------------------------
# Power analysis
# --------------------------------------------------------------------------------------------------------
def _z_total(alpha: float, power: float) -> float:
    """z_{1-alpha/2} + z_{power}: how many standard errors the true difference must span (two-sided test)."""
    return float(stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power))


def sample_size_per_arm(baseline_mean: float, baseline_std: float, relative_lift: float, alpha: float = 0.05,
                        power: float = 0.8) -> int:
    """Users per arm needed to detect a ``relative_lift`` of a per-user metric, with a two-sided two-sample test.

    Normal approximation with equal variances in both arms: ``n = 2 (z_{1-alpha/2} + z_power)^2 sigma^2 /
    delta^2`` where ``delta = relative_lift * baseline_mean``, rounded up. ``baseline_mean`` and
    ``baseline_std`` are the metric's per-user mean and standard deviation in control (measured on past
    traffic). The sign of the lift does not matter. Heavy-tailed metrics (engagement, dwell) have a large
    ``sigma / mean``, which is why they need many users.
    """
    _check_design(baseline_mean, baseline_std, alpha, power)
    require("relative_lift", relative_lift, is_number(relative_lift) and relative_lift != 0,
             "a finite non-zero number (0.05 for a 5% lift)")
    delta = abs(relative_lift * baseline_mean)
    return math.ceil(2.0 * (_z_total(alpha, power) * baseline_std / delta) ** 2)


def minimum_detectable_lift(baseline_mean: float, baseline_std: float, n_per_arm: int, alpha: float = 0.05,
                            power: float = 0.8) -> float:
    """The smallest relative lift a test with ``n_per_arm`` users per arm detects with probability ``power``.

    The inverse of ``sample_size_per_arm`` (same assumptions): ``(z_{1-alpha/2} + z_power) sigma sqrt(2 / n)
    / |mean|``. A positive number (0.05 is a 5% lift).
    """
    _check_design(baseline_mean, baseline_std, alpha, power)
    is_int = isinstance(n_per_arm, int | np.integer) and not isinstance(n_per_arm, bool)
    require("n_per_arm", n_per_arm, is_int and n_per_arm >= 2, "an integer >= 2 (users in each arm)")
    return _z_total(alpha, power) * baseline_std * math.sqrt(2.0 / n_per_arm) / abs(baseline_mean)


# --------------------------------------------------------------------------------------------------------
# Running the test
# --------------------------------------------------------------------------------------------------------
@dataclass
class ABResult:
    """What ``run_ab_test`` produced: one row per user in ``per_user`` and the rollout that served both arms."""

    per_user: pd.DataFrame
    rollout: Rollout
    treatment_share: float
    salt: str

    def sample_ratio(self, threshold: float = SRM_THRESHOLD) -> pd.Series:
        """The sample-ratio-mismatch check of this test's users (see ``sample_ratio_mismatch``)."""
        return sample_ratio_mismatch(self.per_user["arm"], self.treatment_share, threshold)

    def compare(self, metrics: Sequence[str] | None = None, alpha: float = 0.05) -> pd.DataFrame:
        """The comparison table of ``metrics`` (default: all per-user metrics; see ``compare_all``)."""
        return compare_all(self.per_user, metrics, alpha)


def per_user_metrics(rollout: Rollout, sessions: pd.DataFrame, arms: pd.Series) -> pd.DataFrame:
    """One row per user with a session in ``sessions``: the user's arm and each metric summed over the window.

    Columns: ``user_id``, ``arm``, then ``PER_USER_METRICS``: ``sessions``, ``impressions``, the sampled count
    of each reaction (``clicks`` ... ``hides``), ``dwell_seconds``, the weighted ``engagement`` of the observed
    reactions (``engagement_score``), and ``expected_engagement``, the same weights applied to the true
    probabilities (ground truth, free of sampling noise; no real test has it). A user whose sessions showed
    nothing has zeros, not a missing row: dropping them would condition on an outcome the policy may affect.
    """
    impressions = rollout.impressions
    truth = impressions[["impression_id"]].merge(rollout.probabilities, on="impression_id", how="left")
    observed = pd.DataFrame({
        "user_id": impressions["user_id"].to_numpy(dtype=np.int64),
        "impressions": 1,
        **{REPORT_NAMES[r]: impressions[r].to_numpy(dtype=np.int64) for r in REACTIONS},
        "dwell_seconds": impressions["dwell_seconds"].to_numpy(dtype=float),
        "engagement": engagement_score(impressions).to_numpy(),
        "expected_engagement": engagement_score(truth, prefix="p_").to_numpy(),
    })
    totals = observed.groupby("user_id").sum()
    counts = sessions.groupby("user_id").size().rename("sessions")
    table = counts.to_frame().join(totals, how="left").fillna(0.0)
    integer = ["sessions", "impressions", *(REPORT_NAMES[r] for r in REACTIONS)]
    table[integer] = table[integer].astype(np.int64)
    table.insert(0, "arm", arms.reindex(table.index).astype("str"))
    table.index = table.index.astype(np.int64)
    return table.rename_axis("user_id").reset_index()[["user_id", "arm", *PER_USER_METRICS]]


def run_ab_test(world: World, control: Policy, treatment: Policy, sessions: pd.DataFrame, seed: int = 0,
                earlier_impressions: pd.DataFrame | None = None, treatment_share: float = 0.5,
                salt: str = DEFAULT_SALT) -> ABResult:
    """Serve ``sessions`` with ``control`` for control users and ``treatment`` for treated users, in one rollout.

    Users are assigned by ``assign_arms(user_ids, treatment_share, salt)``. Both arms are served in the *same*
    rollout, so they share the same world, the same hours and the same posts, as two arms of a real test run
    side by side do (two separate rollouts would compare different draws of the world's noise as well as the
    policies). ``seed`` and ``earlier_impressions`` are passed to ``World.rollout``.

    The per-user table (see ``per_user_metrics``) holds every user with at least one session in ``sessions``;
    users with no session in the window never triggered the experiment and are not in it. Since the world's
    sessions do not depend on the ranking, this filter is the same in both arms and does not bias the test.

    One caveat the simulator shares with real feeds: the arms are not fully independent. Both read the posts'
    engagement counters (``likes_so_far``, the discovery pool), so a treatment that earns more likes also
    changes what the control's legacy ranker promotes (interference; the estimate is of the effect at this
    treatment share, not of a full launch).
    """
    _check_open_unit("treatment_share", treatment_share)
    require("sessions", type(sessions).__name__, isinstance(sessions, pd.DataFrame) and "user_id" in sessions,
             "a DataFrame of sessions with a user_id column")
    arms = assign_arms(np.unique(sessions["user_id"].to_numpy(dtype=np.int64)), treatment_share, salt)
    treated = arms.index[arms == TREATMENT].to_numpy(dtype=np.int64)
    rollout = world.rollout(split_policy(control, treatment, treated), sessions, seed=seed,
                            earlier_impressions=earlier_impressions)
    return ABResult(per_user_metrics(rollout, sessions, arms), rollout, float(treatment_share), salt)


# --------------------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------------------
def sample_ratio_mismatch(arms: pd.Series | npt.ArrayLike, treatment_share: float = 0.5,
                          threshold: float = SRM_THRESHOLD) -> pd.Series:
    """Chi-square test of the arm counts against the intended split: is the randomization working?

    ``arms`` holds one arm label per user. A ``p_value`` below ``threshold`` (0.001 by default, since the check
    runs on every experiment) flags a *sample ratio mismatch*: users were lost or gained unevenly (a bug in
    assignment, logging or the trigger), so the arms are no longer comparable and no metric of the test can be
    trusted. Returns the counts, the expected counts, the statistic, the p-value and ``mismatch``.
    """
    _check_open_unit("treatment_share", treatment_share)
    _check_open_unit("threshold", threshold)
    labels = pd.Series(np.ravel(np.asarray(arms, dtype=object)))
    unknown = sorted(set(labels.astype(str)) - set(ARMS))
    require("arms", unknown[:3], not unknown, f"labels {CONTROL!r} and {TREATMENT!r} only")
    counts = np.array([(labels == CONTROL).sum(), (labels == TREATMENT).sum()], dtype=np.int64)
    require("arms", f"{counts.sum()} labels", counts.sum() > 0, "at least one label")
    expected = counts.sum() * np.array([1.0 - treatment_share, treatment_share])
    statistic, p_value = stats.chisquare(counts, expected)
    return pd.Series({"n_control": int(counts[0]), "n_treatment": int(counts[1]),
                      "expected_control": float(expected[0]), "expected_treatment": float(expected[1]),
                      "chi2": float(statistic), "p_value": float(p_value), "mismatch": bool(p_value < threshold)},
                     name="sample_ratio")


def _arm_values(per_user: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The metric's per-user values in control and in treatment, after checking the frame."""
    require("per_user", type(per_user).__name__, isinstance(per_user, pd.DataFrame) and "arm" in per_user,
             "a DataFrame with an 'arm' column and one row per user")
    require("metric", metric, metric in per_user.columns and pd.api.types.is_numeric_dtype(per_user[metric]),
             f"a numeric column of per_user ({', '.join(c for c in per_user.columns if c != 'arm')})")
    arm = per_user["arm"].astype(str)
    unknown = sorted(set(arm) - set(ARMS))
    require("per_user", f"arm labels {unknown[:3]}", not unknown, f"arm labels {CONTROL!r} and {TREATMENT!r} only")
    values = per_user[metric].to_numpy(dtype=float)
    control, treatment = values[(arm == CONTROL).to_numpy()], values[(arm == TREATMENT).to_numpy()]
    require("per_user", f"{len(control)} control and {len(treatment)} treatment rows",
             min(len(control), len(treatment)) >= 2, "at least 2 users in each arm")
    require("metric", metric, bool(np.all(np.isfinite(values))), "a column without NaN or infinite values")
    return control, treatment


def compare_arms(per_user: pd.DataFrame, metric: str, alpha: float = 0.05) -> pd.Series:
    """Treatment against control on one per-user metric: means, lifts, intervals, Welch's p-value.

    - ``abs_lift`` = treatment mean - control mean, with a Welch ``1 - alpha`` interval
      (``abs_ci_low``, ``abs_ci_high``; Welch-Satterthwaite degrees of freedom), the interval that
      matches ``p_value``.
    - ``rel_lift`` = ``abs_lift / control_mean``, with a **delta-method** normal interval
      (``rel_ci_low``, ``rel_ci_high``): the variance of the ratio of two independent means,
      ``Var(t)/c^2 + t^2 Var(c)/c^4``, accounts for the noise of the control mean in the
      denominator, which dividing the absolute interval by the control mean would ignore. NaN when
      the control mean is 0.
    - ``p_value``: Welch's two-sample t-test (``scipy.stats.ttest_ind(equal_var=False)``),
      two-sided: it does not assume the arms have equal variances, which a treatment that changes
      the feed need not preserve. ``significant`` is ``p_value < alpha``.

    Rows must be users (the unit of randomization), so that the observations are independent.
    """
    _check_open_unit("alpha", alpha)
    control, treatment = _arm_values(per_user, metric)
    n_c, n_t = len(control), len(treatment)
    mean_c, mean_t = float(control.mean()), float(treatment.mean())
    var_c, var_t = control.var(ddof=1) / n_c, treatment.var(ddof=1) / n_t
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    diff = mean_t - mean_c
    half = float(stats.t.ppf(1.0 - alpha / 2.0, welch.df)) * math.sqrt(var_c + var_t)
    if mean_c != 0:
        rel = diff / mean_c
        z = float(stats.norm.ppf(1.0 - alpha / 2.0))
        rel_half = z * math.sqrt(var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4)
    else:
        rel, rel_half = float("nan"), float("nan")
    p_value = float(welch.pvalue)
    return pd.Series({"n_control": n_c, "n_treatment": n_t, "control_mean": mean_c,
                      "treatment_mean": mean_t, "abs_lift": diff, "abs_ci_low": diff - half,
                      "abs_ci_high": diff + half,
                      "rel_lift": rel, "rel_ci_low": rel - rel_half, "rel_ci_high": rel + rel_half,
                      "p_value": p_value, "significant": bool(p_value < alpha)}, name=metric)


def compare_all(per_user: pd.DataFrame, metrics: Sequence[str] | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """``compare_arms`` for several metrics, one row per metric (indexed by metric): a table for a notebook.

    ``metrics`` defaults to the ``PER_USER_METRICS`` present in ``per_user``. Each p-value is for its own
    metric: with many metrics, some will cross ``alpha`` by chance (no multiple-testing correction is applied;
    decide the primary metric before the test).
    """
    if metrics is None:
        metrics = [m for m in PER_USER_METRICS if isinstance(per_user, pd.DataFrame) and m in per_user.columns]
    require("metrics", metrics, isinstance(metrics, Sequence) and not isinstance(metrics, str) and len(metrics) > 0,
             "a non-empty list of metric column names")
    rows = [compare_arms(per_user, metric, alpha).to_dict() for metric in metrics]
    return pd.DataFrame(rows, index=pd.Index(list(metrics), name="metric"))


def cuped(outcome: npt.ArrayLike, covariate: npt.ArrayLike) -> np.ndarray:
    """``outcome - theta (covariate - mean)``, ``theta`` the slope of outcome on covariate (CUPED): the same
    mean in each arm when the covariate was measured before the test, with the variance the covariate explains
    taken out. One slope for both arms; a constant covariate changes nothing."""
    y, x = np.asarray(outcome, dtype=float), np.asarray(covariate, dtype=float)
    require("covariate", f"{x.shape} values for {y.shape} outcomes", x.shape == y.shape and y.ndim == 1,
            "one value per outcome")
    variance = np.var(x, ddof=1) if len(x) > 1 else 0.0
    theta = np.cov(y, x)[0, 1] / variance if variance > 0 else 0.0
    return y - theta * (x - x.mean())


def test_window(world: World, start_day: int, days: int) -> tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]:
    """A test over ``days`` from the world's day ``start_day``: its first instant, the log before it (what
    the rollout starts from) and the sessions in it."""
    require_int("start_day", start_day, 1, world.config.n_days - 1)
    require_int("days", days, 1, world.config.n_days - start_day)
    start = world.config.start_time + pd.Timedelta(days=start_day)
    earlier = world.impressions[world.impressions["timestamp"] < start]
    sessions = world.sessions[(world.sessions["started_at"] >= start)
                              & (world.sessions["started_at"] < start + pd.Timedelta(days=days))]
    return start, earlier, sessions


def study_sources(study: str) -> list[Path]:
    """What a cached study of rollouts depends on: the simulator, the policies, this module (the test window,
    CUPED) and the ``study``'s own file (its ``__file__``)."""
    from newsfeed import policies

    return [*storage.source_files(), Path(policies.__file__), Path(__file__), Path(study)]
