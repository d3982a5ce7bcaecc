"""Cleaning: profiles with one spelling per country and no impossible ages, a log without retried events, and
posts whose topic is read from their text (the tagger's labels are wrong for about one post in ten)."""

from __future__ import annotations

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline

from newsfeed import vocabulary as vocab
from newsfeed.validation import require, require_columns, require_int

#: Plausible ages for a social network's users; outside it a self-reported age is treated as missing.
VALID_AGE = (13, 100)


def _country_lookup() -> dict[str, str]:
    lookup = {code.lower(): code for code in vocab.COUNTRIES}
    for code, variants in vocab.COUNTRY_VARIANTS.items():
        lookup.update({variant.strip().lower().replace(".", ""): code for variant in variants})
    return lookup


def normalize_country(raw: pd.Series) -> pd.Series:
    """Map every spelling of a country (``"us "``, ``"USA"``, ``"United States"``) to its ISO code.

    Unknown spellings become missing rather than a new category; ``clean_users`` counts them.
    """
    lookup = _country_lookup()
    keys = raw.astype("str").str.strip().str.lower().str.replace(".", "", regex=False)
    return keys.map(lookup).astype("str")


def clean_users(users: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean the profile table: ISO country codes, impossible ages set to missing.

    Returns the cleaned table (same rows, same order) and a report of what changed, column by column, so
    nothing is altered silently. ``age_was_impossible`` keeps the fact that an age was replaced.
    """
    require_columns("users", users, ["country", "age", "account_type"])
    clean = users.copy()
    clean["country"] = normalize_country(users["country"])
    age = users["age"]
    impossible = age.notna() & ~age.between(*VALID_AGE)
    clean["age"] = age.mask(impossible)
    clean["age_was_impossible"] = impossible
    codes = set(vocab.COUNTRIES)
    report = pd.DataFrame({
        "problem": ["country spelled differently from its ISO code", "country unknown or missing",
                    f"age outside {VALID_AGE[0]}-{VALID_AGE[1]} (set to missing)", "age missing (people)"],
        "rows before": [int((users["country"].notna() & ~users["country"].isin(codes)).sum()),
                        int(users["country"].isna().sum()), int(impossible.sum()),
                        int(age[users["account_type"] == "person"].isna().sum())],
        "rows after": [0, int(clean["country"].isna().sum()), 0,
                       int(clean["age"][users["account_type"] == "person"].isna().sum())],
    })
    return clean, report


def clean_impressions(impressions: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop logging retries: events recorded twice with the same ``impression_id``. Returns the deduplicated
    log (time-ordered) and how many rows were removed."""
    require_columns("impressions", impressions, ["impression_id", "timestamp"])
    deduped = impressions.drop_duplicates("impression_id", keep="first")
    deduped = deduped.sort_values(["timestamp", "impression_id"], kind="stable").reset_index(drop=True)
    return deduped, len(impressions) - len(deduped)



def clean_posts(posts: pd.DataFrame, fit_until: pd.Timestamp) -> pd.DataFrame:
    """The posts with ``topic`` read from their text by ``infer_topics`` (the tagger's labels are noisy), the
    original label kept as ``topic_label``."""
    return posts.assign(topic_label=posts["topic"], topic=infer_topics(posts, fit_until=fit_until))


def topic_classifier() -> Pipeline:
    """TF-IDF over a post's words and hashtags, then multinomial logistic regression over the topics."""
    return Pipeline([("tfidf", TfidfVectorizer(min_df=2, sublinear_tf=True)),
                     ("classify", LogisticRegression(max_iter=2000, C=10.0))])


def infer_topics(posts: pd.DataFrame, fit_until: pd.Timestamp, folds: int = 5) -> pd.Series:
    """Each post's topic as its text says, from a classifier trained on the (noisy) labels of posts created
    before ``fit_until``.

    A classifier trained on noisy labels can beat them: the mistakes are scattered, while the words of each
    topic are consistent, so the model learns the words and outvotes the odd wrong label. Posts it is trained on
    get out-of-fold predictions (``folds``-fold cross-validation), so a post's own label, right or wrong, never
    decides its predicted topic, and training rows get topics as accurate as the later posts', which are
    predicted by the model fitted on all of them (as serving predicts a new post's topic).
    """
    require_int("folds", folds, lo=2)
    require_columns("posts", posts, ["text", "hashtags", "topic", "created_at"])
    texts = posts["text"].fillna("") + " " + posts["hashtags"].fillna("")
    labels = posts["topic"].astype(str).to_numpy()
    fitted = (posts["created_at"] < fit_until).to_numpy()
    require("fit_until", fit_until, fitted.sum() >= folds and len(set(labels[fitted])) >= 2,
            f"a time before which posts of at least two topics were created ({int(fitted.sum())} posts before it; "
            f"infer_topics needs {folds} at least)")
    topics = topic_classifier().fit(texts[fitted], labels[fitted]).predict(texts).astype(object)
    topics[fitted] = cross_val_predict(topic_classifier(), texts[fitted], labels[fitted], cv=folds)
    return pd.Series(topics, index=posts.index, name="topic", dtype="str")

