"""Every measured number the prose states is printed by the chapter's own code.

The book's footer promises that every number is computed by the code above it. For outputs, strict nbval keeps
that promise; this test keeps it for the prose. It reads each chapter's markdown (body text, boxes, exercises and
solutions, captions), finds the numbers that look measured (a decimal, a percentage, a count of 100 or more),
and requires each to equal, at the precision the prose states it, a number printed in one of the same chapter's
stored outputs. A rerun that moves a printed number makes the sentence that quotes it fail here, so a stale
sentence cannot survive a re-execution.

Numbers that are inputs, not measurements (a world's size, a layer width, a threshold a chapter sets, an
assumption such as two billion users), are listed per chapter in ``INPUTS`` with the reason; the list is checked
too, so an entry that no longer appears in the prose must go.

Why a checker rather than myst-nb's ``glue``: the sentence stays plain text, so it reads the same in the rendered
book and in JupyterLab (where a ``{glue:text}`` role shows as raw markup), and an author writes numbers as a
reader would, rounded where that reads better.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))  # the chapters and the appendix notebooks

#: Numbers the prose may state without an output behind them: inputs and assumptions, each with its reason.
INPUTS: dict[str, dict[str, str]] = {
    "01_requirements": {
        "100,000": "the fleet limit an exercise gives (ex-01-cores)",
    },
    "02_framing": {
        "100": "a unit: reactions are reported per 100 sessions",
        "0.02": "a dwell weight an exercise asks to try (ex-02-dwell)",
        "1.5": "the world's scroll-past dwell, drawn from 0.3 to 1.5 s (data/README.md): a setting",
    },
    "03_data_preparation": {
        "300": "the audit sample's size, a choice of the chapter",
        "212": "an impossible age the world writes into profiles (an example of the problem)",
        "999": "an impossible age the world writes into profiles (an example of the problem)",
    },
    "04_model_development": {
        "99%": "the accuracy of always answering no, from the share rate under 1% the label table prints",
        "30%": "logistic regression's negative rate, a setting of models.logistic_regression",
        "20%": "the trees' negative rate, a setting of models.gradient_boosting",
        "2%": "metrics.LOW_REACTION_RATE, chapter 2's threshold",
        "256": "the network's first hidden width (MultiTaskConfig.hidden)",
        "128": "the network's second hidden width (MultiTaskConfig.hidden)",
        "1,000": "the number of candidates the timing cell scores (a setting)",
    },
    "05_evaluation": {
        "0.5": "a definition: the ROC-AUC of a random order",
        "25%": "MINIMUM_LIFT, the smallest lift worth detecting, set in the setup cell",
    },
    "06_serving": {
        "0.05": "RerankConfig.max_p_hide, the hide filter's threshold",
        "100": "serving.MAX_LIMIT, the most posts one request may ask for",
        "150": "chapter 1's server-side latency budget in milliseconds (an assumption)",
        "300": "a count the chapter sets: requests the benchmark times, and a hypothetical p99 in a follow-up",
        "1,500": "chapter 1's candidates per request (an assumption): the benchmark's threshold and two-tower setting",
        "500": "an HTTP status code (a server error), and the benchmark's candidate threshold: not measurements",
        "503": "an HTTP status code (service unavailable: a service past its connection limit), not a measurement",
        "200": "chapter 1's end-to-end latency budget in milliseconds (an assumption)",
        "2,000": "WorldConfig.hub_degree, the accounts each hub of the large world connects to (a setting)",
    },
    "10_experiments": {
        "0.03": "the p-value of the opening question, a hypothetical dashboard",
        "5%": "the tests' nominal false-positive rate, ALPHA, set in the setup cell",
        "0.001": "the smallest per-look threshold the exercise tries (an input)",
    },
    "08_scaling": {
        "150": "chapter 1's assumed CPU-ms of heavy ranking per request (an assumption)",
    },
    "09_logged_feedback": {
        "20,000": "the draws from Thompson sampling's prior (offpolicy.thompson_distribution's samples, a setting)",
        "0.1": "delays.arrival_chance's floor, a setting",
        "1%": "the randomized share an exercise proposes (ex-09-bucket)",
        "0.96": "a propensity by definition: 0.05 / 5 + 0.95, the intended slot's with a twentieth randomized",
        "0.01": "a propensity by definition: 0.05 / 5, any other first-screen slot's with a twentieth randomized",
    },
    "11_responsible_ranking": {
        "1,024": "dedup.DIMENSIONS, the hashed bag of words' dimensions (a setting)",
        "0.3": "the diversified way's topic penalty (bubbles.WAYS), a setting",
    },
    "07_monitoring": {
        "0.1": "monitoring.PSI_WARN, the rule of thumb's warn line",
        "0.25": "monitoring.PSI_ALERT, the rule of thumb's alert line",
    },
}

_NUMBER = re.compile(r"(?<![\w.\-/$^])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(\s?%| percent)?(?=x\b|×|[^\w]|$)")
_PRINTED = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _prose(markdown: str) -> str:
    """The markdown a reader reads as sentences: code, math, roles, links and directive options removed."""
    for pattern in (r"(?s)```.*?```", r"`[^`]*`", r"(?s)\$\$.*?\$\$", r"\$[^$\n]*\$", r"(?m)^:[\w-]+:.*$",
                    r"\]\([^)]*\)", r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2})?", r"\b\d{1,2}:\d{2}\b"):
        markdown = re.sub(pattern, " ", markdown)
    return markdown


def stated_numbers(markdown: str) -> list[tuple[str, float, int, bool]]:
    """(as written, value, decimals, is a percentage) for each number of the prose that looks measured."""
    found = []
    for match in _NUMBER.finditer(_prose(markdown)):
        whole, fraction, percent = match.groups()
        value = float(whole.replace(",", "") + (fraction or ""))
        if not fraction and not percent and "," not in whole and value < 100:
            continue  # small integers are counts of things the chapter sets (3 seeds, top 10, 45 minutes)
        found.append((match.group(0).strip(), value, len(fraction) - 1 if fraction else 0, bool(percent)))
    return found


def printed_numbers(notebook: dict) -> list[float]:
    """Every number in the text of the stored outputs (printed text, text/plain and HTML tables)."""
    numbers = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for text in (output.get("text", ""), data.get("text/plain", ""), data.get("text/html", "")):
                text = "".join(text) if isinstance(text, list) else text
                numbers += [float(m.replace(",", "")) for m in _PRINTED.findall(text)]
    return numbers


def backed(value: float, decimals: int, percent: bool, printed: list[float]) -> bool:
    """Whether ``value`` (stated to ``decimals`` places) rounds from a printed number (or its percentage)."""
    tolerance = 0.5 * 10.0**-decimals + 1e-9
    scales = (1.0, 100.0) if percent else (1.0,)
    return any(abs(abs(y) * scale - value) <= tolerance for y in printed for scale in scales)


def _markdown(notebook: dict) -> str:  # every markdown cell, for the INPUTS check
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")


def unbacked_numbers(notebook: dict, allowed: dict[str, str]) -> list[tuple[str, str]]:
    """(number as written, its sentence) for every measured-looking number of a markdown cell that no output
    *above* that cell prints: the reader has seen the number's source by the time the prose states it, and a
    number a later cell happens to print cannot vouch for it."""
    printed: list[float] = []
    missing = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            printed += printed_numbers({"cells": [cell]})
            continue
        text = "".join(cell["source"])
        for written, value, decimals, percent in stated_numbers(text):
            if written not in allowed and not backed(value, decimals, percent, printed):
                flat = " ".join(_prose(text).split())
                where = re.search(rf".{{0,60}}(?<![\d.,]){re.escape(written)}(?!\d).{{0,30}}", flat)
                missing.append((written, where.group(0) if where else written))
    return missing


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_measured_number_in_the_prose_is_printed_above_it(path: Path) -> None:
    missing = unbacked_numbers(json.loads(path.read_text()), INPUTS.get(path.stem, {}))
    shown = "\n".join(f"{written!r} in '...{sentence}...'" for written, sentence in missing)
    assert not missing, ("numbers the prose states that no output above them prints (stale, or typed by hand: "
                         f"print them, or list an input in INPUTS):\n{shown}")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_listed_inputs_still_appear_in_the_prose(path: Path) -> None:
    stated = {text for text, *_ in stated_numbers(_markdown(json.loads(path.read_text())))}
    unused = set(INPUTS.get(path.stem, {})) - stated
    assert not unused, f"INPUTS lists numbers this chapter no longer states: {sorted(unused)}"


def test_the_checker_catches_a_stale_number() -> None:
    printed = printed_numbers({"cells": [{"outputs": [{"text": "click share 0.925, lift 79.6%\n"}]}]})
    assert backed(0.925, 3, False, printed) and backed(0.93, 2, False, printed)
    assert backed(79.6, 1, True, printed) and backed(92.5, 1, True, printed)
    assert not backed(0.926, 3, False, printed)  # the prose kept an old run's number
    assert [text for text, *_ in stated_numbers("AUC 0.819 on 1,478 users (79.6%), 3 seeds, `k=500`")] == [
        "0.819", "1,478", "79.6%"]


# Outputs that vary by machine (timings, memory: cells tagged nbval-ignore-output) are not compared when the book
# is tested, so nothing would catch prose that says of them what the page's own output contradicts. The rule: each
# such cell lists in its metadata the claims the prose makes of its output, each a condition on numbers read
# from the output by regular expressions, stated so that any plausible run satisfies it ("medians under a
# millisecond"), and checked here against the output the page shows. A cell the prose claims nothing of says so
# with an empty list.
VOLATILE = "nbval-ignore-output"
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(node: ast.AST, values: dict[str, float]) -> float | bool:
    """A claim's condition: numbers, the names of values read, + - * /, comparisons, ``and``; nothing else."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return _ARITHMETIC[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return all(_evaluate(value, values) for value in node.values)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        sides = [_evaluate(node.left, values), *(_evaluate(c, values) for c in node.comparators)]
        return all(_COMPARE[type(op)](a, b) for op, a, b in zip(node.ops, sides, sides[1:], strict=False))
    raise ValueError(f"a claim's condition may not contain {ast.dump(node)[:60]}")


