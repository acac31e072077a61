"""Sharing on the Hub, against a loopback Hub (tests/helpers/hub_server.py): push each kind, read the card, load back.

The base model itself is hosted on the loopback Hub, so training, pushing and loading back all go through the
ordinary huggingface_hub / transformers / peft paths with HF_ENDPOINT pointed at it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import HfApi, ModelCard

from hftl.config import Config, PushConfig, load_config
from hftl.deploy.export import export_run, predict
from hftl.deploy.hub import HubError, portable_base, push_run
from hftl.deploy.model_card import render_card
from hftl.errors import ConfigError, ModelError
from hftl.modalities import get_modality
from hftl.recipe import run
from hftl.run.models import build_model
from tests.helpers.hub_server import HubServer, use_loopback_hub

TOKEN = "hf_testsecretLoopbackHub0123456789abcdefXYZ"
BASE_ID = "hftl-test/tiny-bert"
LABELS = ["business", "film", "sport"]
QUICK = ("training.epochs=1", "data.max_train_samples=32")  # runs that only need to finish
QUICK_EXPORT = ["export.latency_repeats=1", "export.num_threads=1", "export.max_samples=8"]
TEXTS = ["the team will win the game", "money and market news", "a new movie with a great actor", "the song is music"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_bert):
    """The loopback Hub, with the tiny base model on it, and every client pointed at it for this module."""
    root = tmp_path_factory.mktemp("hub")
    with HubServer(root / "server", TOKEN) as server, pytest.MonkeyPatch.context() as mp:
        use_loopback_hub(mp, server.url, root / "cache")
        mp.setenv("HF_TOKEN", TOKEN)
        api = HfApi()
        api.create_repo(BASE_ID)
        api.upload_folder(folder_path=str(tiny_bert), repo_id=BASE_ID, commit_message="tiny base")
        yield server
    # Kept beside the server's store: the endpoints this run of the module exercised.
    (root / "routes_used.txt").write_text("\n".join(server.routes_used()) + "\n")
    assert not server.unknown, f"the client used routes the loopback Hub does not serve: {server.unknown}"


def overrides(topic_csv: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"model.source={BASE_ID}",
        f"data.source={topic_csv}",
        "text.max_length=16",
        "training.epochs=2",
        "training.batch_size=16",
        "training.learning_rate=3e-3",
        "training.warmup_ratio=0.0",
        "training.tracking=none",
        "evaluation.batch_size=32",
        "method.lora.r=4",
        f"output.dir={out}",
        *extra,
    ]


@pytest.fixture(scope="module")
def finished(hub, topic_csv, tmp_path_factory) -> Path:
    """A finished LoRA run (trained from the Hub-hosted base) with its ONNX export."""
    out = tmp_path_factory.mktemp("runs") / "topics"
    run(load_config(None, overrides(topic_csv, out)))
    export_run(out, QUICK_EXPORT)
    return out


@pytest.fixture(scope="module")
def pushed_adapter(finished) -> str:
    push_run(finished, PushConfig(repo_id="alice/topics-lora", what="adapter", license="apache-2.0"))
    return "alice/topics-lora"


def logits(model: torch.nn.Module, tokenizer) -> np.ndarray:
    batch = tokenizer(TEXTS, truncation=True, max_length=16, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits.numpy()


def local_logits(run_dir: Path) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = run_dir / "model"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    return logits(model, AutoTokenizer.from_pretrained(model_dir))


def run_snippet(card_text: str) -> dict:
    """Execute the card's usage snippet as a reader would; returns its namespace."""
    code = card_text.split("```python\n", 1)[1].split("\n```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "<model card snippet>", "exec"), namespace)  # noqa: S102  (our own generated code)
    return namespace


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_push_adapter_files_card_and_load_back(hub, finished, pushed_adapter):
    pushed = hub.files(pushed_adapter)
    model_files = files_of(finished / "model")
    expected = {k: v for k, v in files_of(finished / "adapter").items() if k != "README.md"}
    expected |= {k: v for k, v in model_files.items() if k not in ("config.json", "model.safetensors")}
    expected["hftl_config.yaml"] = (finished / "config.yaml").read_bytes()
    assert set(pushed) == set(expected) | {"README.md", ".gitattributes"}
    for name, data in expected.items():
        assert pushed[name] == data, name  # byte for byte
    weights = hub.tree(pushed_adapter)["adapter_model.safetensors"]
    assert weights.lfs_oid == hashlib.sha256(expected["adapter_model.safetensors"]).hexdigest()  # the LFS route

    card = ModelCard(pushed["README.md"].decode())
    meta = card.data.to_dict()
    results = json.loads((finished / "results.json").read_text())
    assert meta["base_model"] == BASE_ID and meta["library_name"] == "peft"
    assert meta["pipeline_tag"] == "text-classification" and meta["license"] == "apache-2.0"
    assert {"hftl", "lora", "peft"} <= set(meta["tags"])
    scores = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert scores["accuracy"] == pytest.approx(results["test"]["accuracy"], abs=1e-6)
    for heading in ("## Method", "## Training data", "## Results", "## ONNX export", "## Usage"):
        assert heading in card.text
    assert "| LoRA rank r / alpha / dropout | 4 / 32 / 0.1 |" in card.text and "86 / 10 / 24" in card.text

    # Loaded back through hftl's ordinary model path (PeftModel.from_pretrained from the Hub) and through the card.
    expected_logits = local_logits(finished)
    cfg = load_config(None, [f"model.source={pushed_adapter}", "method.name=full"])
    built = build_model(cfg, get_modality("text"), LABELS)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pushed_adapter)
    np.testing.assert_allclose(logits(built.model, tokenizer), expected_logits, atol=1e-5)
    snippet = run_snippet(card.text)
    np.testing.assert_allclose(logits(snippet["model"], snippet["processor"]), expected_logits, atol=1e-5)


