"""The chapters' own helpers: the setup call and the source a chapter shows."""

from __future__ import annotations

import pytest

from newsfeed import monitoring
from newsfeed.notebook import PAGE_WIDTH, setup, show_source


def test_show_source_prints_the_package_code(capsys: pytest.CaptureFixture[str]) -> None:
    show_source(monitoring.psi)
    printed = capsys.readouterr().out
    assert printed.startswith("# monitoring.py\ndef psi(")
    assert "np.log(c / r)" in printed and max(len(line) for line in printed.splitlines()) <= PAGE_WIDTH


def test_show_source_refuses_code_wider_than_the_page() -> None:
    with pytest.raises(ValueError, match="obj='_too_wide' is invalid: obj accepts a function or class whose lines"):
        show_source(_too_wide)


def _too_wide() -> str:
    return "a line that is much wider than the page the book prints it on, so show_source must refuse to show it..."


def test_setup_refuses_a_bad_thread_count() -> None:
    with pytest.raises(ValueError, match="threads=0 is invalid: threads accepts an integer >= 1"):
        setup(0, threads=0)


def test_p_values_print_one_way() -> None:
    from newsfeed.notebook import format_p_value

    assert [format_p_value(p) for p in (0.8370, 0.0059, 0.001, 0.00099, 0.0)] == [
        "0.837", "0.006", "0.001", "< 0.001", "< 0.001"]
    with pytest.raises(ValueError, match="p=1.5 is invalid: p accepts"):
        format_p_value(1.5)
