"""Re-ranking: business rules after the model (drop likely hides, diversify authors and topics greedily)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from newsfeed.validation import require, require_float, require_int


@dataclass(frozen=True)
class RerankConfig:
    """Business rules applied after the model: drop likely hides, then diversify greedily.

    Each post already chosen from the same author multiplies a candidate's score by ``1 - author_penalty``,
    each from the same topic by ``1 - topic_penalty``; ``freshness_half_life_hours`` (if set) halves the score
    of a post every that many hours of age.
    """

    max_p_hide: float = 0.05
    author_penalty: float = 0.3
    topic_penalty: float = 0.1
    freshness_half_life_hours: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse rules that cannot hold (a penalty outside 0 to 1, a half-life of 0): checked when the rules
        are made, so a server is never built with rules that would fail every request."""
        for name in ("max_p_hide", "author_penalty", "topic_penalty"):
            require_float(name, getattr(self, name), 0.0, 1.0)
        half = self.freshness_half_life_hours
        if half is not None:
            require_float("freshness_half_life_hours", half, 0.0, open_lo=True)


def rerank(scored: pd.DataFrame, limit: int, config: RerankConfig | None = None) -> pd.DataFrame:
    """The top ``limit`` rows of ``scored`` (columns ``score``, ``p_hide``, ``author_id``,
    ``topic``, ``post_age_hours``) after the re-ranking rules, in feed order."""
    require_int("limit", limit, lo=1)
    config = config or RerankConfig()
    rows = scored[scored["p_hide"] <= config.max_p_hide]
    score = rows["score"].to_numpy(dtype=float).copy()
    finite = np.isfinite(score)  # argmax would put a NaN score first
    require("scored.score", score[~finite][:3], finite.all(), "finite numbers")
    if config.freshness_half_life_hours is not None:
        age = rows["post_age_hours"].to_numpy(dtype=float)
        score *= 0.5 ** (age / config.freshness_half_life_hours)
    authors, topics = rows["author_id"].to_numpy(), rows["topic"].to_numpy()
    factor = np.ones(len(rows))
    chosen: list[int] = []
    available = np.ones(len(rows), dtype=bool)
    for _ in range(min(limit, len(rows))):
        best = int(np.argmax(np.where(available, score * factor, -np.inf)))
        chosen.append(best)
        available[best] = False
        factor[authors == authors[best]] *= 1 - config.author_penalty
        factor[topics == topics[best]] *= 1 - config.topic_penalty
    return rows.iloc[chosen]
