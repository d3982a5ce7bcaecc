"""Monitoring a ranker in production: feature drift, prediction drift, daily quality and operational metrics.

Drift is measured against a *reference window* (usually the model's training data):

- the **population stability index** (PSI) compares the share of rows in each bin, with bins cut at the
  reference's quantiles for numbers and one bin per category (plus one for categories never seen before);
- the two-sample **Kolmogorov–Smirnov** test (numbers) and the chi-square test (categories) ask whether the
  two samples could come from one distribution;
- ``status`` turns a score into ``ok`` / ``warn`` / ``alert`` with the usual PSI rule of thumb (0.1, 0.25).

Use::

    from newsfeed import monitoring
    report = monitoring.drift_report(train_table, today_table, numeric=["post_age_hours"], categorical=["device"])
    report[report["status"] != "ok"]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from newsfeed.metrics import calibration, share_of_lift
from newsfeed.validation import require, require_float

#: PSI rule of thumb: below 0.1 no meaningful shift, 0.1–0.25 a moderate shift to watch, above 0.25 act.
PSI_WARN = 0.1
PSI_ALERT = 0.25
#: The bin of categories absent from the reference window (a new device, a new country).
UNSEEN = "(unseen)"


def _values(name: str, values: Iterable[object]) -> np.ndarray:
    array = np.asarray(values if not isinstance(values, pd.Series) else values.to_numpy())
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name} is invalid: {name} accepts a non-empty one-dimensional sample")
    return array


def _numbers(name: str, values: Iterable[object]) -> np.ndarray:
    array = _values(name, values)
    try:
        array = array.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is invalid: {name} accepts numbers (chi_square_test compares categories)") from None
    array = array[~np.isnan(array)]
    if len(array) == 0:
        raise ValueError(f"{name} is invalid: {name} has no non-missing values")
    return array


def _check_threshold(name: str, value: float) -> None:
    require_float(name, value, 0, open_lo=True)


def bin_shares(reference: Iterable[object], current: Iterable[object], bins: int = 10,
               categorical: bool = False) -> pd.DataFrame:
    """The share of each sample in each bin: the table PSI is computed from.

    Numbers are cut at the reference's quantiles (so each bin holds about ``1 / bins`` of the reference; tied
    quantiles merge), with open-ended outer bins so that values outside the reference's range still count.
    Categories get one bin each, plus ``UNSEEN`` for categories the reference never had. Missing values get
    their own bin (``"(missing)"``) when either sample has any.
    """
    if not isinstance(bins, int | np.integer) or isinstance(bins, bool) or bins < 2:
        raise ValueError(f"bins={bins!r} is invalid: bins accepts an integer >= 2")
    ref, cur = _values("reference", reference), _values("current", current)
    if categorical:
        ref_s, cur_s = pd.Series(ref, dtype=object), pd.Series(cur, dtype=object)
        ref_s, cur_s = ref_s.fillna("(missing)").astype(str), cur_s.fillna("(missing)").astype(str)
        known = sorted(ref_s.unique())
        cur_s = cur_s.where(cur_s.isin(known), UNSEEN)
        labels = known + ([UNSEEN] if (cur_s == UNSEEN).any() else [])
        counts = pd.DataFrame({"reference": ref_s.value_counts(), "current": cur_s.value_counts()})
        counts = counts.reindex(labels).fillna(0.0)
    else:
        ref_n = pd.to_numeric(pd.Series(ref), errors="coerce").to_numpy(dtype=float)
        cur_n = pd.to_numeric(pd.Series(cur), errors="coerce").to_numpy(dtype=float)
        if np.isnan(ref_n).all():
            raise ValueError("reference is invalid: reference has no non-missing numbers")
        inner = np.unique(np.nanquantile(ref_n, np.linspace(0, 1, bins + 1)[1:-1]))
        edges = np.r_[-np.inf, inner, np.inf]
        labels = [f"({lo:.4g}, {hi:.4g}]" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        rows = {}
        for sample_name, sample in (("reference", ref_n), ("current", cur_n)):
            present = sample[~np.isnan(sample)]
            where = np.searchsorted(inner, present, side="left")
            rows[sample_name] = np.bincount(where, minlength=len(labels)).astype(float)
            rows[sample_name] = np.r_[rows[sample_name], np.isnan(sample).sum()]
        counts = pd.DataFrame(rows, index=[*labels, "(missing)"])
        if counts.loc["(missing)"].sum() == 0:
            counts = counts.drop(index="(missing)")
    return counts / counts.sum()


def psi(reference: Iterable[object], current: Iterable[object], bins: int = 10,
        categorical: bool = False, epsilon: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference``.

    ``sum((c - r) * ln(c / r))`` over the bins of ``bin_shares``; a bin empty in one sample gets
    ``epsilon`` instead of 0 so the logarithm stays finite (a category never seen before counts
    fully). 0 means the same distribution; the rule of thumb reads < 0.1 stable, 0.1–0.25 moderate
    shift, > 0.25 major shift.
    """
    _check_threshold("epsilon", epsilon)
    shares = bin_shares(reference, current, bins=bins, categorical=categorical).clip(lower=epsilon)
    r, c = shares["reference"].to_numpy(), shares["current"].to_numpy()
    return float(np.sum((c - r) * np.log(c / r)))


