"""Near-duplicates: a burst of copies of one post, found by the similarity of their texts and kept off the
first screen.

In a world with ``WorldConfig.spam_posts`` on, a few accounts post copies of a template, a word or two changed
in each, so no two are equal and an exact-match filter misses them. Each post's text becomes a bag of its words
and word pairs (hashed into a fixed number of dimensions, scaled to length one: the pairs keep word order, which
two honest posts of one topic rarely share); a faiss inner-product index of the posts of
the last two days answers, for each new post, which earlier posts its text is closest to. Posts closer than a
threshold are linked, and the linked posts form groups. The world knows which posts are copies
(``truth.post_spam``), so the groups are checked against it:

- ``near_duplicate_groups``: each post's group (its own id when it has no near-duplicate);
- ``detection``: pairs found against the true copies (precision, recall) and the honest posts caught;
- ``deduplicated``: a policy that shows at most one post of a group per session;
- ``first_screen_duplicates``: the copies a feed shows beside another of their template, on the first screen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import HashingVectorizer

from newsfeed.validation import require, require_columns, require_float, require_int
from newsfeed.world import Policy, World

#: Dimensions of the hashed bag of words: few enough for a dense index, enough that unrelated words rarely
#: share one (about one pair in a thousand of a post's words).
DIMENSIONS = 1024
#: Words and word pairs: with words alone, two short honest posts of one topic look like copies.
NGRAMS = (1, 2)
#: The index returns candidates down to this far below the threshold, to be checked again in double precision.
RECHECK_MARGIN = 1e-3
#: A similarity this close below the threshold reaches it: far below any difference between two texts, far above
#: the rounding of double precision.
TIE = 1e-9


def _vectors(texts: pd.Series) -> csr_matrix:
    """Each text's hashed words and word pairs, scaled to length one: sparse, so that only a window's posts are
    ever held dense (a large world's posts would not fit), and in double precision, for ``_closest``."""
    vectorizer = HashingVectorizer(n_features=DIMENSIONS, ngram_range=NGRAMS, alternate_sign=False, norm="l2",
                                   dtype=np.float64)
    return vectorizer.transform(texts.fillna("").to_numpy()).tocsr()


def _closest(vectors: csr_matrix, query: np.ndarray, found: np.ndarray, threshold: float,
             neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Of the candidate pairs (``query``, ``found``), those whose texts are at least ``threshold`` similar, and of
    those each query's ``neighbours`` closest (ties to the earlier post). The similarity is recomputed in double
    precision and a pair within ``TIE`` of the threshold counts as reaching it: the index's single-precision
    similarities differ in their last digits from one processor to another, and copies of one template often sit
    exactly at a round threshold, so without this a pair could link on one machine and not on another."""
    similarity = np.asarray(vectors[query].multiply(vectors[found]).sum(axis=1)).ravel()
    close = similarity >= threshold - TIE
    query, found, similarity = query[close], found[close], similarity[close]
    order = np.lexsort((found, -np.round(similarity, 6), query))  # by query, closest first, then earliest
    query, found = query[order], found[order]
    rank = np.arange(len(query)) - np.searchsorted(query, query)
    return query[rank < neighbours], found[rank < neighbours]


def near_duplicate_groups(posts: pd.DataFrame, threshold: float = 0.7, window_hours: float = 48.0,
                          neighbours: int = 10) -> np.ndarray:
    """Each post's group: posts whose texts' cosine similarity is at least ``threshold`` are linked
    when one was posted within ``window_hours`` before the other (each new post asks the index for
    the earlier posts that close, and links to its ``neighbours`` closest), and a group is a set of
    posts linked directly or through others. A post with no near-duplicate is a group of its own.
    Groups are numbered by their first post's id."""
    import faiss

    require_columns("posts", posts, ["post_id", "created_at", "text"])
    require_float("threshold", threshold, 0.0, 1.0, open_lo=True)
    require_float("window_hours", window_hours, 0.0, open_lo=True)
    require_int("neighbours", neighbours, 1, 1000)
    ids = posts["post_id"].to_numpy()
    created = posts["created_at"]
    in_order = created.is_monotonic_increasing and np.array_equal(ids, np.arange(len(ids)))
    require("posts", "posts not numbered 0, 1, ... in time order", in_order,
            "a world's posts table (ids in time order)")
    hours = (created - created.iloc[0]).dt.total_seconds().to_numpy() / 3600
    vectors = _vectors(posts["text"])
    links = []
    for start in np.arange(0.0, hours[-1] + 24.0, 24.0) if len(hours) else []:
        queries = np.flatnonzero((hours >= start) & (hours < start + 24.0))  # one day's new posts
        if not len(queries):
            continue
        first = np.searchsorted(hours, start - window_hours)
        window = vectors[first:queries[-1] + 1].toarray().astype(np.float32)  # before, and the day
        index = faiss.IndexFlatIP(DIMENSIONS)
        index.add(window)
        limits, _, found = index.range_search(window[queries - first], threshold - RECHECK_MARGIN)
        query = np.repeat(queries, np.diff(limits).astype(np.int64))
        found = found + first
        earlier = (found < query) & (hours[query] - hours[found] <= window_hours)
        links.append(_closest(vectors, query[earlier], found[earlier], threshold, neighbours))
    none = [np.empty(0, np.int64)]
    a, b = (np.concatenate([pair[end] for pair in links] or none) for end in (0, 1))
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    return pd.Series(ids).groupby(component).transform("min").to_numpy()


def detection(groups: np.ndarray, world: World) -> dict[str, float]:
    """How ``groups`` find the world's near-duplicates: of the pairs of posts put in one group, the share that
    are copies of one template (precision); of the pairs of copies, the share put in one group (recall); and the
    share of honest posts (not copies) put in a group with another post, which deduplication would hide."""
    spam = world.truth.post_spam
    require("world", "a world without a spam burst", spam is not None,
            "a world with a spam burst (WorldConfig.spam_posts > 0)")
    require("groups", f"{len(groups)} groups for {len(spam)} posts", len(groups) == len(spam),
            "one group per post of the world")
    found = pd.DataFrame({"group": groups, "spam": spam})
    sizes = found.groupby("group")["group"].transform("size").to_numpy()
    pairs_found = float((pd.Series(groups).value_counts() ** 2 - pd.Series(groups).value_counts()).sum() / 2)
    together = found[found["spam"] >= 0].groupby(["group", "spam"]).size()
    true_found = float((together * (together - 1) / 2).sum())
    copies = pd.Series(spam[spam >= 0]).value_counts()
    true_pairs = float((copies * (copies - 1) / 2).sum())
    honest = spam < 0
    return {"pairs found": pairs_found, "precision": true_found / pairs_found if pairs_found else float("nan"),
            "recall": true_found / true_pairs if true_pairs else float("nan"),
            "honest posts grouped": float((sizes[honest] > 1).mean())}


def deduplicated(policy: Policy, groups: np.ndarray) -> Policy:
    """``policy`` with at most one post of each group near the top of a session: the best-scored post of a
    group keeps its score, the others go below every other candidate of the batch."""
    require("policy", policy, callable(policy), "a callable that scores candidate rows")
    groups = np.asarray(groups)

    def score(candidates: pd.DataFrame) -> np.ndarray:
        base = np.asarray(policy(candidates), dtype=float)
        if not len(base):
            return base
        group = groups[candidates["post_id"].to_numpy()]
        session = candidates["session_id"].to_numpy()
        order = np.lexsort((-base, group, session))
        repeat = np.zeros(len(base), dtype=bool)
        repeat[order[1:]] = (group[order][1:] == group[order][:-1]) & (session[order][1:] == session[order][:-1])
        return np.where(repeat, base.min() - 1.0, base)

    return score


def first_screen_duplicates(impressions: pd.DataFrame, world: World, screen: int = 10) -> dict[str, float]:
    """The copies on the first ``screen`` positions of each session's feed that repeat a template already on
    that screen (per 100 sessions), and the copies shown there at all (per 100 sessions)."""
    require_columns("impressions", impressions, ["session_id", "post_id", "position"])
    require_int("screen", screen, lo=1)
    top = impressions[impressions["position"] <= screen]
    template = world.truth.post_spam[top["post_id"].to_numpy()]
    copies = top[template >= 0].assign(template=template[template >= 0])
    repeats = len(copies) - len(copies.drop_duplicates(["session_id", "template"]))
    per_100 = 100.0 / max(impressions["session_id"].nunique(), 1)
    return {"copies per 100 sessions": len(copies) * per_100, "repeats per 100 sessions": repeats * per_100}
