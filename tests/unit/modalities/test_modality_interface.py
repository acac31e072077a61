"""The Modality interface is the only per-modality table: a fourth modality registered here trains, exports and gets
a card without any other file knowing it; every card's usage snippet runs as printed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hftl.config import load_config
from hftl.deploy.export import export_run
from hftl.deploy.model_card import render_card
from hftl.modalities import get_modality, register_modality, registered_modalities
from hftl.modalities.text import TextModality
from hftl.recipe import run
from hftl.run.record import DataInfo, RunInfo, RunRecord, TrainInfo, read_record
from tests.helpers.tiny_models import tiny_audio_model


class ReversedTextModality(TextModality):
    """A toy modality: text read backwards (word order reversed) before tokenizing."""

    name = "reversed-text"

    @staticmethod
    def _reverse(texts: list[Any]) -> list[Any]:
        return [" ".join(reversed(t.split())) if isinstance(t, str) else t for t in texts]

    def prepare(self, ds, processor, cfg, train, augment_rng=None):
        column = cfg.data.input_column
        reversed_ds = ds.remove_columns(column).add_column(column, self._reverse(ds[column]))
        return super().prepare(reversed_ds, processor, cfg, train, augment_rng)

    def encode(self, processor, cfg, inputs):
        return super().encode(processor, cfg, self._reverse(inputs))


if "reversed-text" not in registered_modalities():
    register_modality(ReversedTextModality())


def snippet(card: str) -> str:
    return re.search(r"```python\n(.*?)\n```", card, re.S).group(1)


def test_a_fourth_modality_trains_exports_and_gets_a_card(quick_overrides):
    results = run(load_config(None, [*quick_overrides, "modality=reversed-text", "method.name=full", "export.enabled=true",
                                     "export.latency_repeats=1"]))  # fmt: skip
    out = Path(next(o for o in quick_overrides if o.startswith("output.dir=")).split("=", 1)[1])
    assert results["run"]["modality"] == "reversed-text" and results["test"]["accuracy"] > 0.5
    report = export_run(out)  # again, explicitly: the export reads the modality back from the run's config
    assert report["parity"]["fp32_max_abs_diff"] < 1e-3
    config = yaml.safe_load((out / "config.yaml").read_text())
    card = render_card(what="merged", repo_id=str(out / "model"), results=read_record(out), config=config)
    assert "AutoModelForSequenceClassification" in card and "reversed-text" in card
    namespace: dict[str, Any] = {}
    exec(snippet(card), namespace)  # noqa: S102  (the card's own code, loading the local model folder)
    assert namespace["model"].config.id2label[0] == "business"


def test_the_audio_card_names_the_audio_classifier_and_its_snippet_runs(tmp_path, capsys):
    folder = tiny_audio_model(tmp_path / "whisper", num_labels=3, clip_seconds=1)
    config = load_config(None, ["modality=audio", "audio.clip_seconds=1", "data.input_column=audio"]).to_dict()
    record = RunRecord(
        run=RunInfo(name="a", modality="audio", method="full", model="local", dataset="tones", seed=0),
        params={"trainable": 1, "total": 1},
        data=DataInfo(labels=["label_0", "label_1", "label_2"], sizes={"train": 3, "validation": 3, "test": 3}),
        train=TrainInfo(runtime_s=1.0, samples_per_second=3.0, steps=1, total_steps=1),
    )  # fmt: skip
    card = render_card(what="merged", repo_id=str(folder), results=record, config=config)
    code = snippet(card)
    assert get_modality("audio").auto_model_name == "AutoModelForAudioClassification"
    assert f"AutoModelForAudioClassification.from_pretrained(\"{folder}\")" in code
    exec(code, {})  # noqa: S102
    assert capsys.readouterr().out.strip() in {"label_0", "label_1", "label_2"}