def test_push_merged_loads_with_the_card_snippet(hub, finished):
    result = push_run(finished, PushConfig(repo_id="alice/topics-merged", what="merged"))
    pushed = hub.files("alice/topics-merged")
    expected = files_of(finished / "model") | {"hftl_config.yaml": (finished / "config.yaml").read_bytes()}
    assert set(pushed) == set(expected) | {"README.md", ".gitattributes"} == set(result.files) | {".gitattributes"}
    assert all(pushed[name] == data for name, data in expected.items())
    card = ModelCard(pushed["README.md"].decode())
    assert card.data.library_name == "transformers" and card.data.base_model == BASE_ID
    assert "license" not in card.data.to_dict() and "License: not stated" in card.text
    snippet = run_snippet(card.text)
    np.testing.assert_allclose(logits(snippet["model"], snippet["processor"]), local_logits(finished), atol=1e-6)


def test_push_onnx_to_a_private_branch(hub, finished, monkeypatch):
    push = PushConfig(repo_id="alice/topics-onnx", what="onnx", private=True, revision="v1", commit_message="int8 v1")
    result = push_run(finished, push)
    assert result.repo_url.endswith("/alice/topics-onnx/tree/v1")
    pushed = hub.files("alice/topics-onnx", "v1")
    expected = files_of(finished / "onnx")
    assert set(pushed) == set(expected) | {"README.md", ".gitattributes"}
    assert all(pushed[name] == data for name, data in expected.items())
    assert set(hub.files("alice/topics-onnx", "main")) == {".gitattributes"}  # main untouched
    assert hub.last_message("alice/topics-onnx", "v1") == "int8 v1"
    tree = hub.tree("alice/topics-onnx", "v1")
    assert tree["model.onnx"].lfs_oid and tree["model_quantized.onnx"].lfs_oid and not tree["config.json"].lfs_oid

    card = ModelCard(pushed["README.md"].decode())
    assert card.data.library_name == "onnx" and "onnx" in card.data.tags
    report = json.loads(expected["export_report.json"])
    assert f"{report['parity']['fp32_max_abs_diff']:.2e}" in card.text and "Latency" in card.text
    assert 'revision="v1"' in card.text
    assert "hftl serve FOLDER" in card.text and "/predict" in card.text  # the card says how to serve it
    # The snippet prints predict()'s output; run it and compare with the local export.
    snippet = run_snippet(card.text)
    assert predict(snippet["folder"], ["A text to classify."], quantized=True) == predict(
        finished / "onnx", ["A text to classify."], quantized=True
    )
    assert HfApi().file_exists("alice/topics-onnx", "model.onnx", revision="v1")
    assert not HfApi(token=False).file_exists("alice/topics-onnx", "model.onnx", revision="v1")  # private


