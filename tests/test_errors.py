"""Bad input: one clear line, a non-zero exit, no traceback, status=failed, nothing half-written."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from rankexp.cli import app
from tests.conftest import fast_overrides


def run_cli(args):
    result = CliRunner().invoke(app, args)
    return result, result.output


def assert_one_line_error(result, output, match):
    assert result.exit_code != 0, output
    assert "Traceback" not in output
    lines = [l for l in output.splitlines() if l.startswith(("error:", "config error:"))]
    assert len(lines) == 1, output
    assert match in lines[0], lines[0]


def broken_copy(src, dst, name, content):
    shutil.copytree(src, dst)
    if content is None:
        (dst / name).unlink()
    else:
        (dst / name).write_text(content)
    return dst


@pytest.mark.parametrize("name,content,match", [
    ("qrels.txt", None, "missing qrels.txt"),
    ("corpus.jsonl", None, "missing corpus.jsonl"),
    ("qrels.txt", "1 0 doc\n", "qrels.txt:1: expected 4 columns"),
    ("corpus.jsonl", '{"doc_id": "1", "text": "a"}\n{not json\n', "corpus.jsonl:2: not valid JSON"),
    ("queries.tsv", "only-an-id-no-tab\n", "queries.tsv:1: expected 'qid<TAB>text'"),
    ("qrels.txt", "999999 0 1 1\n", "no qrels query id matches a query id"),
    ("qrels.txt", "1 0 no-such-doc 1\n", "no qrels doc id matches a corpus doc id"),
    ("qrels.txt", "1 0 1239 0\n", "no query has a relevant judgment"),
])
def test_bad_local_files(vaswani_slice, tmp_path, name, content, match):
    data = broken_copy(vaswani_slice, tmp_path / "data", name, content)
    result, output = run_cli(["train", *fast_overrides(data, tmp_path / "out")])
    assert_one_line_error(result, output, match)
    # the run directory records the failure and holds no results
    (rd,) = list((tmp_path / "out" / "runs").iterdir())
    assert (rd / "status").read_text().startswith("failed:")
    assert not (rd / "metrics.json").exists() and not (rd / "run.trec").exists()


@pytest.mark.parametrize("extra,match", [
    (["data=nosuch"], "unknown option data=nosuch (available: cranfield"),
    (["trainer.nosuchkey=1"], "Could not override 'trainer.nosuchkey'"),
    (["seed=1,2"], "is a sweep"),
    (["loss.temperature=0"], "config error: loss.temperature must be a number > 0, got 0"),
    (["eval.rerank_k=-5"], "config error: eval.rerank_k must be a positive integer, got -5"),
    (["eval.measures=[nDGC@10]"], "unknown measure 'nDGC@10'"),
])
def test_bad_config(vaswani_slice, tmp_path, extra, match):
    result, output = run_cli(["train", *fast_overrides(vaswani_slice, tmp_path), *extra])
    assert_one_line_error(result, output, match)


def test_unknown_irds_id(tmp_path):
    result, output = run_cli(["train", "data=irds", "data.id=no-such/dataset", "model=tiny", "logger=none", f"paths.output_dir={tmp_path}"])
    assert_one_line_error(result, output, "unknown ir_datasets id 'no-such/dataset'")


def test_empty_train_split(vaswani_slice, tmp_path):
    result, output = run_cli(["train", *fast_overrides(vaswani_slice, tmp_path), "data.split.test=0.5", "data.split.dev=0.49"])
    assert_one_line_error(result, output, "empty train split")


def test_nan_loss(vaswani_slice, tmp_path):
    # a vanishing temperature makes logits infinite: inf - inf = NaN at the first step
    result, output = run_cli(["train", *fast_overrides(vaswani_slice, tmp_path), "loss.temperature=1e-40"])
    assert_one_line_error(result, output, "loss is nan at step 0")
    (rd,) = list((tmp_path / "runs").iterdir())
    assert "loss is nan" in (rd / "status").read_text()
    assert not (rd / "metrics.json").exists()


def test_debug_shows_traceback(vaswani_slice, tmp_path):
    result = CliRunner().invoke(app, ["--debug", "train", *fast_overrides(vaswani_slice, tmp_path), "data=nosuch"])
    assert result.exit_code != 0
    assert result.exception is not None and type(result.exception).__name__ == "ConfigError"


def test_eval_errors(vaswani_slice, tmp_path):
    run = tmp_path / "r.trec"
    run.write_text("1 Q0 100 1 1.0 t\n1 Q0 101 2\n")
    result, output = run_cli(["eval", str(run), "--qrels", str(vaswani_slice / "qrels.txt")])
    assert_one_line_error(result, output, "r.trec:2: expected 6 columns")
    run.write_text("zzz Q0 100 1 1.0 t\n")
    result, output = run_cli(["eval", str(run), "--qrels", str(vaswani_slice / "qrels.txt")])
    assert_one_line_error(result, output, "no query of the run has qrels")
    result, output = run_cli(["eval", str(tmp_path / "missing.trec"), "--qrels", str(vaswani_slice / "qrels.txt")])
    assert_one_line_error(result, output, "run file not found")
    result, output = run_cli(["eval", str(run), "--qrels", "no-such/irds-id"])
    assert_one_line_error(result, output, "not a file, a directory or a known ir_datasets id")


# ---------------------------------------------------------------- user text printed literally
def test_line_number_is_not_an_emoji(vaswani_slice, tmp_path):
    """``corpus.jsonl:100: ...`` must not become ``corpus.jsonl💯 ...`` (rich emoji codes)."""
    data = tmp_path / "data"
    shutil.copytree(vaswani_slice, data)
    lines = (data / "corpus.jsonl").read_text().splitlines()[:99]
    (data / "corpus.jsonl").write_text("\n".join(lines) + "\n{bad json\n")
    result, output = run_cli(["train", *fast_overrides(data, tmp_path / "out")])
    assert_one_line_error(result, output, "corpus.jsonl:100: not valid JSON")
    assert "\U0001f4af" not in output


def test_markup_in_a_path_prints_literally(vaswani_slice, tmp_path):
    """A path with ``[bold]`` (or ``[/]``) in it is printed as written, not as rich markup."""
    run = tmp_path / "[bold]runs[/]" / "r:100:.trec"
    result, output = run_cli(["eval", str(run), "--qrels", str(vaswani_slice / "qrels.txt")])
    assert_one_line_error(result, output, f"run file not found: {run}")


def test_markup_in_a_data_path_prints_literally(tmp_path):
    missing = tmp_path / "[bold]x[/bold]:100:"
    result, output = run_cli(["train", "data=local", f"data.path='{missing}'", "model=tiny", "logger=none",
                              f"paths.output_dir={tmp_path / 'out'}"])
    assert_one_line_error(result, output, f"data.path is not a directory: {missing}")


def test_error_and_warning_printers_are_literal(capsys):
    import logging

    from rankexp.cli._common import print_error, show_warnings

    print_error("corpus.jsonl:100: bad [bold]x[/] :smile:")
    show_warnings()
    logging.getLogger("rankexp.test").warning("ids [red]a[/] :100:")
    err = capsys.readouterr().err
    assert "error: corpus.jsonl:100: bad [bold]x[/] :smile:" in err
    assert "warning: ids [red]a[/] :100:" in err
