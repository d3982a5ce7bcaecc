"""The social graph: homophilous friendships with a heavy-tailed degree, follows of pages, the hubs of the large
world, and when each edge was made. Each function draws from the generator it is given, in a fixed order, so a
seed gives the same graph on every machine."""

from __future__ import annotations

import numpy as np

from newsfeed import vocabulary as vocab
from newsfeed.world.config import COMMUNITY_SIZE, WorldConfig

_N_TOPICS = len(vocab.TOPICS)


def friendships(cfg: WorldConfig, people: dict[str, np.ndarray], rng: np.random.Generator,
                local: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Homophilous friendships with a heavy-tailed degree: each person invites friends from a random pool,
    preferring people of similar interests, the same country, and many friends already.

    With ``cfg.friend_locality`` (drawn from ``local``, so the default graph's draws are untouched), people
    belong to communities of about ``COMMUNITY_SIZE``; that share of each pool comes from the person's own
    community, and a member of it is preferred as strongly as a like-minded stranger."""
    n = cfg.n_people
    communities = max(1, n // COMMUNITY_SIZE)
    community = local.integers(0, communities, n) if cfg.friend_locality > 0 else None
    sociability = rng.lognormal(0.0, 0.8, n)
    target = np.maximum(1, rng.poisson(cfg.mean_friends / 2 * sociability / sociability.mean()))
    unit = people["interests"] / np.linalg.norm(people["interests"], axis=1, keepdims=True)
    pool_size = min(n - 1, 300)
    attract = sociability / sociability.sum()
    src, dst = [], []
    chunk = 512
    for lo in range(0, n, chunk):
        users = np.arange(lo, min(n, lo + chunk))
        pool = rng.choice(n, size=(len(users), pool_size), p=attract)
        if community is not None:
            pool = _local_pool(pool, users, community, cfg.friend_locality, local)
        similarity = np.einsum("ik,ijk->ij", unit[users], unit[pool])
        same_country = people["country"][users][:, None] == people["country"][pool]
        gumbel = rng.gumbel(size=pool.shape)
        key = 4.0 * similarity + 1.5 * same_country + gumbel
        if community is not None:
            key += 4.0 * (community[users][:, None] == community[pool])
        key[pool == users[:, None]] = -np.inf
        ranked = np.argsort(-key, axis=1)
        for row, user in enumerate(users.tolist()):
            k = int(min(target[user], pool_size))
            chosen = pool[row, ranked[row, :k]]
            src.append(np.full(k, user))
            dst.append(chosen)
    a, b = np.concatenate(src), np.concatenate(dst)
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    u, v = pairs[:, 0], pairs[:, 1]
    similarity = np.sum(unit[u] * unit[v], axis=1)
    same_country = people["country"][u] == people["country"][v]
    mutual = mutual_friends(n, u, v)
    logit = rng.normal(-1.6, 0.7, len(u)) + 1.5 * similarity + 0.6 * same_country + 0.8 * np.log1p(mutual)
    closeness = 1.0 / (1.0 + np.exp(-logit))
    return u, v, closeness


def _local_pool(pool: np.ndarray, users: np.ndarray, community: np.ndarray, share: float,
                rng: np.random.Generator) -> np.ndarray:
    """``pool`` with its first ``share`` of columns replaced by members of each user's community."""
    order = np.argsort(community, kind="stable")
    bounds = np.searchsorted(community[order], np.arange(community.max() + 2))
    k = int(round(share * pool.shape[1]))
    lo, hi = bounds[community[users]], bounds[community[users] + 1]
    picks = lo[:, None] + (rng.random((len(users), k)) * (hi - lo)[:, None]).astype(np.int64)
    pool = pool.copy()
    pool[:, :k] = order[picks]
    return pool


def mutual_friends(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """How many friends each pair (u[i], v[i]) has in common: close friends share friends."""
    from scipy.sparse import coo_matrix

    adjacency = coo_matrix((np.ones(2 * len(u)), (np.r_[u, v], np.r_[v, u])), shape=(n, n)).tocsr()
    return np.asarray(adjacency[u].multiply(adjacency[v]).sum(axis=1)).ravel()


def follows(cfg: WorldConfig, people: dict[str, np.ndarray], pages: dict[str, np.ndarray],
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each person follows a few pages: most follows pick a topic the person likes, then a page of that topic
    by popularity; the rest pick a page by popularity alone. Cost grows with the number of follows only."""
    n, m = cfg.n_people, cfg.n_pages
    count = rng.poisson(cfg.mean_follows * np.sqrt(people["activity"] / people["activity"].mean()))
    users = np.repeat(np.arange(n), count)
    popularity = pages["popularity"] / pages["popularity"].sum()
    chosen = rng.choice(m, size=len(users), p=popularity)
    by_interest = rng.random(len(users)) < 0.7
    topic = categorical(rng, people["interests"][users])
    for t in range(_N_TOPICS):
        of_topic = np.flatnonzero(pages["topic"] == t)
        slots = np.flatnonzero(by_interest & (topic == t))
        if len(of_topic) and len(slots):
            weight = pages["popularity"][of_topic]
            chosen[slots] = rng.choice(of_topic, size=len(slots), p=weight / weight.sum())
    pairs = np.unique(np.stack([users, chosen], axis=1), axis=0)
    closeness = 0.3 * rng.beta(2, 5, len(pairs))
    return pairs[:, 0], pairs[:, 1] + n, closeness


def add_hubs(cfg: WorldConfig, pages: dict[str, np.ndarray], friends: tuple[np.ndarray, ...],
          follows: tuple[np.ndarray, ...], rng: np.random.Generator) -> tuple[tuple[np.ndarray, ...], ...]:
    """A share of people become hubs: each befriends people and follows pages, ``hub_degree`` accounts in all
    (a tenth of them pages, by popularity), with weak ties (low closeness). Hubs are the hard case of serving:
    an inbox fed by thousands of accounts. Returns the friend and follow edges with the hubs' added."""
    n, m = cfg.n_people, cfg.n_pages
    friend_u, friend_v, follow_u, follow_v = [friends[0]], [friends[1]], [follows[0]], [follows[1] - n]
    popularity = pages["popularity"] / pages["popularity"].sum()
    for hub in np.flatnonzero(rng.random(n) < cfg.hub_share).tolist():
        n_pages = min(m, cfg.hub_degree // 10)
        others = rng.choice(n - 1, size=min(n - 1, cfg.hub_degree - n_pages), replace=False)
        others = others + (others >= hub)  # everyone but the hub
        friend_u.append(np.minimum(hub, others))
        friend_v.append(np.maximum(hub, others))
        follow_u.append(np.full(n_pages, hub))
        follow_v.append(rng.choice(m, size=n_pages, replace=False, p=popularity))

    def merged(u: list[np.ndarray], v: list[np.ndarray], closeness: np.ndarray) -> tuple[np.ndarray, ...]:
        # An edge that already existed keeps its closeness; a hub's new ties are weak.
        added = sum(len(part) for part in u[1:])
        weights = np.concatenate([closeness, 0.3 * rng.beta(2, 5, added)])
        pairs, first = np.unique(np.stack([np.concatenate(u), np.concatenate(v)], 1), axis=0, return_index=True)
        return pairs[:, 0], pairs[:, 1], weights[first]

    fu, fv, f_close = merged(friend_u, friend_v, friends[2])
    wu, wv, w_close = merged(follow_u, follow_v, follows[2])
    return (fu, fv, f_close), (wu, wv + n, w_close)


def categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows, categories) probability matrix."""
    drawn = (probabilities.cumsum(axis=1) < rng.random((len(probabilities), 1))).sum(axis=1)
    return np.minimum(drawn, probabilities.shape[1] - 1)


def edge_created(joined: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """When an edge was made: some time between both ends joining and the window's start, or at the joining
    moment for people who sign up during the window."""
    return np.where(joined < 0, joined * rng.uniform(0.0, 1.0, len(joined)), joined)
