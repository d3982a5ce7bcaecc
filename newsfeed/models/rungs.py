"""Chapter 4's ladder past the shipped network: three stronger shapes, and the inputs that measure what limits
them (the hidden variables of an informed ceiling, and feature groups to ablate).

Each rung changes one thing in ``MultiTaskNetwork``; a ``Rung`` is the ``MultiTask`` ranker that trains one, the
shape chosen by ``RungConfig.architecture``:

- ``CrossNetwork`` (``"cross"``): DCN-v2 cross layers beside the deep ones, so products of any two inputs are
  one layer away (Wang et al. 2021);
- ``HideTowerNetwork`` (``"hide-tower"``): the rare hide head gets its own tower instead of sharing the layers
  the frequent reactions shape (an answer to negative transfer between tasks);
- ``HistoryNetwork`` (``"history"``): attention over the user's most recent engagements, with the candidate as
  the query (DIN, Zhou et al. 2018); the tables need the columns ``with_history`` adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from newsfeed import features
from newsfeed.models.multitask import MultiTask, MultiTaskConfig, MultiTaskNetwork
from newsfeed.validation import require, require_columns, require_int

if TYPE_CHECKING:
    from newsfeed.world import World

#: Cross layers of ``CrossNetwork``, the width of ``HideTowerNetwork``'s tower, and how many recent engagements
#: ``HistoryNetwork`` attends over.
CROSS_LAYERS = 2
HIDE_TOWER = (64,)
HISTORY_LENGTH = 20
#: The reactions that count as an engagement in a user's history.
ENGAGEMENTS = ("like", "comment", "share")

#: The hidden variables an informed ceiling may see, by what they describe (``World.hidden_variables``).
HIDDEN_GROUPS: dict[str, tuple[str, ...]] = {
    "post": ("quality", "clickbait"),
    "user": ("click_bias", "react_bias", "passive", "privacy_minded"),
    "pair": ("affinity", "closeness", "media_preference"),
}
#: Feature groups an ablation leaves out: what the logs' counters, the text and the social graph each add.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "log counters": tuple(name for name in features.NUMERIC_FEATURES if name.startswith(("post_", "user_", "author_"))
                          and name not in ("post_age_hours", "user_posts", "user_posts_topic_share",
                                           "author_is_page", "author_followers")),
    "text embedding": features.TEXT_FEATURES,
    "social graph": ("is_friend", "is_follow", "author_followers", "user_author_impressions",
                     "user_author_engagement_decayed"),
}


def shipped_numeric() -> tuple[str, ...]:
    """The shipped network's dense inputs: the model features without position (it has its own tower)."""
    return tuple(name for name in features.MODEL_NUMERIC_FEATURES if name != "position")


def ablated(group: str) -> tuple[str, ...]:
    """The shipped dense inputs without the ``FEATURE_GROUPS`` group ``group``."""
    require("group", group, group in FEATURE_GROUPS, f"one of {', '.join(map(repr, FEATURE_GROUPS))}")
    return tuple(name for name in shipped_numeric() if name not in FEATURE_GROUPS[group])


def with_hidden(table: pd.DataFrame, world: World,
                groups: Sequence[str] = tuple(HIDDEN_GROUPS)) -> pd.DataFrame:
    """``table`` with the hidden variables of ``groups`` (``HIDDEN_GROUPS``) as ``hidden_<name>``
    columns, each row's own (its user, post, time and device): an informed ceiling's features."""
    unknown = [group for group in groups if group not in HIDDEN_GROUPS]
    require("groups", list(groups), bool(groups) and not unknown,
            f"one or more of {', '.join(HIDDEN_GROUPS)}")
    rows = (table["user_id"], table["post_id"], table["timestamp"], table["device"])
    hidden = world.hidden_variables(*rows)
    names = [name for group in groups for name in HIDDEN_GROUPS[group]]
    return table.assign(**{f"hidden_{name}": hidden[name].to_numpy() for name in names})


def hidden_columns(groups: Sequence[str] = tuple(HIDDEN_GROUPS)) -> tuple[str, ...]:
    """The columns ``with_hidden`` adds for ``groups``."""
    return tuple(f"hidden_{name}" for group in groups for name in HIDDEN_GROUPS[group])


