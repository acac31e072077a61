"""A trained run on the user's other data: `hftl evaluate` (labels matched by name, per-class metrics, confusion matrix
PNG, torch and ONNX backends), batch `hftl predict` (folder, CSV, JSONL and list-file inputs to CSV / JSONL), and
per-class metrics in results.json and `hftl summary`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hftl.cli import main
from hftl.config import load_config
from hftl.deploy.export import export_run, predict
from hftl.errors import DataError
from hftl.evaluate_run import evaluate_run
from hftl.recipe import run
from hftl.report import summarize
from tests.helpers.text_data import write_topic_csv

QUICK_EXPORT = ["export.latency_repeats=1", "export.num_threads=1", "export.max_samples=8"]


@pytest.fixture(scope="module")
def trained(tiny_bert, topic_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "topics"
    run(load_config(None, [
        f"model.source={tiny_bert}", f"data.source={topic_csv}", "text.max_length=16", "training.epochs=3",
        "training.batch_size=16", "training.learning_rate=3e-3", "training.warmup_ratio=0.0", "training.tracking=none",
        "method.name=full", f"output.dir={out}",
    ]))  # fmt: skip
    export_run(out, QUICK_EXPORT)
    return out


def renamed_subset(path: Path, keep: tuple[str, ...], seed: int) -> Path:
    """New labelled data with other column names (review, topic) and a subset of the run's classes."""
    rows = list(csv.DictReader(write_topic_csv(path.with_suffix(".orig.csv"), rows_per_class=10, seed=seed).open()))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "review", "topic"])
        writer.writeheader()
        writer.writerows({"id": i, "review": r["text"], "topic": r["label"]} for i, r in enumerate(rows) if r["label"] in keep)
    return path


# -- 6. per-class metrics in every run --------------------------------------------------------------------------


