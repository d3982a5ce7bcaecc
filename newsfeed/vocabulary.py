"""The fixed vocabularies of the simulated world: topics, their words and hashtags, countries and their
inconsistent spellings, and the clickbait phrases.

They live apart from the simulator so that the datasheet, the tests and the chapters can name them without
running a simulation.
"""

from __future__ import annotations

#: Topic name -> words that posts about the topic are written with. Words are distinct across topics, so a
#: text model can recover a post's topic from its text (but not perfectly: posts mix in general words).
TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "politics": ("election", "senate", "vote", "policy", "minister", "parliament", "campaign", "debate",
                 "governor", "reform", "ballot", "coalition"),
    "sports": ("football", "match", "goal", "league", "coach", "striker", "playoffs", "stadium", "tennis",
               "marathon", "transfer", "championship"),
    "music": ("album", "concert", "guitar", "singer", "playlist", "festival", "band", "lyrics", "vinyl",
              "drummer", "tour", "chorus"),
    "movies": ("film", "trailer", "director", "actor", "premiere", "cinema", "sequel", "screenplay", "oscar",
               "boxoffice", "streaming", "casting"),
    "technology": ("smartphone", "software", "startup", "chip", "laptop", "cloud", "robot", "app", "update",
                   "developer", "opensource", "gadget"),
    "gaming": ("console", "gamer", "multiplayer", "quest", "speedrun", "esports", "controller", "level",
               "loot", "patch", "arcade", "boss"),
    "science": ("physics", "telescope", "experiment", "genome", "particle", "research", "laboratory",
                "galaxy", "molecule", "fossil", "quantum", "hypothesis"),
    "health": ("workout", "nutrition", "sleep", "vaccine", "doctor", "yoga", "protein", "therapy",
               "running", "hydration", "clinic", "wellness"),
    "food": ("recipe", "pasta", "bakery", "spicy", "dessert", "chef", "brunch", "noodles", "grill", "vegan",
             "sourdough", "dumplings"),
    "travel": ("flight", "beach", "passport", "hostel", "itinerary", "island", "backpacking", "museum",
               "roadtrip", "hiking", "resort", "luggage"),
    "fashion": ("outfit", "sneakers", "runway", "designer", "denim", "jacket", "vintage", "makeup",
                "boutique", "handbag", "streetwear", "tailoring"),
    "finance": ("stocks", "inflation", "mortgage", "budget", "investing", "dividend", "savings", "crypto",
                "interest", "pension", "market", "earnings"),
    "parenting": ("toddler", "newborn", "homework", "bedtime", "daycare", "siblings", "parenting", "diapers",
                  "preschool", "lullaby", "teenager", "playground"),
    "pets": ("puppy", "kitten", "adoption", "vet", "leash", "aquarium", "parrot", "grooming", "shelter",
             "hamster", "treats", "catnip"),
    "cars": ("engine", "electric", "sedan", "horsepower", "dealership", "motorsport", "tires", "hybrid",
             "garage", "mileage", "convertible", "charging"),
    "gardening": ("tomatoes", "compost", "seedlings", "orchids", "pruning", "greenhouse", "soil", "harvest",
                  "succulents", "mulch", "perennials", "watering"),
    "art": ("painting", "gallery", "sculpture", "sketch", "canvas", "exhibition", "watercolor", "mural",
            "ceramics", "portrait", "illustration", "curator"),
    "education": ("university", "exam", "teacher", "scholarship", "lecture", "classroom", "tutoring",
                  "graduation", "curriculum", "students", "campus", "syllabus"),
    "climate": ("emissions", "heatwave", "renewable", "solar", "wildfire", "drought", "carbon", "glacier",
                "flooding", "recycling", "windfarm", "biodiversity"),
    "comedy": ("standup", "meme", "sitcom", "prank", "parody", "jokes", "comedian", "sketchshow", "punchline",
               "satire", "bloopers", "improv"),
}

#: Topic name -> hashtags used on posts about the topic.
TOPIC_HASHTAGS: dict[str, tuple[str, ...]] = {
    topic: (f"#{topic}", f"#{words[0]}", f"#{words[1]}") for topic, words in TOPIC_WORDS.items()
}

TOPICS: tuple[str, ...] = tuple(TOPIC_WORDS)

#: Words any post may contain, whatever its topic.
GENERAL_WORDS: tuple[str, ...] = (
    "today", "new", "great", "weekend", "finally", "friends", "morning", "best", "week", "amazing", "love",
    "thoughts", "first", "big", "news", "check", "time", "year", "people", "little", "really", "home",
    "tonight", "day",
)

#: Phrases that clickbait posts open with. They carry the signal a text model can use to spot clickbait.
CLICKBAIT_PHRASES: tuple[str, ...] = (
    "you won't believe", "shocking", "this one trick", "what happened next", "number seven will surprise you",
    "doctors hate this", "gone wrong", "must see",
)

#: Phrases a misleading post is often written with (chapter 11's harmful posts); a few honest posts quote them.
MISLEADING_PHRASES: tuple[str, ...] = (
    "they don't want you to know", "the truth about", "share before it's deleted", "what the media hides",
    "wake up people", "the real cure for", "exposed at last",
)

#: Topics most of the harmful posts are about.
HARM_TOPICS: tuple[str, ...] = ("politics", "health", "finance")

#: Openings of a spam burst's templates (chapter 11's near-duplicates).
SPAM_PHRASES: tuple[str, ...] = (
    "free giveaway", "click the link", "limited offer", "dm to claim", "follow and share to win",
)

MEDIA_TYPES: tuple[str, ...] = ("text", "image", "video", "link")
DEVICES: tuple[str, ...] = ("ios", "android", "web")
#: A device that only appears after drift (see ``DriftConfig.new_device_share``): unseen at training time.
DRIFT_DEVICE = "tablet"

#: ISO code -> (share of people, main language, mean age). The world's countries.
COUNTRIES: dict[str, tuple[float, str, float]] = {
    "US": (0.33, "en", 38.0),
    "IN": (0.20, "hi", 29.0),
    "BR": (0.12, "pt", 32.0),
    "GB": (0.08, "en", 40.0),
    "DE": (0.08, "de", 43.0),
    "FR": (0.06, "fr", 41.0),
    "NG": (0.07, "en", 26.0),
    "JP": (0.06, "ja", 46.0),
}

#: ISO code -> the other ways the same country turns up in the raw profile table.
COUNTRY_VARIANTS: dict[str, tuple[str, ...]] = {
    "US": ("us", "US ", "United States", "USA", "u.s."),
    "IN": ("in", "India", "IND"),
    "BR": ("br", "Brazil", "Brasil"),
    "GB": ("UK", "uk", "United Kingdom", "Great Britain"),
    "DE": ("de", "Germany", "Deutschland"),
    "FR": ("fr", "France"),
    "NG": ("ng", "Nigeria"),
    "JP": ("jp", "Japan"),
}