def ks_test(reference: Iterable[object], current: Iterable[object]) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov test (scipy): the largest gap between the two empirical CDFs, and its
    p-value. With tens of thousands of rows even a negligible gap is "significant": read the statistic."""
    result = stats.ks_2samp(_numbers("reference", reference), _numbers("current", current))
    return float(result.statistic), float(result.pvalue)


def chi_square_test(reference: Iterable[object], current: Iterable[object]) -> tuple[float, float]:
    """Chi-square test of homogeneity of two categorical samples (scipy): Cramér's V and the p-value."""
    counts = [pd.Series(_values(name, sample), dtype=object).fillna("(missing)").astype(str).value_counts()
              for name, sample in (("reference", reference), ("current", current))]
    table = pd.concat(counts, axis=1).fillna(0.0).to_numpy()
    if table.shape[0] < 2:
        return 0.0, 1.0
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return float(np.sqrt(chi2 / table.sum())), float(p_value)


def status(value: float | Sequence[float] | pd.Series, warn: float = PSI_WARN,
           alert: float = PSI_ALERT) -> str | pd.Series:
    """``"ok"``, ``"warn"`` (value > warn) or ``"alert"`` (value > alert) for one score or a series of them."""
    _check_threshold("warn", warn)
    _check_threshold("alert", alert)
    if alert < warn:
        raise ValueError(f"alert={alert!r} is invalid: alert accepts a number >= warn ({warn!r})")
    if np.ndim(value) == 0:
        number = float(value)  # type: ignore[arg-type]
        # A score that could not be computed is not a healthy one: refused rather than read as "ok".
        require("value", value, not np.isnan(number), "a number (a drift score that could be computed)")
        return "alert" if number > alert else "warn" if number > warn else "ok"
    series = pd.Series(value, dtype=float)
    require("value", series[series.isna()].index.tolist()[:5], not series.isna().any(),
            "numbers (drift scores that could be computed); these labels hold NaN")
    return pd.Series(np.select([series > alert, series > warn], ["alert", "warn"], "ok"), index=series.index,
                     name="status")


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, numeric: Sequence[str] = (),
                 categorical: Sequence[str] = (), bins: int = 10, warn: float = PSI_WARN,
                 alert: float = PSI_ALERT) -> pd.DataFrame:
    """One row per feature: PSI, a test statistic and p-value (KS for numbers, chi-square's Cramér's V for
    categories), the share of current rows in categories unseen in the reference, and the PSI status.
    Sorted by PSI, largest first."""
    columns = [*numeric, *categorical]
    if not columns:
        raise ValueError("numeric and categorical are empty: drift_report needs at least one feature")
    for name, frame in (("reference", reference), ("current", current)):
        if missing := [c for c in columns if c not in frame.columns]:
            raise ValueError(f"{name} is missing columns {missing}")
    rows = []
    for column in columns:
        is_category = column in categorical
        shares = bin_shares(reference[column], current[column], bins=bins, categorical=is_category)
        statistic, p_value = (chi_square_test if is_category else ks_test)(reference[column], current[column])
        rows.append({"feature": column, "kind": "categorical" if is_category else "numeric",
                     "psi": psi(reference[column], current[column], bins=bins, categorical=is_category),
                     "test": "chi-square" if is_category else "KS", "statistic": statistic, "p_value": p_value,
                     "unseen_share": float(shares["current"].get(UNSEEN, 0.0)) if is_category else 0.0})
    report = pd.DataFrame(rows).set_index("feature")
    report["status"] = status(report["psi"], warn, alert)
    return report.sort_values("psi", ascending=False, kind="stable")