def test_results_and_summary_hold_per_class_metrics_and_the_confusion_matrix(trained):
    results = json.loads((trained / "results.json").read_text())
    per_class = results["per_class"]
    assert per_class["split"] == "test" and per_class["labels"] == ["business", "film", "sport"]
    matrix = np.array(per_class["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == results["data"]["test"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(results["test"]["accuracy"])
    supports = [per_class["classes"][n]["support"] for n in per_class["labels"]]
    assert supports == matrix.sum(axis=1).tolist()
    film = per_class["classes"]["film"]
    assert film["recall"] == pytest.approx(matrix[1, 1] / matrix[1].sum())
    assert film["precision"] == pytest.approx(matrix[1, 1] / max(matrix[:, 1].sum(), 1))
    text = summarize(trained)
    assert "precision" in text and "confusion matrix (rows: true label" in text and "film" in text
    default = json.loads((trained / "onnx" / "export_report.json").read_text())["default"]
    assert f"  onnx served  {default['variant']}: {default['reason']}" in text


# -- 2. hftl evaluate -------------------------------------------------------------------------------------------


def test_evaluate_scores_a_subset_of_classes_under_other_column_names(trained, tmp_path, capsys):
    data = renamed_subset(tmp_path / "new_batch.csv", ("sport", "film"), seed=7)
    code = main(["evaluate", str(trained), "--data", str(data), "data.input_column=review", "data.label_column=topic"])
    assert code == 0
    printed = capsys.readouterr().out
    out = trained / "evaluations" / "new_batch"
    record = json.loads((out / "evaluation.json").read_text())
    assert record["rows"] == 20 and record["split"] == "train" and record["backend"] == "torch"
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and {r["label"] for r in rows} == {"sport", "film"}
    accuracy = np.mean([r["label"] == r["predicted"] for r in rows])
    assert record["metrics"]["accuracy"] == pytest.approx(accuracy)
    per_class = record["per_class"]["classes"]
    assert per_class["business"]["support"] == 0 and per_class["sport"]["support"] == 10
    assert Image.open(out / "confusion_matrix.png").size[0] > 200
    assert f"accuracy {accuracy:.4f}" in printed and "sport" in printed and "confusion matrix" in printed
    assert f"evaluated    {data} (20 rows, torch): accuracy {accuracy:.4f}" in summarize(trained)


def test_evaluate_refuses_labels_the_model_never_saw_naming_them(trained, tmp_path, capsys):
    data = tmp_path / "other.csv"
    data.write_text("text,label\nthe team won,sport\nrain all day,weather\nsnow,weather\nwind,climate\n")
    with pytest.raises(DataError, match=r"labels the model was not trained on: \['climate', 'weather'\]"):
        evaluate_run(trained, str(data))
    assert main(["evaluate", str(trained), "--data", str(data)]) == 2
    assert "hftl evaluate: error:" in capsys.readouterr().err
    assert not (trained / "evaluations" / "other").exists()


def test_evaluate_with_the_onnx_backends_agrees_with_torch(trained, tmp_path):
    data = renamed_subset(tmp_path / "batch.csv", ("sport", "film", "business"), seed=11)
    settings = ["data.input_column=review", "data.label_column=topic"]
    torch_record = evaluate_run(trained, str(data), settings)
    onnx_record = evaluate_run(trained, str(data), settings, backend="onnx")
    int8_record = evaluate_run(trained, str(data), settings, backend="onnx-int8")
    assert Path(onnx_record["dir"]).name == "batch-onnx" and Path(int8_record["dir"]).name == "batch-onnx-int8"
    assert onnx_record["per_class"]["confusion_matrix"] == torch_record["per_class"]["confusion_matrix"]
    assert abs(int8_record["metrics"]["accuracy"] - torch_record["metrics"]["accuracy"]) <= 0.1


def test_predict_runs_the_variant_its_export_measured_fastest_on_this_cpu(trained, tmp_path, caplog):
    import shutil

    from hftl.deploy.default_variant import this_cpu
    from hftl.deploy.export import load_classifier

    recorded = json.loads((trained / "onnx" / "export_report.json").read_text())
    assert recorded["default"]["variant"] in {"fp32", "int8"} and recorded["cpu"]["model"] == this_cpu()["model"]
    texts = ["the team will win the game", "money and market news"]
    # what the export decided is what `hftl predict` runs, and it says which and why
    variant = recorded["default"]["variant"]
    assert predict(trained / "onnx", texts) == predict(trained / "onnx", texts, quantized=variant == "int8")
    caplog.clear()
    assert main(["predict", str(trained), *texts]) == 0
    assert f"onnxruntime {variant}, " in caplog.text and recorded["default"]["reason"][:40] in caplog.text

    export = tmp_path / "onnx"
    shutil.copytree(trained / "onnx", export)

    def served_file(int8_ms: float, int8_accuracy: float, cpu: dict, *flags: str) -> str:
        latency = {b: {"onnx_fp32": 10.0, "onnx_int8": int8_ms} for b in ("batch_1", "batch_32")}
        accuracy = {**recorded["accuracy"], "onnx_fp32": 0.9, "onnx_int8": int8_accuracy}
        report = {**recorded, "latency_ms": latency, "accuracy": accuracy, "cpu": cpu}
        (export / "export_report.json").write_text(json.dumps(report))
        quantized, precision = "--quantized" in flags, "fp32" if "fp32" in flags else "measured"
        return load_classifier(export, quantized=quantized, precision=precision)[3].model_path.name

    here = this_cpu()
    assert served_file(5.0, 0.896, here) == "model_quantized.onnx"  # 2x, 0.4 point: int8
    assert served_file(5.0, 0.894, here) == "model.onnx"  # 2x, 0.6 point: fp32
    assert served_file(5.0, 0.9, {"model": "Another CPU", "flags": here["flags"]}) == "model.onnx"  # timed elsewhere
    assert served_file(5.0, 0.9, here, "fp32") == "model.onnx"  # asked for
    assert served_file(20.0, 0.9, here, "--quantized") == "model_quantized.onnx"  # asked for


def test_the_pytorch_model_of_a_run_with_an_export_is_asked_for_with_backend_torch(trained, tmp_path, capsys, caplog):
    from hftl.run import cpu

    texts = ["the team will win the game", "money and market news"]
    # bf16 of a run whose fastest export is ONNX: refused, naming the flags that run bf16
    assert main(["predict", str(trained), "--precision", "bf16", *texts]) == 2
    err = capsys.readouterr().err
    assert "--precision bf16: onnxruntime has no bf16 path on CPU" in err and "--backend torch" in err
    assert "Traceback" not in err
    caplog.clear()
    assert main(["predict", str(trained), "--backend", "torch", "-o", str(tmp_path / "pt.jsonl"), *texts]) == 0
    assert f"{trained / 'model'}: torch fp32, the run's PyTorch model" in caplog.text
    pt = [(r["label"], r["score"]) for r in map(json.loads, (tmp_path / "pt.jsonl").read_text().splitlines())]
    onnx_fp32 = predict(trained / "onnx", texts, precision="fp32")
    assert [label for label, _ in pt] == [label for label, _ in onnx_fp32]
    assert [score for _, score in pt] == pytest.approx([score for _, score in onnx_fp32], abs=1e-4)
    code = main(["predict", str(trained), "--backend", "torch", "--precision", "bf16", *texts])
    if cpu.native_bf16():  # bf16 autocast: the same labels on these confident inputs
        assert code == 0 and "torch bf16, asked for (--precision bf16)" in caplog.text
    else:
        assert code == 2 and "bf16" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "flags", "message"),
    [
        ("", ["--backend", "torch", "--quantized"], "--quantized: torch (the run's PyTorch model) has no int8 model; "
                                                     "it runs with --backend onnxruntime"),
        ("onnx", ["--backend", "torch"], "give the run folder RUN_DIR, not one of its exports"),
        ("", ["--backend", "openvino"], "holds no openvino export"),
        ("onnx", ["--precision", "auto"], "--precision auto: onnxruntime has no bf16 path on CPU"),
    ],
    ids=["torch-int8", "torch-of-an-export", "missing-openvino", "auto-on-onnxruntime"],
)  # fmt: skip
def test_impossible_backend_and_variant_combinations_are_refused_naming_the_flag(trained, capsys, target, flags, message):
    assert main(["predict", str(trained / target), *flags, "some text"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert main(["serve", str(trained / target), *flags]) == 2  # serve takes the same flags, refused before starting
    assert message in capsys.readouterr().err


def test_serve_runs_the_pytorch_model_only_when_asked(trained, tmp_path, capsys):
    from hftl.serve.model import ServedModel
    from hftl.serve.settings import ServeSettings, resolve_export_dir

    unexported = tmp_path / "unexported"  # the run without its exports
    unexported.mkdir()
    (unexported / "config.yaml").write_bytes((trained / "config.yaml").read_bytes())
    (unexported / "model").symlink_to(trained / "model", target_is_directory=True)
    assert main(["serve", str(unexported)]) == 2  # a server runs an export unless told otherwise
    err = capsys.readouterr().err
    assert "has no export to serve" in err and "serve the run's PyTorch model with --backend torch" in err
    folder, backend = resolve_export_dir(trained, "torch")
    assert (folder, backend) == ((trained / "model").resolve(), "torch")
    model = ServedModel(ServeSettings(str(folder), backend="torch"))
    texts = ["the team will win the game", "money and market news"]
    assert model.name == trained.name and model.backend_name == "torch-fp32"
    served = model.top_k(model.run(model.encode(texts)), 1)
    expected = predict(trained, texts, backend="torch")
    assert [row[0][0] for row in served] == [label for label, _ in expected]
    assert [row[0][1] for row in served] == pytest.approx([score for _, score in expected], abs=1e-6)


def test_served_requests_preprocessed_alone_stack_into_the_batch_one_call_gives(trained):
    """What the batcher relies on when a batch's preprocessing failed (hftl.serve.batcher._stack): the fp32 text
    model's features keep the export's fixed length per request (its padding is trimmed in the model call)."""
    from hftl.serve.batcher import _stack
    from hftl.serve.model import ServedModel
    from hftl.serve.settings import ServeSettings

    model = ServedModel(ServeSettings(str(trained / "onnx"), precision="fp32"))
    texts = ["the team will win the game", "money", "a great new film with a good actor and a long story"]
    alone = [model.encode([text]) for text in texts]
    together = model.encode(texts)
    stacked = _stack(alone)
    assert stacked is not None and stacked.keys() == together.keys()
    for key in together:
        np.testing.assert_array_equal(stacked[key], together[key])
    np.testing.assert_allclose(model.run(stacked), model.run(together), atol=1e-6)


# -- 3. batch hftl predict --------------------------------------------------------------------------------------


def test_batch_predict_reads_a_folder_a_csv_column_a_jsonl_and_a_list_file(trained, tmp_path, capsys):
    texts = ["the team will win the game", "money and market news", "a new movie with a great actor", "the song is music"]
    folder = tmp_path / "notes"
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f"note{i}.txt").write_text(text + "\n")
    (tmp_path / "table.csv").write_text("id,body\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts)))
    (tmp_path / "table.jsonl").write_text("".join(json.dumps({"body": t}) + "\n\n" for t in texts))
    (tmp_path / "list.lst").write_text("\n".join(texts) + "\n")
    expected = [label for label, _ in predict(trained / "onnx", texts)]

    output = tmp_path / "out.csv"
    assert main(["predict", str(trained), str(folder), "--output", str(output), "--batch-size", "3", "--top-k", "2"]) == 0
    with output.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["input"] for r in rows] == [str((folder / f"note{i}.txt").absolute()) for i in range(4)]
    assert [r["label"] for r in rows] == expected
    top = json.loads(rows[0]["top_k"])
    assert len(top) == 2 and top[0]["label"] == rows[0]["label"] and top[0]["score"] == pytest.approx(float(rows[0]["score"]))

    jsonl = tmp_path / "out.jsonl"
    args = ["predict", str(trained / "onnx"), str(tmp_path / "table.csv"), str(tmp_path / "table.jsonl"),
            str(tmp_path / "list.lst"), "--column", "body", "--output", str(jsonl)]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["label"] for r in records] == expected * 3
    assert [r["id"] for r in records[:4]] == ["0", "1", "2", "3"] and [r["line"] for r in records[:4]] == [2, 3, 4, 5]
    assert [r["line"] for r in records[4:8]] == [1, 3, 5, 7]  # JSON Lines: blank lines between the records
    assert records[8]["input"] == texts[0] and len(records[8]["top_k"]) == 3

    capsys.readouterr()
    assert main(["predict", str(trained / "onnx"), *texts[:2]]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["label", "score", "next"] and texts[0] in table[1] and table[1].startswith(expected[0])


def test_batch_predict_of_a_missing_column_names_the_columns(trained, tmp_path, capsys):
    (tmp_path / "t.csv").write_text("id,body\n0,hello\n")
    assert main(["predict", str(trained), str(tmp_path / "t.csv"), "--column", "text"]) == 2
    assert "no column 'text' (columns: ['id', 'body']); pass --column NAME" in capsys.readouterr().err


def test_batch_predict_of_a_latin1_table_names_the_byte_and_takes_encoding(trained, tmp_path, capsys):
    table = tmp_path / "menu.csv"
    table.write_bytes("text\nle café du sport\nthé et film\n".encode("latin-1"))
    assert main(["predict", str(trained), str(table)]) == 2
    assert "byte 0xe9 at byte offset 11 (line 2)" in capsys.readouterr().err
    output = tmp_path / "menu.jsonl"
    assert main(["predict", str(trained), str(table), "--encoding", "latin-1", "-o", str(output)]) == 0
    assert [json.loads(line)["input"] for line in output.read_text().splitlines()] == ["le café du sport", "thé et film"]
