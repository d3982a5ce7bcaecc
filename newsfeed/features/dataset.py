"""The dataset: the feature table of every clean impression, its time split, and the posts and users it used."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn

from newsfeed.cache import code_hash, write_atomic
from newsfeed.features.aggregates import LogAggregates
from newsfeed.features.cleaning import clean_impressions, clean_posts, clean_users
from newsfeed.features.embeddings import text_vectors
from newsfeed.features.table import NUMERIC_FEATURES, feature_table
from newsfeed.validation import require, require_int
from newsfeed.world import DATA_DIR, World

#: Where ``build_dataset`` keeps the datasets it built (ignored by git, like the worlds beside it).
DATASET_CACHE = DATA_DIR / ".cache"


@dataclass(frozen=True)
class TimeSplit:
    """Train on the first weeks, validate on the next, test on the last: the model is always judged on a
    future it has not seen, as it will be in production."""

    train_end: pd.Timestamp
    valid_end: pd.Timestamp

    def assign(self, timestamps: pd.Series) -> pd.Series:
        """``train`` / ``valid`` / ``test`` for each timestamp."""
        split = np.where(timestamps < self.train_end, "train",
                         np.where(timestamps < self.valid_end, "valid", "test"))
        return pd.Series(split, index=timestamps.index, name="split", dtype="str")


def weekly_split(start: str | pd.Timestamp, train_weeks: int = 2, valid_weeks: int = 1) -> TimeSplit:
    """The book's split of a four-week world: weeks 1–2 train, week 3 validation, week 4 test."""
    require_int("train_weeks", train_weeks, lo=1)
    require_int("valid_weeks", valid_weeks, lo=1)
    try:
        start = pd.Timestamp(start)
    except (ValueError, TypeError):
        require("start", start, False, "a date, such as '2026-01-05' or the world's config.start")
    require("start", start, start is not pd.NaT, "a date, such as '2026-01-05' or the world's config.start")
    return TimeSplit(start + pd.Timedelta(weeks=train_weeks), start + pd.Timedelta(weeks=train_weeks + valid_weeks))


@dataclass
class Dataset:
    """The ranking dataset: one row of features and labels per clean impression, with its split (``split``
    labels each row, ``time_split`` holds the boundaries)."""

    table: pd.DataFrame
    split: pd.Series
    time_split: TimeSplit
    users: pd.DataFrame
    log: pd.DataFrame
    text: pd.DataFrame  # each post's text embedding, indexed by post_id
    posts: pd.DataFrame  # the posts with their topic read from the text (``topic``) and as labelled (``topic_label``)

    def part(self, *names: str) -> pd.DataFrame:
        """The rows of the named splits (``"train"``, ``"valid"``, ``"test"``)."""
        unknown = set(names) - {"train", "valid", "test"}
        require("names", names, bool(names) and not unknown, "one or more of 'train', 'valid', 'test'")
        return self.table[self.split.isin(names)]

    def aggregates(self, log: pd.DataFrame) -> LogAggregates:
        """The aggregates of ``log`` (the log as of a feature refresh) over this dataset's posts, whose topics
        are read from the text, as training saw them."""
        return LogAggregates(log, self.posts)

    @property
    def serve_at(self) -> pd.Timestamp:
        """The moment the book serves its feeds: the start of the test week, after everything trained on."""
        return self.time_split.valid_end


#: Text-embedding columns ``build_dataset`` adds (see ``text_vectors``).
TEXT_FEATURES: tuple[str, ...] = tuple(f"text_{i}" for i in range(16))
#: The numeric inputs of the book's models: the feature table's numbers and the text embedding.
MODEL_NUMERIC_FEATURES: tuple[str, ...] = NUMERIC_FEATURES + TEXT_FEATURES


def build_dataset(world: World, split: TimeSplit | None = None, seed: int = 0,
                  cache_dir: str | Path | None = DATASET_CACHE) -> Dataset:
    """Clean the world's tables, read each post's topic from its text (the labels are noisy), compute every
    feature point-in-time and join each post's text embedding (fitted on the training weeks' posts): the table
    chapters 4–7 train on.

    Building takes seconds and every later chapter needs the same table, so it is kept in ``cache_dir``
    (``None``: not kept) under a hash of everything it depends on: the world's tables, the split, the seed, the
    code of the features and the library versions. Any change to one of them builds it again.
    """
    split = split if split is not None else weekly_split(world.config.start)
    if cache_dir is None:
        return _build(world, split, seed)
    path = Path(cache_dir) / f"dataset-{_cache_key(world, split, seed)}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    dataset = _build(world, split, seed)
    write_atomic(path, pickle.dumps(dataset, protocol=pickle.HIGHEST_PROTOCOL))
    return dataset


def _build(world: World, split: TimeSplit, seed: int) -> Dataset:
    users, _ = clean_users(world.users)
    log, _ = clean_impressions(world.impressions)
    posts = clean_posts(world.posts, fit_until=split.train_end)
    table = feature_table(log, users, world.edges, LogAggregates(log, posts))
    text = text_vectors(world.posts, fit_until=split.train_end, dimensions=len(TEXT_FEATURES), seed=seed)
    table = table.join(text, on="post_id")
    return Dataset(table=table, split=split.assign(table["timestamp"]), time_split=split, users=users, log=log,
                   text=text, posts=posts)


def _cache_key(world: World, split: TimeSplit, seed: int) -> str:
    """A hash of the world's tables, the split, the seed, the code a dataset is built by and the libraries'
    versions."""
    from newsfeed import metrics, validation, vocabulary

    code = [*sorted(Path(__file__).parent.glob("*.py")), *(Path(m.__file__) for m in (metrics, validation, vocabulary))]
    versions = repr((split, seed, pd.__version__, np.__version__, sklearn.__version__)).encode()
    tables = [pd.util.hash_pandas_object(getattr(world, name), index=True).to_numpy().tobytes()
              for name in World.TABLES]
    return code_hash(code, versions, *tables)