def test_push_at_the_end_of_training(hub, topic_csv, tmp_path):
    out = tmp_path / "pushed"
    extra = [*QUICK, "push.enabled=true", "push.repo_id=alice/at-the-end", "push.what=merged"]
    run(load_config(None, overrides(topic_csv, out, *extra)))
    pushed = hub.files("alice/at-the-end")
    assert pushed["model.safetensors"] == (out / "model" / "model.safetensors").read_bytes()
    assert hub.last_message("alice/at-the-end").startswith("hftl: merged of run pushed (lora")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failed_pushes_are_clear_change_nothing_and_hide_the_token(hub, finished, monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    before = files_of(finished)
    push = PushConfig(repo_id="alice/never", what="adapter")

    def refused(match: str) -> None:
        with pytest.raises(HubError, match=match) as info:
            push_run(finished, push)
        assert TOKEN not in str(info.value)
        assert files_of(finished) == before

    with monkeypatch.context() as mp:
        mp.delenv("HF_TOKEN")
        refused("no Hugging Face token")
    with monkeypatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        refused("offline mode")
    with monkeypatch.context() as mp:
        mp.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
        refused("could not reach the Hub")
    with monkeypatch.context() as mp:
        mp.setenv("HF_TOKEN", "hf_wrongtoken")
        refused("rejected the token")
    assert "alice/never" not in hub.repos
    hub.refuse_writes = True
    try:
        refused("refused to write to alice/never .*HTTP 403")
    finally:
        hub.refuse_writes = False
    # A run without the asked-for part fails before any network call.
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("results.json", "config.yaml"):
        shutil.copy(finished / name, partial / name)
    with pytest.raises(HubError, match="lacks model.onnx"):
        push_run(partial, PushConfig(repo_id="alice/never", what="onnx"))


def test_token_is_in_no_file_log_or_output(hub, finished, tmp_path_factory, caplog, capsys):
    from hftl.cli import main

    caplog.set_level(logging.DEBUG)  # every logger, the client's and urllib3's included
    assert main(["push", str(finished), "--repo-id", "alice/via-cli", "--what", "merged", "--license", "mit"]) == 0
    # A token put in a config is refused without echoing it.
    assert main(["config", "recipes/configs/text/minilm_lora.yaml", f"push.token={TOKEN}"]) == 2
    out = capsys.readouterr()
    assert "pushed merged" in out.out and "push.token" in out.err
    for text in (out.out, out.err, caplog.text):
        assert TOKEN not in text
    secret = TOKEN.encode()
    scanned = 0
    for path in tmp_path_factory.getbasetemp().rglob("*"):  # runs, the Hub's store, the download cache
        if path.is_file() and not path.is_symlink():
            assert secret not in path.read_bytes(), path
            scanned += 1
    assert scanned > 20


def test_adapter_sources_local_and_hub(hub, finished, pushed_adapter):
    from peft import PeftModel

    text = get_modality("text")
    expected = local_logits(finished)
    # a local adapter folder: merged for method=full; its tokenizer comes from the base (the folder has none)
    built = build_model(load_config(None, [f"model.source={finished / 'adapter'}", "method.name=full"]), text, LABELS)
    assert not isinstance(built.model, PeftModel) and built.head_modules == ["classifier"]
    assert built.source == BASE_ID and built.adapter == str(finished / "adapter")
    from transformers import AutoTokenizer

    np.testing.assert_allclose(logits(built.model, AutoTokenizer.from_pretrained(BASE_ID)), expected, atol=1e-5)
    # a Hub adapter with method=lora: the same adapter keeps training (LoRA weights and head trainable)
    built = build_model(load_config(None, [f"model.source={pushed_adapter}", "method.name=lora"]), text, LABELS)
    assert isinstance(built.model, PeftModel) and built.source == pushed_adapter
    trainable = [n for n, p in built.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    results = json.loads((finished / "results.json").read_text())
    assert sum(p.numel() for p in built.model.parameters() if p.requires_grad) == results["params"]["trainable"]
    # the saved head fixes the label count
    with pytest.raises(ModelError, match="label count"):
        build_model(load_config(None, [f"model.source={pushed_adapter}"]), text, ["a", "b"])


def test_training_continues_a_hub_adapter(hub, pushed_adapter, topic_csv, tmp_path):
    out = tmp_path / "continued"
    results = run(load_config(None, overrides(topic_csv, out, *QUICK, f"model.source={pushed_adapter}")))
    assert results["run"]["model"] == pushed_adapter
    saved = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == BASE_ID and saved["r"] == 4


def test_export_merges_an_adapter_only_run(hub, topic_csv, tmp_path):
    out = tmp_path / "adapter-only"
    run(load_config(None, overrides(topic_csv, out, *QUICK, "output.save_merged=false")))
    assert not (out / "model").exists()
    report = export_run(out, [*QUICK_EXPORT, "export.quantize=false"])
    assert (out / "model" / "config.json").is_file() and (out / "onnx" / "model.onnx").is_file()
    assert report["parity"]["fp32_max_abs_diff"] <= 1e-4


def test_zoo_base_is_named_by_its_hub_id(finished, tmp_path, monkeypatch):
    from hftl import zoo
    from hftl.deploy import hub as hftl_hub

    monkeypatch.setenv("HFTL_HOME", str(tmp_path / "home"))
    folder = zoo.entry_path("minilm-l6")
    folder.mkdir(parents=True)
    minilm = "sentence-transformers/all-MiniLM-L6-v2"
    assert portable_base(str(folder)) == minilm  # what a run records
    assert portable_base("zoo:minilm-l6") == minilm
    assert portable_base(str(tmp_path)) is None  # a plain local folder has no Hub id
    assert portable_base("someone/some-model") == "someone/some-model"
    # A run whose adapter recorded the zoo folder pushes an adapter_config naming the Hub id instead.
    run_dir = tmp_path / "zoo-run"
    shutil.copytree(finished, run_dir, ignore=shutil.ignore_patterns("checkpoints", "onnx"))
    adapter_config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = str(folder)
    (run_dir / "adapter" / "adapter_config.json").write_text(json.dumps(adapter_config))
    results = json.loads((run_dir / "results.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    files, card = hftl_hub._prepare(run_dir, PushConfig(repo_id="me/x"), results, config)
    pushed = json.loads(files["adapter_config.json"])
    assert pushed == {**adapter_config, "base_model_name_or_path": minilm}
    assert ModelCard(card).data.base_model == minilm
    # the card's snippet loads the adapter the PEFT way: AutoPeftModel* builds the base its adapter_config names
    assert 'AutoPeftModelForSequenceClassification.from_pretrained(\n    "me/x",\n    num_labels=len(labels)' in card


def test_card_is_a_pure_function_of_the_run_files():
    results = {
        "run": {"name": "r", "modality": "text", "method": "full", "model": "someone/base", "dataset": "someone/reviews",
                "seed": 0, "versions": {"torch": "2.13.0"}},
        "params": {"trainable": 10, "total": 10},
        "data": {"labels": ["neg", "pos"], "train": 8, "validation": 2, "test": 2},
        "train": {"runtime_s": 1.0, "samples_per_second": 8.0, "epochs_completed": 1, "steps": 1, "total_steps": 1,
                  "best_step": 1, "metric_for_best": "accuracy"},
        "eval": {"accuracy": 0.5},
        "test": {"accuracy": 1.0, "loss": 0.1},
    }
    config = Config().to_dict()
    config["data"]["source"] = "someone/reviews"
    text = render_card(what="merged", repo_id="me/m", results=results, config=config, base_model="someone/base",
                       dataset_id="someone/reviews", license="mit")  # fmt: skip
    assert text == render_card(what="merged", repo_id="me/m", results=results, config=config, base_model="someone/base",
                               dataset_id="someone/reviews", license="mit")  # fmt: skip
    meta = ModelCard(text).data.to_dict()
    assert meta["datasets"] == ["someone/reviews"] and meta["license"] == "mit" and meta["base_model"] == "someone/base"
    assert "## ONNX export" not in text and "## Results" in text
    with pytest.raises(ValueError, match="what"):
        render_card(what="gguf", repo_id="me/m", results=results, config=config)


def test_push_config_checks():
    with pytest.raises(ConfigError, match="push.repo_id"):
        PushConfig(enabled=True)
    with pytest.raises(ConfigError, match="push.repo_id"):
        PushConfig(repo_id="not a repo")
    with pytest.raises(ConfigError, match="push.what=adapter needs method.name=lora"):
        load_config(None, ["push.enabled=true", "push.repo_id=me/x", "method.name=full"])
    with pytest.raises(ConfigError, match="push.what=onnx needs export.enabled=true"):
        load_config(None, ["push.enabled=true", "push.repo_id=me/x", "push.what=onnx"])
    with pytest.raises(ConfigError, match="secrets never go into a config") as info:
        load_config(None, [f"push.token={TOKEN}"])
    assert TOKEN not in str(info.value)
    assert "push" in Config().to_dict() and "token" not in Config().to_dict()["push"]
