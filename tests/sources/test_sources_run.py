"""`vloom run` of a tiny config whose data are real sources only (a documents directory and an
HTML ingest): eval on their held-out documents, the report shows the funnel."""

from __future__ import annotations

import json

from realdata import write_html_dir, write_obelics_dir
from tinyexp import tiny_config

from vloom.pipeline import run_experiment


def test_a_run_on_real_sources_evaluates_held_out_documents_and_reports_the_funnel(tmp_path):
    write_obelics_dir(tmp_path / "docs")
    write_html_dir(tmp_path / "html")
    data = {
        "held_out_per_mille": 300,
        "sources": [
            {"name": "books", "kind": "documents", "path": str(tmp_path / "docs")},
            {"name": "web", "kind": "html", "path": str(tmp_path / "html")},
        ],
    }
    cfg = tiny_config(data=data, eval__tasks=["text_ppl", "caption_loss"])
    run = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert not (run / "synth").exists()  # no world source: no world
    res = json.loads((run / "results.json").read_text())["eval"]
    assert res["text_ppl"]["tokens"] > 0 and res["caption_loss"]["tokens"] > 0
    report = (run / "report.md").read_text()
    assert "has not run" not in report, report
    assert "### Sources: raw inputs -> documents -> kept -> tokens" in report
    assert "#### Ingest ledger: web (html)" in report
    line = next(x for x in report.splitlines() if x.startswith("| web | html | 12 | 12 |"))
    assert line.endswith(" |") and "| **all** |" in report


def test_vloom_run_names_a_missing_source_path_in_one_line(tmp_path):
    import subprocess
    import sys

    import yaml
    from tinyexp import tiny_raw

    raw = tiny_raw(
        data={"sources": [{"name": "web", "kind": "html", "path": str(tmp_path / "gone")}]},
        eval__tasks=["text_ppl"],
        out_dir=str(tmp_path / "run"),
    )
    cfg = tmp_path / "x.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    r = subprocess.run(
        [sys.executable, "-m", "vloom", "run", str(cfg)], capture_output=True, text=True
    )
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "gone: no such file or directory" in lines[0], r.stderr
    assert "data.sources[0] (web).paths[0]" in lines[0]
