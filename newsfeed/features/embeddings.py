"""Embeddings: dense vectors for post texts (latent semantic analysis) and for users and items from the
engagement matrix (matrix factorization), and the nearest-neighbour search over them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from newsfeed.metrics import engagement_score


def text_embedder(dimensions: int = 16, seed: int = 0) -> Pipeline:
    """TF-IDF over words and word pairs, reduced by truncated SVD (latent semantic analysis) to dense vectors."""
    return Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
                     ("svd", TruncatedSVD(n_components=dimensions, random_state=seed))])


def text_vectors(posts: pd.DataFrame, fit_until: pd.Timestamp, dimensions: int = 16,
                 seed: int = 0) -> pd.DataFrame:
    """Dense text vectors for every post, from an embedder fitted only on posts created before ``fit_until``
    (the vocabulary of the future is not known at training time). Posts without text get the vector of ""."""
    texts = posts["text"].fillna("")
    embedder = text_embedder(dimensions, seed).fit(texts[posts["created_at"] < fit_until])
    vectors = embedder.transform(texts)
    return pd.DataFrame(vectors, index=posts["post_id"], columns=[f"text_{i}" for i in range(dimensions)])


def interaction_embeddings(log: pd.DataFrame, n_users: int, n_items: int, item: str = "post_id",
                           dimensions: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """User and item embeddings from the user × item engagement matrix by truncated SVD (matrix factorization).

    Cells hold the log of one plus the weighted engagement; users and items that interact with the same
    things end up close. Returns (user vectors, item vectors), rows indexed by id.
    """
    from scipy.sparse import csr_matrix

    engaged = engagement_score(log).clip(lower=0.0)
    keep = engaged > 0
    matrix = csr_matrix((np.log1p(engaged[keep].to_numpy()), (log.loc[keep, "user_id"].to_numpy(),
                                                               log.loc[keep, item].to_numpy())),
                        shape=(n_users, n_items))
    svd = TruncatedSVD(n_components=dimensions, random_state=seed)
    users = svd.fit_transform(matrix)  # U * S
    scale = np.sqrt(np.maximum(svd.singular_values_, 1e-12))
    return users / scale, svd.components_.T * scale  # U * sqrt(S), V * sqrt(S): dot products give the fit


def nearest_neighbours(vectors: np.ndarray, query: int, k: int = 5) -> np.ndarray:
    """Indices of the ``k`` rows most cosine-similar to row ``query`` (itself excluded)."""
    norms = np.linalg.norm(vectors, axis=1)
    similarity = vectors @ vectors[query] / np.maximum(norms * norms[query], 1e-12)
    similarity[query] = -np.inf
    similarity[norms == 0] = -np.inf
    return np.argsort(-similarity, kind="stable")[:k]

