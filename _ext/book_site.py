"""Two site fixes the themes do not offer as settings, kept in one small Sphinx extension.

- Bibliography labels read like the in-text citations ("Craswell et al., 2008"), not alpha keys
  ("[CZTR08]"), so a reader finds the entry a citation points to at a glance.
- Every inline script is emitted once: sphinx-thebe registers its configuration script twice, and
  the second `const THEBE_JS_URL` is a SyntaxError in every page's console.
"""

from __future__ import annotations

from typing import Any

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person: Any) -> str:
    """A person's last name as plain text (LaTeX accents and braces resolved)."""
    return Text.from_latex(" ".join(person.last_names)).render_as("text")


class AuthorYearLabels(BaseLabelStyle):
    """Labels "Last, 2020", "Last and Other, 2020" and "Last et al., 2020", as the text cites them."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            surnames = [_surname(person) for person in people]
            if len(surnames) == 1:
                names = surnames[0]
            elif len(surnames) == 2:
                names = f"{surnames[0]} and {surnames[1]}"
            elif surnames:
                names = f"{surnames[0]} et al."
            else:
                names = entry.fields.get("organization", entry.key)
            yield f"{names}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    """The unsrt bibliography, sorted by author and year, with author-year labels."""

    default_label_style = "authoryear"
    default_sorting_style = "author_year_title"


def _drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first of any scripts that share both source file and inline body."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in context.get("script_files", []):
        # The same inline script is registered once with filename None and once with "".
        key = (str(getattr(script, "filename", script) or ""), str(getattr(script, "attributes", {}).get("body")))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # in place: Sphinx renders from this same list


def setup(app) -> dict[str, Any]:
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)  # after the others add theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}