def history_columns(length: int = HISTORY_LENGTH) -> list[str]:
    """The columns ``with_history`` adds: the author and topic of each of the ``length`` recent engagements."""
    return [f"history_{what}_{i}" for what in ("author", "topic") for i in range(length)]


def with_history(table: pd.DataFrame, log: pd.DataFrame,
                 length: int = HISTORY_LENGTH) -> pd.DataFrame:
    """``table`` with each row's user's ``length`` most recent engagements in ``log`` (a like,
    comment or share) from before the row's session began, most recent first: the author and topic
    of each engaged post, missing where the user has fewer. Only what a ranker could know when the
    session's feed was ranked."""
    require_int("length", length, lo=1)
    require_columns("log", log, ["user_id", "author_id", "topic", "timestamp", *ENGAGEMENTS])
    engaged = log[log[list(ENGAGEMENTS)].to_numpy().sum(axis=1) > 0]
    # One sortable key per event: the user in the high bits, the time in seconds below.
    event_key = (engaged["user_id"].to_numpy(np.int64) << 40) + _seconds(engaged["timestamp"])
    order = np.argsort(event_key, kind="stable")
    event_key, event_user = event_key[order], engaged["user_id"].to_numpy(np.int64)[order]
    authors = engaged["author_id"].to_numpy(float)[order]
    topics = engaged["topic"].to_numpy(object)[order]
    session_start = table.groupby("session_id")["timestamp"].transform("min")
    users = table["user_id"].to_numpy(np.int64)
    # How many events sort before each session's start: the user's own come last among them.
    before = np.searchsorted(event_key, (users << 40) + _seconds(session_start), side="left")
    columns = {}
    for i in range(length):  # the (i + 1)-th most recent engagement, if it is the same user's
        at = np.maximum(before - 1 - i, 0)
        own = (before - 1 - i >= 0) & (event_user[at] == users)
        columns[f"history_author_{i}"] = np.where(own, authors[at], np.nan)
        columns[f"history_topic_{i}"] = np.where(own, topics[at], None)
    return table.assign(**columns)


def _seconds(times: pd.Series) -> np.ndarray:
    return times.to_numpy("datetime64[s]").astype(np.int64)


def history_inputs(table: pd.DataFrame, authors: Callable[[pd.Series], np.ndarray],
                   topics: Callable[[pd.Series], np.ndarray]) -> list[torch.Tensor]:
    """``HistoryNetwork``'s extra inputs for a table with ``history_columns``: the embedding rows
    of the recent engagements' authors and topics (``authors`` and ``topics`` map ids to rows), and
    which of them exist."""
    length = sum(name.startswith("history_author_") for name in table.columns)
    require("table", f"<{len(table)} rows>", length >= 1,
            "the history columns of models.rungs.with_history")
    author_ids = table[[f"history_author_{i}" for i in range(length)]]
    topic_ids = table[[f"history_topic_{i}" for i in range(length)]]
    rows = [np.stack([index(frame[column]) for column in frame.columns], axis=1)
            for index, frame in ((authors, author_ids), (topics, topic_ids))]
    present = torch.tensor(author_ids.notna().to_numpy())
    return [torch.tensor(rows[0]), torch.tensor(rows[1]), present]


class CrossNetwork(MultiTaskNetwork):
    """The shipped network with ``CROSS_LAYERS`` DCN-v2 cross layers beside its deep layers:
    ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``, each a full-rank product of the input with
    itself; the heads read the deep and the cross layers' outputs side by side."""

    def __init__(self, n_dense: int, n_users: int, n_authors: int, n_topics: int,
                 config: MultiTaskConfig) -> None:
        super().__init__(n_dense, n_users, n_authors, n_topics, config)
        width = n_dense + 5 * config.embedding_dim
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(CROSS_LAYERS))
        self.reactions = nn.Linear(config.hidden[-1] + width, self.reactions.out_features)
        self.dwell = nn.Linear(config.hidden[-1] + width, 1)

    def forward(self, dense: torch.Tensor, user: torch.Tensor, author: torch.Tensor,
                topic: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = self.embed(dense, user, author, topic)
        crossed = x0
        for layer in self.cross:
            crossed = x0 * layer(crossed) + crossed
        hidden = torch.cat([self.shared(x0), crossed], dim=1)
        return self.reactions(hidden) + self.position_bias(position), self.dwell(hidden).squeeze(1)


class HideTowerNetwork(MultiTaskNetwork):
    """The shipped network whose hide logit comes from its own tower (``HIDE_TOWER`` widths)
    on the shared input, not from the layers the other reactions shape."""

    def __init__(self, n_dense: int, n_users: int, n_authors: int, n_topics: int,
                 config: MultiTaskConfig) -> None:
        super().__init__(n_dense, n_users, n_authors, n_topics, config)
        layers: list[nn.Module] = []
        width = n_dense + 5 * config.embedding_dim
        for size in HIDE_TOWER:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(config.dropout)]
            width = size
        self.hide_tower = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, dense: torch.Tensor, user: torch.Tensor, author: torch.Tensor,
                topic: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = self.embed(dense, user, author, topic)
        hidden = self.shared(x0)
        # Hide is the last reaction: its logit comes from the tower.
        logits = torch.cat([self.reactions(hidden)[:, :-1], self.hide_tower(x0)], dim=1)
        return logits + self.position_bias(position), self.dwell(hidden).squeeze(1)


