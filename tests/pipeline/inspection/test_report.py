"""The HTML report: self-contained, every section drawn, and rendered by a real headless Chromium."""

import re
import shutil
import subprocess
from collections import Counter
from html import unescape

import pyarrow as pa
import pytest

from synthmix.pipeline.inspection.report import build_report, near_duplicate_cluster_sizes, write_report
from synthmix.pipeline.store import StageDir, UnitCounts
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


@pytest.fixture
def chromium() -> str:
    """Debian's chromium, which scripts/test.sh installs: without it these tests fail, saying so."""
    assert CHROMIUM is not None, "Debian's chromium is not installed: scripts/test.sh installs it (apt-get install -y chromium chromium-driver)"
    return CHROMIUM


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    return make_inspection_run(tmp_path_factory.mktemp("report"))


def open_in_chromium(page, profile_dir, *mode):
    """Chromium's output for `page` and the page's console messages (logged to stderr as INFO:CONSOLE)."""
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *mode, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_report_has_every_section_with_its_plot_and_nothing_external(run):
    html = build_report(run.run_dir, {"seeds": "fresh"})
    sections = dict(re.findall(r"<h2>(.*?)</h2>(.*?)(?=<h2>|</body>)", html))
    titles = ["Funnel", "Reject reasons", "Languages, domains and sources", "Tokens per source", "Stage by stage", "Near-duplicate clusters"]
    assert list(sections) == titles
    assert all("<svg" in sections[title] for title in titles)
    assert "critique_low" in html and "near_duplicate" in html
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) + re.findall(r"url\(", html)
    assert links == [] and "<script" not in html


def figure_captions(html, stage):
    """Captions of the plots drawn for one stage in the stage-by-stage section."""
    part = re.search(rf"<h3>{stage}</h3>(.*?)(?=<h3>|<h2>)", html.split("<h2>Stage by stage</h2>")[1], re.S).group(1)
    return [unescape(caption) for caption in re.findall(r"<figcaption>(.*?)</figcaption>", part)]


def test_each_stage_plots_the_fields_it_made_as_what_they_are(run):
    html = build_report(run.run_dir, {"seeds": "fresh"})
    critique = figure_captions(html, "critique")
    # Scores, the rubric's dimensions among them, are value distributions; text is lengths.
    assert any(caption.startswith("critique.scores.accuracy: min 2, median") for caption in critique)
    assert any(caption.startswith("critique_score: min 2") for caption in critique)
    assert any(caption.startswith("answer (characters): ") for caption in critique)
    # A JSON column is never plotted as the length of its text.
    assert not any(caption.startswith(("critique (characters)", "meta (characters)", "critique:")) for caption in critique)
    assert figure_captions(html, "synthesize") == ["meta.n: min 0, median 1, max 1"]
    synthesize = html.split("<h3>synthesize</h3>")[1].split("<h3>")[0]
    assert "The same in every row: meta.template = synthesize/qa; instruction = 78 characters" in synthesize
    assert figure_captions(html, "evolve") == []  # it made no field: its rows only


def test_rows_per_language_domain_and_source_are_counted_at_every_stage(run):
    html = build_report(run.run_dir, {"seeds": "fresh"})
    mix = html.split("<h2>Languages, domains and sources</h2>")[1].split("<h2>")[0]
    domain = mix.split("<h3>domain</h3>")[1].split("<h3>")[0]
    rows = {cells[0]: cells[1:] for cells in (re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", domain))}
    header = rows["stage"]
    assert {"code", "math", "science"} <= set(header)
    critique, seeds = dict(zip(header, rows["critique"])), dict(zip(header, rows["seeds"]))
    assert critique["math"] == "1 <span class=rej>−1</span>" and critique["code"] == "2"
    assert (seeds["math"], seeds["science"], seeds["code"]) == ("1", "1", "1")
    assert list(rows)[1:] == ["seeds", "synthesize", "evolve", "critique", "shards"]


def test_each_stage_shows_kept_examples_and_rejected_ones_with_their_reason(run):
    html = build_report(run.run_dir, {"seeds": "fresh"})
    critique = html.split("<h3>critique</h3>")[1].split("<h3>")[0]
    assert "kept (3 of 5)" in critique and critique.count('<table class="example">') == 4
    rejected = critique.split("rejected: critique_low (1 of 1)")[1]
    assert run.sibling_id in rejected and "I don&#x27;t know." in rejected and "&quot;threshold&quot;: 5" in rejected


def test_a_stage_whose_staleness_cannot_be_decided_says_why(run):
    html = build_report(run.run_dir, {"seeds": "undecided"}, {"seeds": "seeds path 'corpus.jsonl' matches no file"})
    assert "undecided</b> (seeds)" in html and "seeds path &#x27;corpus.jsonl&#x27; matches no file" in html


def test_near_duplicate_clusters_are_sized_from_reject_details(run):
    # Both near copies name the same kept row: one cluster of three.
    assert near_duplicate_cluster_sizes(run.run_dir, "evolve") == {3: 1}


def test_chromium_renders_the_report_plots_without_console_errors_and_not_blank(run, tmp_path, chromium):
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


def test_console_capture_sees_a_page_error(tmp_path, chromium):
    """The console check above can fail: an erring page is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>notDefined();</script></body></html>")
    _, console = open_in_chromium(page, tmp_path / "profile", "--dump-dom")
    assert any("notDefined" in line for line in console)


def test_a_manifest_counting_rejects_whose_files_are_gone_still_reports(tmp_path):
    stage_dir = StageDir(tmp_path, "critique")
    stage_dir.clear()
    counts = UnitCounts(rows_in=5, rows_out=2, rejected=Counter(critique_low=3))
    kept = pa.Table.from_pylist([{"id": "a", "critique_score": 7.0}, {"id": "b", "critique_score": 8.0}])
    stage_dir.commit_unit("0000", kept, pa.table({}), pa.array(["a", "b"]), counts)
    stage_dir.commit({"stage": "critique", "fingerprint": "hand-written", **counts.to_json()})
    html = build_report(tmp_path, {})
    assert "critique_low" in html and "kept (2 of 2)" in html and "rejected: critique_low" not in html
