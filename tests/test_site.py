"""The rendered site, in a real browser: it works offline, fits a laptop screen, and shows its evidence.

The book is built into a temporary folder (the README's book command), served on 127.0.0.1, and driven by
headless Chromium (Debian's `chromium` package, through playwright). Every request to any other host is
refused, as on a train or in a locked-down lab. For every page: no console error and no failed request;
at 1280 px nothing in the article scrolls sideways and code holds `LINE_WIDTH` characters; every formula
is rendered by MathJax; every image has alt text that says what it shows; exercises carry their chapter's
number and their stable label; a solution opens when its title is clicked. At 390 px (a phone) the page
never scrolls sideways and tables in the text fit. Links and citations are checked on the HTML itself.

Without a Chromium these tests cannot run: they are skipped and the run ends with a banner saying so and
naming the command that installs it (see conftest.py); `.ci/run` installs it, and sets REQUIRE_BROWSER=1
so that CI fails rather than skips. With SITE_SCREENSHOTS=1, a full-page screenshot of every page at 1280 px
(after clicking one solution open) is written to `_build/screenshots/`, for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from newsfeed.notebook import PAGE_WIDTH as LINE_WIDTH

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL_CHROMIUM = "sudo apt-get install -y chromium"
SCREENSHOTS = ROOT / "_build" / "screenshots"
# Flags that keep a headless Chromium from reaching for the network on its own (updates, sync, QUIC).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

if CHROMIUM is None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"REQUIRE_BROWSER=1 but no Chromium was found; install it: {INSTALL_CHROMIUM}")
    pytest.skip(f"BROWSER TESTS NOT RUN: no Chromium found. Install it: {INSTALL_CHROMIUM}",
                allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402  (only once a browser exists)


def _pages(html: Path) -> list[str]:
    """Every page of the built site, as a path relative to its root."""
    return sorted(str(p.relative_to(html)) for p in html.rglob("*.html") if "_static" not in p.parts)


def _chapter_number(page: str) -> str | None:
    """'7' for chapters/07_monitoring.html: the numbered chapters are 1 to 8 (chapter 0 is not numbered)."""
    match = re.match(r"chapters/(\d\d)_", page)
    return str(int(match.group(1))) if match and match.group(1) != "00" else None


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The book, built with the README's command into a temporary folder (warnings are errors)."""
    out = tmp_path_factory.mktemp("book")
    subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "-W", "-n",
                    "--keep-going", "--path-output", str(out)], check=True, capture_output=True)
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def base_url(html: Path) -> Iterator[str]:
    """The built site served on 127.0.0.1 (a random free port), for the duration of this module."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=html))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Visit:
    """One page opened offline: what the console said and which requests failed or left the machine."""

    def __init__(self, browser: object, base_url: str, page_path: str, width: int, height: int) -> None:
        self.problems: list[str] = []
        self.page: Page = browser.new_page(viewport={"width": width, "height": height})
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed request: {r.url}"))
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 else None)

        def offline(route: object) -> None:
            if route.request.url.startswith(base_url):
                route.continue_()
            else:
                self.problems.append(f"request leaves the machine: {route.request.url}")
                route.abort()

        self.page.route("**/*", offline)
        self.page.goto(base_url + page_path)
        self.page.wait_for_load_state("networkidle")
        # MathJax typesets after load; wait until it has finished (pages without math load no MathJax).
        self.page.evaluate("async () => { if (window.MathJax?.startup) await MathJax.startup.promise; }")

    def close(self) -> None:
        self.page.close()


@pytest.fixture(scope="module")
def site(html: Path) -> list[str]:
    return _pages(html)


def _expected_pages() -> list[str]:
    """The pages, known from the sources before the build: one per _toc.yml entry, plus the fixed ones."""
    toc = re.findall(r"file: (\S+)", (ROOT / "_toc.yml").read_text())
    return sorted({"index.html", "intro.html", "search.html", *(f"{f}.html" for f in toc)})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "page_path" in metafunc.fixturenames:
        metafunc.parametrize("page_path", _expected_pages())


def test_every_page_is_tested(site: list[str]) -> None:
    assert site == _expected_pages()


# Elements of the article that must fit its column: code, printed output, tables, formulas, figures.
FITS = "pre, table, .cell_output, div.highlight, div.math, mjx-container, img, figure"


def test_page_on_a_phone_and_at_laptop_width(browser: object, base_url: str, page_path: str) -> None:
    """One visit per page (loading and typesetting a page is most of the cost): first at a phone's width, then,
    the same page resized, at a laptop's."""
    visit = Visit(browser, base_url, page_path, 390, 844)
    page = visit.page
    try:
        phone_width = page.evaluate("() => document.documentElement.scrollWidth")
        prose_tables = page.evaluate(
            """() => [...document.querySelectorAll('.bd-article table')]
                 .filter(t => !t.closest('.cell_output'))
                 .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1)
                 .map(t => t.innerText.split('\\n')[0].slice(0, 60))""")
        page.set_viewport_size({"width": 1280, "height": 900})
        solution_problem = _click_a_solution_title(page)
        if os.environ.get("SITE_SCREENSHOTS") == "1":  # for a person to look at; off by default, it is slow
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / (page_path.replace("/", "_").removesuffix(".html") + ".png")),
                            full_page=True)
        # Measure everything a reader can open: every solution and every hidden code cell.
        page.evaluate("""() => {
          document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
          document.querySelectorAll('details').forEach(d => { d.open = true; });
        }""")
        report = page.evaluate(
            """(fits) => {
              const article = document.querySelector('.bd-article');
              const describe = (e) => e.tagName.toLowerCase() + ' "' + (e.innerText || e.alt || '').trim()
                .split('\\n')[0].slice(0, 60) + '"';
              const overflowing = article ? [...article.querySelectorAll(fits)]
                // A formula's own scrollWidth counts MathJax's hidden assistive copy: judge it by its box.
                .filter(e => (e.tagName !== 'MJX-CONTAINER' && e.scrollWidth > e.clientWidth + 1)
                  || e.getBoundingClientRect().right > article.getBoundingClientRect().right + 1)
                .map(e => describe(e) + ' is ' + Math.max(e.scrollWidth - e.clientWidth,
                  e.getBoundingClientRect().right - article.getBoundingClientRect().right) + ' px too wide')
                : [];
              const pre = article && article.querySelector('div.cell_input div.highlight pre');
              let characters = null;
              if (pre) {
                const probe = document.createElement('span');
                probe.textContent = 'x'.repeat(100);
                pre.appendChild(probe);
                const perCharacter = probe.getBoundingClientRect().width / 100;
                probe.remove();
                const style = getComputedStyle(pre);
                const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
                characters = Math.floor(inner / perCharacter);
              }
              const formulas = [...document.querySelectorAll('.math')];
              const searchBoxes = [...document.querySelectorAll('.search-button-field, form.bd-search')]
                .filter(e => e.offsetParent !== null && e.getBoundingClientRect().width > 0);
              return {
                pageWidth: document.documentElement.scrollWidth,
                overflowing,
                characters,
                formulas: formulas.length,
                unrendered: formulas.filter(e => !e.querySelector('mjx-container'))
                  .map(e => e.textContent.slice(0, 60)),
                searchBoxes: searchBoxes.length,
                images: [...(article ? article.querySelectorAll('img') : [])].map(i => ({
                  src: i.getAttribute('src'), alt: i.alt, loaded: i.complete && i.naturalWidth > 0,
                  shownAt: i.naturalWidth ? i.getBoundingClientRect().width / i.naturalWidth : 0})),
              };
            }""",
            FITS,
        )
        exercises = page.evaluate(
            """() => [...document.querySelectorAll('.exercise.admonition')]
                 .map(e => [e.id, e.querySelector('.admonition-title').innerText])""")
    finally:
        visit.close()

    assert not visit.problems, f"{page_path} offline: {visit.problems}"
    assert phone_width <= 390, f"{page_path} scrolls sideways on a phone: {phone_width} px wide"
    assert not prose_tables, f"{page_path}: tables in the text are wider than a phone: {prose_tables}"
    assert report["pageWidth"] <= 1280, f"{page_path} scrolls sideways: {report['pageWidth']} px wide"
    assert not report["overflowing"], f"{page_path} at 1280 px: {report['overflowing']}"
    if report["characters"] is not None:
        assert report["characters"] >= LINE_WIDTH, (
            f"a code block holds {report['characters']} characters, the chapters' lines are kept to {LINE_WIDTH}")
    assert not report["unrendered"], f"{page_path}: formulas left as TeX: {report['unrendered']}"
    if page_path != "search.html":  # the search page's own form is its content
        assert report["searchBoxes"] == 1, f"{page_path} shows {report['searchBoxes']} search boxes"
    for image in report["images"]:
        assert image["loaded"], f"{page_path}: image {image['src']} did not load"
        alt = image["alt"].strip()
        assert len(alt.split()) >= 4 and not re.search(r"[/\\]|\.(png|svg|jpe?g)$", alt), (
            f"{page_path}: image {image['src']} needs alt text saying what it shows, not {alt!r}")
        assert image["shownAt"] >= 0.7, (
            f"{page_path}: {alt[:40]!r} is shrunk to {image['shownAt']:.0%}: its labels become unreadable")
    chapter = _chapter_number(page_path)
    for position, (label, title) in enumerate(exercises, start=1):
        number = f"{chapter}.{position}" if chapter else str(position)
        # Outside the numbered chapters a page may leave its exercises unnumbered (an appendix does, since
        # Sphinx would continue chapter 0's count there), but never numbered from another page's count.
        unnumbered = not chapter and re.match(r"Exercise\s*ex-", title)
        assert unnumbered or title.startswith(f"Exercise {number}"), (
            f"{page_path}: {title!r} should be Exercise {number}")
        assert label.startswith("ex-") and label in title, f"{page_path}: {title!r} does not show {label}"
    assert solution_problem is None, f"{page_path}: {solution_problem}"