class HistoryNetwork(MultiTaskNetwork):
    """The shipped network plus a summary of the user's recent engagements: each engaged post's
    author and topic embeddings, weighted by a small network that compares them with the
    candidate's (DIN's local activation unit), so the history that matters for *this* candidate
    counts most."""

    def __init__(self, n_dense: int, n_users: int, n_authors: int, n_topics: int,
                 config: MultiTaskConfig) -> None:
        k = config.embedding_dim
        # The shared layers also read the pooled history and its product with the candidate.
        super().__init__(n_dense + 4 * k, n_users, n_authors, n_topics, config)
        self.attention = nn.Sequential(nn.Linear(8 * k, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, dense: torch.Tensor, user: torch.Tensor, author: torch.Tensor,
                topic: torch.Tensor, position: torch.Tensor, history_author: torch.Tensor,
                history_topic: torch.Tensor, present: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        query = torch.cat([self.author(author), self.topic(topic)], dim=1)  # (rows, 2k)
        keys = torch.cat([self.author(history_author), self.topic(history_topic)], dim=2)
        asked = query.unsqueeze(1).expand_as(keys)  # keys: (rows, length, 2k)
        compared = torch.cat([keys, asked, keys * asked, keys - asked], dim=2)
        scores = self.attention(compared).squeeze(2)
        # Softmax over the engagements that exist; a user with none gets a summary of zeros.
        weights = torch.softmax(scores.masked_fill(~present, -1e9), dim=1) * present
        pooled = (weights.unsqueeze(2) * keys).sum(dim=1)
        x0 = torch.cat([self.embed(dense, user, author, topic), pooled, pooled * query], dim=1)
        hidden = self.shared(x0)
        return self.reactions(hidden) + self.position_bias(position), self.dwell(hidden).squeeze(1)


#: The network class of each ``RungConfig.architecture``.
NETWORKS: dict[str, type[MultiTaskNetwork]] = {
    "cross": CrossNetwork, "hide-tower": HideTowerNetwork, "history": HistoryNetwork}


@dataclass
class RungConfig(MultiTaskConfig):
    """A network configuration with one of the rungs' shapes (``NETWORKS``)."""

    architecture: str = "cross"

    def validate(self) -> None:
        super().validate()
        require("architecture", self.architecture, self.architecture in NETWORKS,
                f"one of {', '.join(map(repr, NETWORKS))}")

    @classmethod
    def of(cls, config: MultiTaskConfig, architecture: str) -> RungConfig:
        """``config``'s hyperparameters with the shape ``architecture``."""
        values = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
        return cls(**values, architecture=architecture)


class Rung(MultiTask):
    """The multi-task ranker with a rung's network (``RungConfig``), trained and served the
    same way; the history rung's tables need the columns ``with_history`` adds."""

    def __init__(self, config: RungConfig, progress: Callable[[str], None] | None = print) -> None:
        require("config", type(config).__name__, isinstance(config, RungConfig), "a RungConfig")
        super().__init__(config, progress)
        self.name = f"multi-task network, {config.architecture}"

    def network_shape(self) -> type[MultiTaskNetwork]:
        return NETWORKS[self.config.architecture]

    def inputs(self, table: pd.DataFrame, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        inputs = super().inputs(table, dtype)
        if self.config.architecture == "history":  # the recent engagements' rows, and which exist
            inputs += history_inputs(table, self.authors_, self.topics_)
        return inputs
