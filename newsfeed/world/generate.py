"""Generating the world: people, pages, the graph, posts and their texts, sessions, and the logged impressions.

Each part draws from its own random stream (``SeedSequence.spawn``), so changing how one part is generated
leaves the others' draws as they were.
"""

from __future__ import annotations

import sys
import time as _time
from typing import Any

import numpy as np
import pandas as pd

from newsfeed import vocabulary as vocab
from newsfeed.validation import require
from newsfeed.world.config import DEVICES, WorldConfig, to_timestamps
from newsfeed.world.core import World
from newsfeed.world.graph import add_hubs, categorical, edge_created, follows, friendships
from newsfeed.world.outcomes import GroundTruth
from newsfeed.world.rollout import legacy_ranker

_N_TOPICS = len(vocab.TOPICS)

def simulate(config: WorldConfig | None = None, progress: bool = False) -> World:
    """Generate the world: people, pages, the graph, posts, sessions, and the legacy ranker's impressions."""
    cfg = config if config is not None else WorldConfig()
    require("config", type(config).__name__, isinstance(cfg, WorldConfig), "a WorldConfig or None")
    tick = _time.perf_counter()
    root = np.random.SeedSequence(cfg.seed)
    rngs = dict(zip(("people", "pages", "friends", "follows", "posts", "text", "drift", "sessions", "dirty",
                     "rollout", "legacy", "duplicates", "hubs", "local", "harm", "spam"),
                    (np.random.default_rng(s) for s in root.spawn(16)),
                    strict=True))
    people = _people(cfg, rngs["people"])
    pages = _pages(cfg, rngs["pages"])
    n, m = cfg.n_people, cfg.n_pages

    # ---- the graph --------------------------------------------------------------------------------------
    fu, fv, f_close = friendships(cfg, people, rngs["friends"], rngs["local"])
    wu, wv, w_close = follows(cfg, people, pages, rngs["follows"])
    if cfg.hub_share > 0:
        (fu, fv, f_close), (wu, wv, w_close) = add_hubs(cfg, pages, (fu, fv, f_close), (wu, wv, w_close), rngs["hubs"])
    signup_all = np.concatenate([people["signup"], pages["created"]])
    edge_user = np.concatenate([fu, fv, wu])
    edge_target = np.concatenate([fv, fu, wv])
    edge_type = np.concatenate([np.full(2 * len(fu), "friend", dtype=object), np.full(len(wu), "follow", dtype=object)])
    closeness = np.concatenate([f_close, f_close, w_close])
    friend_created = edge_created(np.maximum(signup_all[fu], signup_all[fv]), rngs["friends"])
    follow_created = edge_created(np.maximum(signup_all[wu], signup_all[wv]), rngs["follows"])
    created = np.concatenate([friend_created, friend_created, follow_created])
    key = edge_user.astype(np.int64) * (n + m) + edge_target
    order = np.argsort(key)
    edges = pd.DataFrame({"user_id": edge_user[order].astype(np.int64),
                          "target_id": edge_target[order].astype(np.int64),
                          "edge_type": pd.Series(edge_type[order], dtype="str"),
                          "created_at": to_timestamps(cfg, created[order])})

    # ---- posts ------------------------------------------------------------------------------------------
    post = _posts(cfg, people, pages, rngs["posts"])
    texts, tags = _texts(post, rngs["text"])
    topic_label = post["topic"].copy()
    relabel = rngs["posts"].random(len(topic_label)) > cfg.topic_label_accuracy
    topic_label[relabel] = rngs["posts"].integers(0, _N_TOPICS, int(relabel.sum()))
    if cfg.spam_posts:
        followers = np.bincount(wv - n, minlength=m)
        post, texts, tags, topic_label = _with_spam(cfg, post, texts, tags, topic_label, followers, rngs["spam"])
    harmful = _harmful(cfg, post, pages, texts, rngs["harm"]) if cfg.harmful_share > 0 else None
    posts = pd.DataFrame({
        "post_id": np.arange(len(post["author"]), dtype=np.int64),
        "author_id": post["author"].astype(np.int64),
        "created_at": to_timestamps(cfg, post["hours"]),
        "topic": pd.Series(np.array(vocab.TOPICS, dtype=object)[topic_label], dtype="str"),
        "media_type": pd.Series(np.array(vocab.MEDIA_TYPES, dtype=object)[post["media"]], dtype="str"),
        "text": pd.Series(texts, dtype="str"),
        "hashtags": pd.Series(tags, dtype="str"),
    })

    # ---- accounts ---------------------------------------------------------------------------------------
    profile = _dirty_profiles(cfg, people, rngs["dirty"])
    page_country = np.array(list(vocab.COUNTRIES), dtype=object)[pages["country"]]
    users = pd.DataFrame({
        "user_id": np.arange(n + m, dtype=np.int64),
        "account_type": pd.Series(["person"] * n + ["page"] * m, dtype="str"),
        "age": np.concatenate([profile["age"].to_numpy(), np.full(m, np.nan)]),
        "country": pd.Series(np.concatenate([profile["country"].to_numpy(), page_country]), dtype="str"),
        "language": pd.Series(np.concatenate([profile["language"].to_numpy(), np.full(m, None)]), dtype="str"),
        "device": pd.Series(np.concatenate([profile["device"].to_numpy(), np.full(m, None)]), dtype="str"),
        "signup_date": to_timestamps(cfg, signup_all),
    })

    # ---- sessions ---------------------------------------------------------------------------------------
    sess = _sessions(cfg, people, rngs["sessions"])
    sessions = pd.DataFrame({
        "session_id": np.arange(len(sess["user"]), dtype=np.int64),
        "user_id": sess["user"].astype(np.int64),
        "started_at": to_timestamps(cfg, sess["hours"]),
        "device": pd.Series(np.array(DEVICES, dtype=object)[sess["device"]], dtype="str"),
    })

    codes = np.array(list(vocab.COUNTRIES))
    truth = GroundTruth(
        interests=people["interests"], interests_after_drift=_drifted_interests(cfg, people["interests"],
                                                                                rngs["drift"]),
        click_bias=people["click_bias"], react_bias=people["react_bias"], passive=people["passive"],
        privacy_minded=people["privacy"], media_pref=people["media_pref"], activity=people["activity"],
        true_age=people["age"], true_country=np.concatenate([codes[people["country"]], codes[pages["country"]]]),
        post_topic=post["topic"], post_quality=post["quality"], post_clickbait=post["clickbait"],
        edge_key=key[order], edge_closeness=closeness[order], session_depth=sess["depth"].astype(np.int64),
        impressions=pd.DataFrame(), post_harmful=harmful, post_spam=post.get("spam"))
    world = World(config=cfg, users=users, posts=posts, edges=edges, sessions=sessions,
                  impressions=pd.DataFrame(), truth=truth)
    if progress:
        print(f"world: generated accounts, graph and posts in {_time.perf_counter() - tick:.1f}s", file=sys.stderr)

    # ---- impressions, logged by the legacy ranker ------------------------------------------------------
    logged = world.rollout(legacy_ranker(int(rngs["legacy"].integers(2**31))), sessions,
                           seed=int(rngs["rollout"].integers(2**31)))
    world.truth.impressions = logged.probabilities
    world.impressions = _duplicate_events(logged.impressions, cfg.duplicate_event_share, rngs["duplicates"])
    if progress:
        print(f"world: {len(world.impressions):,} impressions in {_time.perf_counter() - tick:.1f}s", file=sys.stderr)
    return world


