"""The shared-data key of a study: a `data:` section is part of it; without one it is unchanged."""

from __future__ import annotations

from tinyexp import tiny_config

from vloom.sweep.data import data_key, data_settings


def _data(path: str, synth: bool = True, per_mille: int = 10) -> dict:
    sources = [{"name": "web", "kind": "html", "path": path}]
    if synth:
        sources.insert(0, {"name": "world", "kind": "synth"})
    return {"sources": sources, "held_out_per_mille": per_mille}


def test_no_data_section_keeps_the_worlds_key():
    assert set(data_settings(tiny_config(), None)) == {
        "seed",
        "synth",
        "curate",
        "pack",
        "model.vision",
    }


def test_the_data_section_is_part_of_the_key():
    world = data_key(tiny_config(), None)
    a = data_key(tiny_config(data=_data("/a")), None)
    assert len({world, a, data_key(tiny_config(data=_data("/b")), None)}) == 3
    assert a != data_key(tiny_config(data=_data("/a", per_mille=20)), None)
    assert a == data_key(tiny_config(data=_data("/a"), curate__workers=3), None)


def test_without_a_world_source_the_synth_settings_leave_the_key():
    cfg = tiny_config(data=_data("/a", synth=False), eval__tasks=["text_ppl"])
    other = tiny_config(data=_data("/a", synth=False), eval__tasks=["text_ppl"], synth__n_pairs=7)
    assert "synth" not in data_settings(cfg, None)
    assert data_key(cfg, None) == data_key(other, None)


def test_runs_of_a_study_share_one_build_of_real_sources(tmp_path, capsys):
    from realdata import write_html_dir

    from vloom.sweep.data import ensure_data

    write_html_dir(tmp_path / "html", n=6)
    data = {
        "held_out_per_mille": 200,
        "sources": [{"name": "web", "kind": "html", "path": str(tmp_path / "html")}],
    }
    a = tiny_config(data=data, eval__tasks=["text_ppl"])
    b = tiny_config(data=data, eval__tasks=["text_ppl"], model__d_model=64)  # model only
    da = ensure_data(tmp_path / "sweep", a, None, quiet=False)
    db = ensure_data(tmp_path / "sweep", b, None, quiet=False)
    out = capsys.readouterr().out
    assert da == db and (da.packed / "stats.json").is_file()
    assert out.count("ingest web (html) ->") == 1 and "ingest web: complete, skipped" in out
    assert out.count("union ->") == 1 and "pack: complete, skipped" in out


def test_a_study_with_a_missing_source_path_fails_once_before_any_run(tmp_path):
    import pytest
    from sweepkit import write_study
    from tinyexp import tiny_raw

    from vloom.sources import SourceError
    from vloom.sweep.run import run_sweep
    from vloom.sweep.spec import load_study

    base = tiny_raw(data=_data(str(tmp_path / "gone")))
    study = load_study(write_study(tmp_path, base=base, seeds=[0]))
    with pytest.raises(SourceError, match=r"gone: no such file or directory \(data\.sources\[1\]"):
        run_sweep(study, quiet=True)
    assert not (tmp_path / "sweep" / "data").exists()
