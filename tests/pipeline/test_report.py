"""The HTML report: self-contained, every section drawn, and rendered by a real headless Chromium."""

import re
import shutil
import subprocess

import pytest

from pipeline.report import build_report, near_duplicate_cluster_sizes, write_report
from tests.pipeline.inspection_run import make_inspection_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium chromium-driver")


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    return make_inspection_run(tmp_path_factory.mktemp("report"))


def open_in_chromium(page, profile_dir, *mode):
    """Chromium's output for `page` and the page's console messages (logged to stderr as INFO:CONSOLE)."""
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *mode, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_report_has_every_section_with_its_plot_and_nothing_external(run):
    html = build_report(run.run_dir, {"seeds": "fresh"})
    sections = dict(re.findall(r"<h2>(.*?)</h2>(.*?)(?=<h2>|</body>)", html))
    titles = ["Funnel", "Reject reasons", "Scores", "Lengths", "Domain and language mix", "Tokens per source", "Near-duplicate clusters"]
    assert list(sections) == titles
    assert all("<svg" in sections[title] for title in titles)
    assert "critique_score (critique" in html and "instruction (synthesize" in html
    assert "critique_low" in html and "near_duplicate" in html
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) + re.findall(r"url\(", html)
    assert links == [] and "<script" not in html


def test_near_duplicate_clusters_are_sized_from_reject_details(run):
    # Both near copies name the same kept row: one cluster of three.
    assert near_duplicate_cluster_sizes(run.run_dir, "evolve") == {3: 1}


@needs_chromium
def test_chromium_renders_the_report_plots_without_console_errors_and_not_blank(run, tmp_path):
    from PIL import Image, ImageStat

    page = write_report(run.run_dir, {"seeds": "fresh"}, tmp_path / "report.html")
    dom, console = open_in_chromium(page, tmp_path / "profile-dom", "--dump-dom")
    assert dom.count("<svg") >= 7 and dom.count("<rect") > 20
    assert console == []
    shot = tmp_path / "shot.png"
    open_in_chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1000,2400")
    pixels = Image.open(shot).convert("L")
    assert ImageStat.Stat(pixels).var[0] > 100  # a blank page has variance 0
    assert len(pixels.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


@needs_chromium
def test_console_capture_sees_a_page_error(tmp_path):
    """The console check above can fail: an erring page is caught."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><script>notDefined();</script></body></html>')
    _, console = open_in_chromium(page, tmp_path / "profile", "--dump-dom")
    assert any("notDefined" in line for line in console)