def _duplicate_events(impressions: pd.DataFrame, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """Logging retries: a share of events is recorded twice (same impression_id and content)."""
    again = impressions[rng.random(len(impressions)) < share]
    return pd.concat([impressions, again]).sort_values(["timestamp", "impression_id"], kind="stable").reset_index(
        drop=True)



def _people(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = cfg.n_people
    codes = list(vocab.COUNTRIES)
    shares = np.array([vocab.COUNTRIES[c][0] for c in codes])
    country = rng.choice(len(codes), size=n, p=shares / shares.sum())
    mean_age = np.array([vocab.COUNTRIES[c][2] for c in codes])[country]
    age = np.clip(np.round(mean_age + rng.gamma(2.0, 5.0, n) - 10.0 + rng.normal(0, 6, n)), 13, 90)
    # Interests: a sparse mixture over topics, globally skewed, and tilted by age (young: gaming, music,
    # comedy, fashion; older: politics, gardening, finance, health).
    base = 1.0 / np.arange(1, _N_TOPICS + 1) ** 0.5
    base = base[rng.permutation(_N_TOPICS)]
    young = np.isin(np.arange(_N_TOPICS), [vocab.TOPICS.index(t) for t in ("gaming", "music", "comedy", "fashion")])
    old = np.isin(np.arange(_N_TOPICS), [vocab.TOPICS.index(t) for t in ("politics", "gardening", "finance",
                                                                          "health")])
    youth = np.clip((45.0 - age) / 25.0, -1.0, 1.0)[:, None]
    tilt = np.exp(0.9 * youth * young - 0.9 * youth * old)
    alpha = cfg.interest_concentration * base / base.sum() * tilt
    interests = rng.gamma(alpha)
    interests /= interests.sum(axis=1, keepdims=True)
    activity = cfg.sessions_per_day * rng.lognormal(-0.5, 1.0, n)
    passive = rng.random(n) < cfg.passive_share
    privacy = rng.random(n) < 0.2
    media_pref = rng.normal(0.0, 0.5, (n, len(vocab.MEDIA_TYPES)))
    media_pref[:, 2] += 0.6 * np.clip((40.0 - age) / 20.0, -1, 1)  # the young watch more video
    device_p = np.stack([np.full(n, 0.45), np.full(n, 0.40), 0.15 + 0.25 * np.clip((age - 30) / 40, 0, 1)], 1)
    device = categorical(rng, device_p / device_p.sum(1, keepdims=True))
    new_user = rng.random(n) < cfg.new_user_share
    signup = np.where(new_user, rng.uniform(0, cfg.n_days * 24.0 - 48.0, n),
                      -rng.uniform(24.0 * 30, 24.0 * 365 * 12, n))
    return {"country": country, "age": age, "interests": interests, "activity": activity, "passive": passive,
            "privacy": privacy, "media_pref": media_pref, "device": device, "signup": signup,
            "click_bias": rng.normal(0, 0.5, n), "react_bias": rng.normal(0, 0.6, n),
            "creator": rng.lognormal(-0.5, 1.0, n)}


def _pages(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    m = cfg.n_pages
    popularity = 1.0 / np.arange(1, m + 1) ** 0.9
    popularity = popularity[rng.permutation(m)]
    clickbait_farm = rng.random(m) < 0.15
    return {"topic": rng.integers(0, _N_TOPICS, m), "popularity": popularity / popularity.max(),
            "clickbait_farm": clickbait_farm,
            "quality": np.where(clickbait_farm, rng.beta(2, 6, m), rng.beta(5, 3, m)),
            "country": rng.integers(0, len(vocab.COUNTRIES), m),
            "created": -rng.uniform(24.0 * 365, 24.0 * 365 * 14, m)}


def _posts(cfg: WorldConfig, people: dict[str, np.ndarray], pages: dict[str, np.ndarray],
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Posts over the window: people post about their interests, pages about their topic."""
    horizon = cfg.n_days * 24.0
    n = cfg.n_people
    person_rate = cfg.person_posts_per_day * people["creator"] / people["creator"].mean()
    active_days = (horizon - np.maximum(people["signup"], 0.0)) / 24.0
    person_count = rng.poisson(person_rate * active_days)
    page_rate = cfg.page_posts_per_day * (0.3 + 1.4 * pages["popularity"]) / (0.3 + 1.4 * pages["popularity"]).mean()
    page_count = rng.poisson(page_rate * cfg.n_days)
    author = np.concatenate([np.repeat(np.arange(n), person_count),
                             np.repeat(np.arange(cfg.n_pages), page_count) + n])
    starts = np.concatenate([np.repeat(np.maximum(people["signup"], 0.0), person_count),
                             np.zeros(page_count.sum())])
    day_hours = rng.uniform(starts, horizon)
    # A diurnal rhythm: push times towards the evening by resampling the hour of day.
    hour_of_day = _diurnal_hours(rng, len(author))
    hours = np.floor(day_hours / 24.0) * 24.0 + hour_of_day
    hours = np.clip(np.where(hours < starts, day_hours, hours), 0.0, horizon - 1e-3)
    is_page = author >= n
    topic = np.empty(len(author), dtype=np.int64)
    person_authors = author[~is_page]
    topic[~is_page] = categorical(rng, people["interests"][person_authors])
    page_idx = author[is_page] - n
    off_topic = rng.random(len(page_idx)) < 0.1
    topic[is_page] = np.where(off_topic, rng.integers(0, _N_TOPICS, len(page_idx)), pages["topic"][page_idx])
    if cfg.drift is not None and cfg.drift.trending_topic is not None:
        trending = vocab.TOPICS.index(cfg.drift.trending_topic)
        after = hours >= cfg.drift.start_day * 24.0
        topic[after & (rng.random(len(topic)) < 0.5 * cfg.drift.trend_strength + 0.1)] = trending
    media_p = np.where(is_page[:, None], [[0.15, 0.25, 0.3, 0.3]], [[0.4, 0.4, 0.15, 0.05]])
    media = categorical(rng, media_p)
    person_quality = rng.beta(3, 3, n)
    base_quality = np.where(is_page, pages["quality"][np.where(is_page, author - n, 0)],
                            person_quality[np.where(is_page, 0, author)])
    quality = np.clip(base_quality + rng.normal(0, 0.12, len(author)), 0.02, 0.98)
    farm = np.where(is_page, pages["clickbait_farm"][np.where(is_page, author - n, 0)], False)
    clickbait = np.where(farm, rng.beta(5, 2, len(author)), rng.beta(0.4, 8, len(author)))
    order = np.argsort(hours, kind="stable")
    return {k: v[order] for k, v in {"author": author, "hours": hours, "topic": topic, "media": media,
                                     "quality": quality, "clickbait": clickbait}.items()}


def _diurnal_hours(rng: np.random.Generator, size: int) -> np.ndarray:
    weights = 0.3 + np.exp(-0.5 * ((np.arange(24) - 20.0) / 3.0) ** 2) + 0.5 * np.exp(
        -0.5 * ((np.arange(24) - 8.0) / 2.0) ** 2)
    hour = rng.choice(24, size=size, p=weights / weights.sum())
    return hour + rng.random(size)


def _texts(posts: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[list[Any], list[str]]:
    """A short text per post from its topic's words (70%), general words and a neighbouring topic's words;
    clickbait posts open with a clickbait phrase. Some image and video posts have no caption (None)."""
    n = len(posts["topic"])
    topic_words = np.array([vocab.TOPIC_WORDS[t] for t in vocab.TOPICS])
    general = np.array(vocab.GENERAL_WORDS)
    length = rng.integers(5, 13, n)
    kind = rng.random((n, 12))
    own = topic_words[posts["topic"][:, None], rng.integers(0, topic_words.shape[1], (n, 12))]
    other = topic_words[rng.integers(0, _N_TOPICS, (n, 12)), rng.integers(0, topic_words.shape[1], (n, 12))]
    filler = general[rng.integers(0, len(general), (n, 12))]
    words = np.where(kind < 0.7, own, np.where(kind < 0.9, filler, other))
    bait = posts["clickbait"] > 0.5
    phrase = rng.integers(0, len(vocab.CLICKBAIT_PHRASES), n)
    no_caption = (posts["media"] == 1) | (posts["media"] == 2)
    no_caption &= rng.random(n) < 0.06
    hashtags = np.array([vocab.TOPIC_HASHTAGS[t] for t in vocab.TOPICS])
    n_tags = rng.choice(4, size=n, p=[0.45, 0.3, 0.17, 0.08])
    tag_pick = rng.integers(0, 3, (n, 3))
    texts: list[Any] = []
    tags: list[str] = []
    for i in range(n):
        body = " ".join(words[i, : length[i]])
        if bait[i]:
            body = f"{vocab.CLICKBAIT_PHRASES[phrase[i]]} {body}"
        texts.append(None if no_caption[i] else body)
        picked = dict.fromkeys(hashtags[posts["topic"][i], tag_pick[i, : n_tags[i]]].tolist())
        tags.append(" ".join(picked))
    return texts, tags


def _with_spam(cfg: WorldConfig, post: dict[str, np.ndarray], texts: list[Any], tags: list[str],
               topic_label: np.ndarray, followers: np.ndarray, rng: np.random.Generator
               ) -> tuple[dict[str, np.ndarray], list[Any], list[str], np.ndarray]:
    """The posts with a spam burst among them, in time order: ``cfg.spam_posts`` link posts from the
    ``cfg.spam_accounts`` most-followed pages, each a copy of its account's template (a spam phrase and eight
    words of one topic) with one or two words changed, low in quality and high in clickbait. ``post["spam"]``
    holds each post's template (-1: not spam)."""
    count, accounts = cfg.spam_posts, np.argsort(-followers, kind="stable")[: cfg.spam_accounts]
    group = rng.integers(0, cfg.spam_accounts, count)
    topics = rng.integers(0, _N_TOPICS, cfg.spam_accounts)
    topic_words = np.array([vocab.TOPIC_WORDS[t] for t in vocab.TOPICS])
    template = topic_words[topics[:, None], rng.integers(0, topic_words.shape[1], (cfg.spam_accounts, 8))]
    phrase = rng.integers(0, len(vocab.SPAM_PHRASES), cfg.spam_accounts)
    words = template[group]
    general = np.array(vocab.GENERAL_WORDS)
    for slot in range(2):  # one word changed in every copy, a second in half of them
        change = rng.random(count) < (1.0 if slot == 0 else 0.5)
        where = rng.integers(0, 8, count)
        words[change, where[change]] = general[rng.integers(0, len(general), int(change.sum()))]
    spam = {"author": cfg.n_people + accounts[group],
            "hours": np.minimum(cfg.spam_day * 24.0 + rng.uniform(0.0, cfg.spam_hours, count),
                                cfg.n_days * 24.0 - 1e-3),
            "topic": topics[group], "media": np.full(count, vocab.MEDIA_TYPES.index("link")),
            "quality": rng.beta(2, 8, count), "clickbait": rng.beta(6, 2, count), "spam": group}
    merged = {key: np.concatenate([post[key] if key != "spam" else np.full(len(post["hours"]), -1), spam[key]])
              for key in spam}
    order = np.argsort(merged["hours"], kind="stable")
    spam_texts = [f"{vocab.SPAM_PHRASES[phrase[g]]} {' '.join(w)}" for g, w in zip(group, words, strict=True)]
    spam_tags = [vocab.TOPIC_HASHTAGS[vocab.TOPICS[t]][0] for t in topics[group]]
    all_texts, all_tags = [*texts, *spam_texts], [*tags, *spam_tags]
    return ({key: values[order] for key, values in merged.items()}, [all_texts[i] for i in order],
            [all_tags[i] for i in order], np.concatenate([topic_label, topics[group]])[order])


def _harmful(cfg: WorldConfig, post: dict[str, np.ndarray], pages: dict[str, np.ndarray], texts: list[Any],
             rng: np.random.Generator) -> np.ndarray:
    """Which posts are harmful or misleading, ``cfg.harmful_share`` of them on average: five times as likely
    from a clickbait farm, three times as likely about one of ``vocab.HARM_TOPICS``. Six in ten harmful posts
    (and one honest post in a hundred, quoting one) open with a misleading phrase: ``texts`` changes in place."""
    n = cfg.n_people
    is_page = post["author"] >= n
    farm = np.where(is_page, pages["clickbait_farm"][np.where(is_page, post["author"] - n, 0)], False)
    sensitive = np.isin(post["topic"], [vocab.TOPICS.index(topic) for topic in vocab.HARM_TOPICS])
    weight = (1.0 + 4.0 * farm) * (1.0 + 2.0 * sensitive)
    harmful = rng.random(len(weight)) < np.minimum(cfg.harmful_share * weight / weight.mean(), 1.0)
    phrase = rng.integers(0, len(vocab.MISLEADING_PHRASES), len(weight))
    marked = rng.random(len(weight)) < np.where(harmful, 0.6, 0.01)
    for i in np.flatnonzero(marked).tolist():
        if texts[i] is not None:
            texts[i] = f"{vocab.MISLEADING_PHRASES[phrase[i]]} {texts[i]}"
    return harmful


def _drifted_interests(cfg: WorldConfig, interests: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    after = interests.copy()
    drift = cfg.drift
    if drift is None:
        return after
    if drift.trending_topic is not None:
        onehot = np.eye(_N_TOPICS)[vocab.TOPICS.index(drift.trending_topic)]
        after = (1 - drift.trend_strength) * after + drift.trend_strength * onehot
    cohort = rng.random(len(after)) < drift.shifted_user_share
    target = np.eye(_N_TOPICS)[vocab.TOPICS.index(drift.shift_to_topic)]
    after[cohort] = 0.4 * after[cohort] + 0.6 * target
    return after


def _sessions(cfg: WorldConfig, people: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    horizon = cfg.n_days * 24.0
    start = np.maximum(people["signup"], 0.0)
    days_active = (horizon - start) / 24.0
    count = rng.poisson(people["activity"] * days_active)
    users = np.repeat(np.arange(cfg.n_people), count)
    first = np.repeat(start, count)
    day = np.floor(rng.uniform(first, horizon) / 24.0)
    hours = day * 24.0 + _diurnal_hours(rng, len(users))
    hours = np.where(hours < first, rng.uniform(first, horizon), hours)
    hours = np.minimum(hours, horizon - 1e-3)
    primary = people["device"][users]
    other = rng.integers(0, len(vocab.DEVICES), len(users))
    device = np.where(rng.random(len(users)) < 0.8, primary, other)
    if cfg.drift is not None and cfg.drift.new_device_share > 0:
        after = hours >= cfg.drift.start_day * 24.0
        device = np.where(after & (rng.random(len(users)) < cfg.drift.new_device_share), len(vocab.DEVICES), device)
    scroller = rng.lognormal(0.0, 0.5, cfg.n_people)
    mean_depth = (cfg.mean_feed_length - 1) * scroller[users] / scroller.mean()
    depth = 1 + rng.geometric(1.0 / (1.0 + mean_depth)) - 1
    order = np.lexsort((users, hours))
    return {"user": users[order], "hours": hours[order], "device": device[order], "depth": depth[order]}


def _dirty_profiles(cfg: WorldConfig, people: dict[str, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    """The observable profile table, dirtied the way real profile data is."""
    n = cfg.n_people
    codes = np.array(list(vocab.COUNTRIES))
    country = codes[people["country"]].astype(object)
    variant = rng.random(n) < cfg.country_variant_share
    for i in np.flatnonzero(variant).tolist():
        options = vocab.COUNTRY_VARIANTS[country[i]]
        country[i] = options[rng.integers(0, len(options))]
    country[rng.random(n) < 0.01] = None
    age = people["age"].astype(float).copy()
    # Missing not at random: Germans and Japanese, and privacy-minded people, leave age blank more often.
    missing_p = cfg.missing_age_share * np.where(np.isin(codes[people["country"]], ["DE", "JP"]), 3.5, 1.0)
    missing_p = np.clip(missing_p * np.where(people["privacy"], 3.0, 1.0), 0, 1)
    age[rng.random(n) < missing_p] = np.nan
    impossible = (rng.random(n) < cfg.impossible_age_share) & ~np.isnan(age)
    age[impossible] = rng.choice([0.0, -1.0, 150.0, 212.0, 999.0], size=int(impossible.sum()))
    language = np.array([vocab.COUNTRIES[c][1] for c in codes[people["country"]]], dtype=object)
    english_in_india = (codes[people["country"]] == "IN") & (rng.random(n) < 0.5)
    language[english_in_india] = "en"
    language[rng.random(n) < 0.05] = None
    device = np.array(vocab.DEVICES, dtype=object)[people["device"]]
    device[rng.random(n) < 0.03] = None
    return pd.DataFrame({"age": age, "country": country, "language": language, "device": device})