def _output_text(cell: dict) -> str:
    return "".join("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
                   for output in cell.get("outputs", []))


def broken_claims(notebook: dict) -> list[str]:
    """What is wrong with the claims on the volatile outputs of ``notebook``: a volatile cell without a claims
    list, a value its pattern cannot read, or a condition the shown output does not satisfy."""
    problems = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code" or VOLATILE not in cell.get("metadata", {}).get("tags", []):
            continue
        claims = cell["metadata"].get("claims")
        if claims is None:
            problems.append(f"cell {cell.get('id')}: its output varies by machine and it lists no claims")
            continue
        text = _output_text(cell)
        for claim in claims:
            values = {}
            for name, pattern in claim["read"].items():
                found = re.search(pattern, text, re.MULTILINE)
                if found is None:
                    problems.append(f"cell {cell.get('id')}: {name} ({pattern!r}) is not in its output")
                else:
                    values[name] = float(found.group(1).replace(",", ""))
            if len(values) == len(claim["read"]) and not _evaluate(ast.parse(claim["holds"], mode="eval"), values):
                problems.append(f"cell {cell.get('id')}: the prose says {claim['says']!r}, but {claim['holds']} "
                                f"is false for the output shown ({values})")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_what_the_prose_says_of_volatile_outputs_holds_for_the_output_shown(path: Path) -> None:
    problems = broken_claims(json.loads(path.read_text()))
    assert not problems, "\n".join(problems)


def test_the_claims_check_catches_a_timing_the_output_contradicts() -> None:
    claim = {"says": "every index answers a query in well under a millisecond",
             "read": {"exact": r"^exact\s+[\d.]+\s+[\d.]+\s+([\d.]+)"}, "holds": "exact < 1"}
    cell = {"cell_type": "code", "id": "t", "metadata": {"tags": [VOLATILE], "claims": [claim]},
            "outputs": [{"output_type": "stream", "text": "       build  p50    p99\nexact  1.891  0.185  4.258\n"}]}
    assert broken_claims({"cells": [cell]}) == [
        "cell t: the prose says 'every index answers a query in well under a millisecond', but exact < 1 is false "
        "for the output shown ({'exact': 4.258})"]
    cell["outputs"][0]["text"] = cell["outputs"][0]["text"].replace("4.258", "0.258")
    assert broken_claims({"cells": [cell]}) == []
    del cell["metadata"]["claims"]
    assert broken_claims({"cells": [cell]}) == ["cell t: its output varies by machine and it lists no claims"]
    with pytest.raises(ValueError, match="may not contain"):
        _evaluate(ast.parse("__import__('os')", mode="eval"), {})