def _click_a_solution_title(page: Page) -> str | None:
    """Click the exercise link in the first solution's title: the solution must open, the page stay."""
    solutions = page.locator(".solution.dropdown")
    if solutions.count() == 0:
        return None
    content = solutions.first.locator("section").first
    if content.is_visible():
        return "solutions should start closed"
    url = page.url
    solutions.first.locator(".admonition-title a").first.click()
    page.wait_for_timeout(200)
    if not content.is_visible():
        return "the solution stays closed when its title's exercise link is clicked"
    if page.url != url:
        return f"clicking the solution's title jumped to {page.url}"
    return None


class _Anchors(HTMLParser):
    """The ids a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.citations: list[tuple[str, str]] = []  # (href, text) of in-text citations
        self._citation: list[str] | None = None
        self._href = ""
        self._in_bibtex_citation = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "span" and "bibtex-citation" in (attributes.get("class") or ""):
            self._in_bibtex_citation = 1
        if tag in ("a", "link") and attributes.get("href"):
            self.links.append(attributes["href"])
            if tag == "a" and self._in_bibtex_citation:
                self._citation, self._href = [], attributes["href"]

    def handle_data(self, data: str) -> None:
        if self._citation is not None:
            self._citation.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._citation is not None:
            self.citations.append((self._href, "".join(self._citation)))
            self._citation = None
        if tag == "span" and self._in_bibtex_citation:
            self._in_bibtex_citation = 0


def _parse(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text())
    return parser


def test_every_internal_link_and_anchor_resolves(html: Path, site: list[str]) -> None:
    parsed = {page: _parse(html / page) for page in site}
    broken = []
    for page, anchors in parsed.items():
        for href in anchors.links:
            target = urlparse(urljoin("http://book/" + page, href))
            if target.netloc != "book":
                continue
            path = unquote(target.path).lstrip("/") or "index.html"
            if not (html / path).exists():
                broken.append(f"{page} -> {href} (no such file)")
            elif target.fragment and path.endswith(".html") and target.fragment not in _ids(parsed, html, path):
                broken.append(f"{page} -> {href} (no such anchor)")
    assert not broken, broken


def _ids(parsed: dict[str, _Anchors], html: Path, path: str) -> set[str]:
    return (parsed.get(path) or _parse(html / path)).ids


def test_citations_read_like_their_bibliography_labels(html: Path, site: list[str]) -> None:
    """An in-text citation 'Craswell et al., 2008' points to the entry labelled 'Craswell et al., 2008'."""
    references = (html / "chapters" / "references.html").read_text()
    labels = dict(re.findall(r'<div class="citation" id="([^"]+)"[^>]*>\s*<span class="label">'
                             r'<span class="fn-bracket">\[</span>([^<]+)<', references))
    assert labels, "the references page lists the bibliography"
    checked = 0
    for page in site:
        for href, text in _parse(html / page).citations:
            label = labels.get(href.rsplit("#", 1)[-1])
            assert label is not None, f"{page}: citation {text!r} points to no bibliography entry"
            assert re.sub(r"[\s,]+", " ", label) in re.sub(r"[\s,()]+", " ", text), (
                f"{page}: the text cites {text!r} but the bibliography labels it {label!r}")
            checked += 1
    assert checked >= 10


def test_the_site_names_no_repository_or_launcher_that_does_not_exist(html: Path, site: list[str]) -> None:
    for page in site:
        text = (html / page).read_text()
        assert "mybinder.org" not in text and "github.com/feed-ranking-executed" not in text, page
    assert 'rel="icon"' in (html / "intro.html").read_text(), "a favicon, so browsers do not ask for one and 404"
