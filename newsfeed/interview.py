"""The interview framework the book follows: seven steps, a time budget, and the chapter that executes each.

Every chapter states its step's share of a 45-minute interview from here, so the plan has one source.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

INTERVIEW_MINUTES = 45


@dataclass(frozen=True)
class Step:
    """One step of the framework: what it decides, how long it gets, and where the book executes it."""

    name: str
    minutes: int
    chapter: str
    question: str


FRAMEWORK: tuple[Step, ...] = (
    Step("Clarify requirements", 6, "01_requirements",
         "What is the business goal, who are the users, what are the scale and latency constraints?"),
    Step("Frame as an ML task", 5, "02_framing",
         "What exactly does the model predict, from which inputs, and which objective serves the goal?"),
    Step("Data preparation", 7, "03_data_preparation",
         "Which data exists, how is it cleaned, and which features are computed without leaking the future?"),
    Step("Model development", 10, "04_model_development",
         "Which baselines, which model, trained on which dataset with which loss?"),
    Step("Evaluation", 6, "05_evaluation",
         "How do we know it works: offline metrics, and an online experiment with guardrails?"),
    Step("Deployment and serving", 7, "06_serving",
         "How is a feed served within its latency budget: retrieval, ranking, re-ranking, features at request time?"),
    Step("Monitoring and continual learning", 4, "07_monitoring",
         "How do we notice the world changing, and how does the model keep up?"),
)


def budget(minutes: int = INTERVIEW_MINUTES) -> pd.DataFrame:
    """The framework's time plan scaled to an interview of ``minutes``, in whole minutes that add up exactly.

    Each step keeps its share of the 45-minute plan; rounding uses the largest-remainder method, so the steps
    always sum to ``minutes``. Columns: step, minutes, starts_at, ends_at, chapter, question.
    """
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < len(FRAMEWORK):
        raise ValueError(f"minutes={minutes!r} is invalid: minutes accepts an integer >= {len(FRAMEWORK)} "
                         "(at least one minute per step)")
    total = sum(step.minutes for step in FRAMEWORK)
    exact = [step.minutes * minutes / total for step in FRAMEWORK]
    whole = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (exact[i] - whole[i], -i), reverse=True)
    for i in by_remainder[: minutes - sum(whole)]:
        whole[i] += 1
    ends = pd.Series(whole).cumsum()
    return pd.DataFrame({
        "step": [s.name for s in FRAMEWORK],
        "minutes": whole,
        "starts_at": (ends - pd.Series(whole)).to_list(),
        "ends_at": ends.to_list(),
        "chapter": [s.chapter for s in FRAMEWORK],
        "question": [s.question for s in FRAMEWORK],
    })


def minutes_for(chapter: str, minutes: int = INTERVIEW_MINUTES) -> int:
    """How many minutes of an interview of ``minutes`` the step executed by ``chapter`` gets."""
    plan = budget(minutes)
    row = plan[plan["chapter"] == chapter]
    if row.empty:
        raise ValueError(f"chapter={chapter!r} is invalid: chapter accepts one of {', '.join(plan['chapter'])}")
    return int(row["minutes"].iloc[0])
