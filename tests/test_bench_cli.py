"""`llamanative bench`: a grid of settings measured on a real model, as JSON/CSV/table."""

from __future__ import annotations

import json

from llamanative.__main__ import main


def test_bench_grid_json(smollm2_path, capsys):
    assert (
        main(
            [
                "bench",
                str(smollm2_path),
                "--threads",
                "1,2",
                "--pp",
                "32",
                "--tg",
                "4",
                "--reps",
                "2",
                "--output",
                "json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    rows = out["results"]
    assert [r["threads"] for r in rows] == [1, 2]
    for r in rows:
        assert r["pp_tps"] > 0 and r["tg_tps"] > 0 and r["ttft_s"] > 0 and r["pp_tps_sd"] >= 0


def test_bench_csv_and_embeddings(minilm_path, capsys):
    assert (
        main(["bench", str(minilm_path), "--pp", "0", "--tg", "0", "--embed", "16", "--reps", "1", "--output", "csv"])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    header = lines[0].split(",")
    assert "embed_per_s" in header and float(lines[1].split(",")[header.index("embed_per_s")]) > 0


def test_bench_bad_model_path(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "missing.gguf"), "--reps", "1"]) == 2
    assert "not found" in capsys.readouterr().err


def test_bench_on_named_device(smollm2_path, capsys):
    assert (
        main(
            [
                "bench",
                str(smollm2_path),
                "--device",
                "CPU",
                "--pp",
                "16",
                "--tg",
                "4",
                "--reps",
                "1",
                "--output",
                "json",
            ]
        )
        == 0
    )
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["device"] == "CPU" and row["tg_tps"] > 0 and row["cpu_variant"]


def test_bench_unknown_device_and_variant(smollm2_path, capsys):
    assert main(["bench", str(smollm2_path), "--device", "NoSuchGPU0", "--reps", "1"]) == 2
    assert "no device named 'NoSuchGPU0'" in capsys.readouterr().err
    assert main(["bench", str(smollm2_path), "--cpu-variant", "pentium3", "--reps", "1"]) == 2
    assert "no runnable CPU variant 'pentium3'" in capsys.readouterr().err


def test_bench_spec_type_axis(smollm2_path, capsys):
    """--spec-type is a grid axis with a copying workload (copy_tps); a bad type is an error, not a crash."""
    argv = ["bench", str(smollm2_path), "--pp", "0", "--tg", "24", "--reps", "1", "--output", "json"]
    assert main([*argv, "--spec-type", "none,ngram-simple"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [r["spec_type"] for r in rows] == ["none", "ngram-simple"]
    assert all(r["copy_tps"] > 0 and r["tg_tps"] > 0 for r in rows)
    assert main([*argv, "--spec-type", "draft-simple"]) == 2
    assert "draft model" in capsys.readouterr().err
