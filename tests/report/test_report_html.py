"""report.html and study.html: self-contained pages, checked in a real headless Chromium.

The browser test asserts what a reader sees: the page renders (title, tables), every image
loads (naturalWidth > 0), the console stays clean, and no request leaves the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vloom.report import write_report
from vloom.report.html import markdown_to_html
from vloom.report.study import write_study_report

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def fake_sweep(root: Path, make_run) -> Path:
    """A sweep directory as `vloom sweep` leaves it: 2 settings x 2 seeds, one run failed."""
    runs = []
    for frac in (0.0, 1.0):
        for seed in (0, 1):
            name = f"image_start_fraction-{frac:g}_seed-{seed}"
            settings = {"train.image_start_fraction": frac, "seed": seed}
            runs.append({"name": name, "settings": settings})
            rd = root / "runs" / name
            if frac == 1.0 and seed == 1:
                rd.mkdir(parents=True)
                (rd / "status.json").write_text(
                    json.dumps({"status": "failed", "error": "RuntimeError: loss is NaN"})
                )
                continue
            ev = {
                "vqa": {"accuracy": 0.5 + 0.1 * seed - 0.2 * frac, "n": 16},
                "text_qa": {"accuracy": 0.4 + 0.05 * seed, "n": 8},
                "text_ppl": {"loss": 2.0 - 0.1 * seed, "perplexity": 7.4},
            }
            make_run(rd, control=False, ev=ev)
            (rd / "status.json").write_text(json.dumps({"status": "done", "seconds": 12.5}))
    study = {
        "name": "fake-study",
        "swept": ["train.image_start_fraction"],
        "spec": {},
        "runs": runs,
    }
    (root / "study.json").write_text(json.dumps(study))
    return root


def test_markdown_html_is_self_contained_and_escapes_markup(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 20)
    md = (
        "# T\n\n| run | v |\n|---|---:|\n| <script>alert(1)</script> | 1 |\n\n"
        "![plot](a.png)\n\n![remote](http://example.com/x.png)\n\n![gone](missing.png)\n\n"
        "[out](https://example.com) <details><summary>more</summary>\n\nx\n\n</details>\n"
    )
    page = markdown_to_html(md, tmp_path, "T")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'src="data:image/png;base64,' in page
    assert 'src="http' not in page  # the remote image stays text, never a request
    assert "[image not available: missing.png]" in page
    assert 'href="https://example.com"' not in page
    assert "<details><summary>more</summary>" in page
    assert page.count("<img ") == 1


def test_run_report_and_study_html_written(tmp_path, make_run):
    run = make_run(tmp_path / "run")
    write_report(run)
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # loss and eval plots embedded
    assert "<table>" in html and "exact_dedup" in html  # the ledger
    sweep = fake_sweep(tmp_path / "sweep", make_run)
    md, page = write_study_report(sweep)
    text = md.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| vqa.accuracy |"))
    assert "0.55 ± 0.07071 (n=2)" in row and "0.3 (n=1)" in row
    assert "RuntimeError: loss is NaN" in text
    assert "data:image/png;base64," in page.read_text()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")
def test_pages_render_in_headless_chromium(tmp_path, make_run):
    pytest.importorskip("playwright", reason="Playwright is a dev extra: pip install 'vloom[dev]'")
    from playwright.sync_api import sync_playwright

    run = make_run(tmp_path / "run")
    write_report(run)
    sweep = fake_sweep(tmp_path / "sweep", make_run)
    write_study_report(sweep)
    # Opened from a copy elsewhere: the page must not depend on files beside it.
    alone = tmp_path / "alone"
    alone.mkdir()
    pages = {
        "report": shutil.copy(run / "report.html", alone / "report.html"),
        "study": shutil.copy(sweep / "study.html", alone / "study.html"),
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for kind, path in pages.items():
                page = browser.new_page()
                errors: list[str] = []
                requests: list[str] = []
                page.on(
                    "console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None
                )
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                page.on("request", lambda r, q=requests: q.append(r.url))
                url = Path(path).resolve().as_uri()
                page.goto(url, wait_until="load")
                title = page.title()
                assert title.startswith("Run report" if kind == "report" else "Study report")
                assert page.locator("table").count() >= (4 if kind == "report" else 2)
                widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
                assert widths and all(w > 0 for w in widths), widths
                assert errors == []
                # data: URIs are not network requests; only the page itself is fetched.
                assert [u for u in requests if not u.startswith("data:")] == [url]
                page.close()
        finally:
            browser.close()