def day_index(timestamps: pd.Series, start: str | pd.Timestamp) -> pd.Series:
    """Whole days since ``start`` (day 0 is the first day) for each timestamp."""
    return ((pd.to_datetime(timestamps) - pd.Timestamp(start)) // pd.Timedelta(days=1)).astype(int).rename("day")


def daily_psi(reference: pd.DataFrame, current: pd.DataFrame, days: pd.Series, numeric: Sequence[str] = (),
              categorical: Sequence[str] = (), bins: int = 10) -> pd.DataFrame:
    """PSI of each feature, one row per day of ``current`` (``days`` aligned with its rows): the drift
    dashboard's time series."""
    if len(days) != len(current):
        raise ValueError(f"days is invalid: days needs one value per row of current ({len(current)}), "
                         f"got {len(days)}")
    out = {}
    for day, rows in current.groupby(np.asarray(days), sort=True):
        out[day] = {c: psi(reference[c], rows[c], bins=bins, categorical=c in categorical)
                    for c in [*numeric, *categorical]}
    return pd.DataFrame(out).T.rename_axis("day")


def daily_quality(labels: pd.DataFrame, predictions: pd.DataFrame, days: pd.Series,
                  reactions: Sequence[str] = ("click", "like"),
                  oracle: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per day: impressions, and per reaction the ROC-AUC and calibration (mean predicted over observed rate)
    of ``predictions`` (``p_<reaction>`` columns, rows aligned with ``labels``). With ``oracle`` (the true
    probabilities), also the oracle's AUC and the model's share of the oracle's lift over random,
    ``(AUC - 0.5) / (oracle AUC - 0.5)``, which separates the model's decay from a day that is simply harder.
    """
    if not len(labels) == len(predictions) == len(days):
        raise ValueError(f"labels, predictions and days must be aligned; got lengths {len(labels)}, "
                         f"{len(predictions)}, {len(days)}")
    missing = [r for r in reactions if r not in labels.columns or f"p_{r}" not in predictions.columns]
    if missing:
        raise ValueError(f"reactions={list(reactions)!r} is invalid: no label or p_ column for {missing}")
    day = np.asarray(days)
    rows = {}
    for value in np.unique(day):
        mask = day == value
        row: dict[str, float] = {"impressions": float(mask.sum())}
        for reaction in reactions:
            y = labels[reaction].to_numpy()[mask]
            p = predictions[f"p_{reaction}"].to_numpy(dtype=float)[mask]
            has_both = 0 < y.sum() < len(y)
            row[f"auc_{reaction}"] = roc_auc_score(y, p) if has_both else np.nan
            row[f"calibration_{reaction}"] = calibration(y, p)
            if oracle is not None:
                best = roc_auc_score(y, oracle[f"p_{reaction}"].to_numpy(dtype=float)[mask]) if has_both else np.nan
                row[f"oracle_auc_{reaction}"] = best
                row[f"lift_share_{reaction}"] = share_of_lift(row[f"auc_{reaction}"], 0.5, best)
        rows[value] = row
    frame = pd.DataFrame(rows).T.rename_axis("day")
    frame["impressions"] = frame["impressions"].astype(int)
    return frame


def daily_operations(current: pd.DataFrame, reference: pd.DataFrame, days: pd.Series,
                     categorical: Sequence[str] = ("device",), user: str = "user_id",
                     session: str = "session_id") -> pd.DataFrame:
    """Operational metrics per day beside the ML ones: requests (impressions) and sessions, the share of rows
    whose value of each ``categorical`` column never occurred in ``reference``, and the share of rows from
    users absent from ``reference`` (cold start for the model's user embedding)."""
    if len(days) != len(current):
        raise ValueError(f"days is invalid: days needs one value per row of current ({len(current)}), "
                         f"got {len(days)}")
    needed = [*categorical, user, session]
    for name, frame in (("current", current), ("reference", reference)):
        if missing := [c for c in needed if c not in frame.columns and not (name == "reference" and c == session)]:
            raise ValueError(f"{name} is missing columns {missing}")
    flags = pd.DataFrame({"day": np.asarray(days), "session": current[session].to_numpy()}, index=current.index)
    for column in categorical:
        flags[f"unseen_{column}_share"] = ~current[column].isin(set(reference[column].dropna()))
    flags["cold_start_user_share"] = ~current[user].isin(set(reference[user]))
    grouped = flags.groupby("day", sort=True)
    out = pd.DataFrame({"requests": grouped.size(), "sessions": grouped["session"].nunique()})
    shares = [c for c in flags.columns if c.endswith("_share")]
    return out.join(grouped[shares].mean())


def warm_started(model: Any, rows: pd.DataFrame, epochs: int = 1) -> Any:
    """A copy of the fitted ``models.MultiTask`` trained ``epochs`` more passes over ``rows``
    (say, yesterday's impressions) from its current weights: the cheap daily update.

    What it keeps is what it gives up against a retraining: the feature encoding and the id
    vocabularies stay as first fitted, so a device or a user it never saw still gets the unknown
    row, and old patterns fade only as fast as new rows overwrite them. It reads the network's
    inputs, labels and loss as ``fit`` does.
    """
    import copy

    import torch

    from newsfeed.models.multitask import TRAINING_DTYPE

    require("model", type(model).__name__, hasattr(model, "network_"), "a fitted models.MultiTask")
    require("epochs", epochs, isinstance(epochs, int) and epochs >= 1, "an integer >= 1")
    updated = copy.deepcopy(model)
    config = updated.config
    network = updated.network_.to(TRAINING_DTYPE)
    inputs, (reactions, dwell) = updated.inputs(rows, TRAINING_DTYPE), updated._labels(rows)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    network.train()
    for _ in range(epochs):
        order = torch.randperm(len(reactions), generator=generator)
        for lo in range(0, len(order), config.batch_size):
            batch = order[lo:lo + config.batch_size]
            logits, dwell_pred = network(*(x[batch] for x in inputs))
            loss, _ = updated._loss(logits, dwell_pred, reactions[batch], dwell[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    updated.network_ = network.float().eval()  # serve in float32, as fit leaves it
    return updated
