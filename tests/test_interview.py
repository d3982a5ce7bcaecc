"""The interview plan: every length adds up, every step keeps its share."""

import pytest

from newsfeed.interview import FRAMEWORK, INTERVIEW_MINUTES, budget, minutes_for


@pytest.mark.parametrize("minutes", [7, 20, 30, 45, 60, 90])
def test_budget_adds_up_and_is_contiguous(minutes: int) -> None:
    plan = budget(minutes)
    assert plan["minutes"].sum() == minutes
    assert (plan["minutes"] >= 1).all()
    assert plan["starts_at"].iloc[0] == 0 and plan["ends_at"].iloc[-1] == minutes
    assert (plan["starts_at"].iloc[1:].to_numpy() == plan["ends_at"].iloc[:-1].to_numpy()).all()


def test_the_45_minute_plan_is_the_framework() -> None:
    assert budget()["minutes"].tolist() == [step.minutes for step in FRAMEWORK]
    assert sum(step.minutes for step in FRAMEWORK) == INTERVIEW_MINUTES
    assert minutes_for("04_model_development") == max(step.minutes for step in FRAMEWORK)


@pytest.mark.parametrize("bad", [0, 6, 45.0, "45", True])
def test_budget_rejects_bad_lengths(bad: object) -> None:
    with pytest.raises(ValueError, match=r"minutes=.* is invalid: minutes accepts an integer >= 7"):
        budget(bad)  # type: ignore[arg-type]


def test_unknown_chapter() -> None:
    with pytest.raises(ValueError, match="chapter='99_x' is invalid"):
        minutes_for("99_x")
