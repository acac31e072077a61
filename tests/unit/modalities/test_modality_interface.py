"""The Modality interface is the only per-modality table: a fourth modality registered here brings its own config
section, trains, exports and gets a card without any other file knowing it; every card's usage snippet runs as printed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from hftl import modalities
from hftl.config import describe, load_config, save_config
from hftl.deploy.export import export_run
from hftl.deploy.model_card import render_card
from hftl.errors import ConfigError
from hftl.modalities import get_modality, register_modality
from hftl.modalities.text import TextModality
from hftl.recipe import run
from hftl.run.record import DataInfo, RunInfo, RunRecord, TrainInfo, read_record
from tests.helpers.tiny_models import tiny_audio_model


@dataclass
class ReversedTextConfig:
    """The toy modality's own section (``reversed-text:`` in YAML); hftl/config/ does not know it."""

    reverse_words: bool = field(default=True, metadata={"help": "read the words backwards (false: as written)"})


class ReversedTextModality(TextModality):
    """A toy modality: text read backwards (word order reversed) before tokenizing."""

    name = "reversed-text"
    config_section = ReversedTextConfig  # text's own settings (cfg.text) still apply: it tokenizes as text does

    def _reverse(self, cfg, texts: list[Any]) -> list[Any]:
        if not cfg.section(self.name).reverse_words:
            return texts
        return [" ".join(reversed(t.split())) if isinstance(t, str) else t for t in texts]

    def prepare(self, ds, processor, cfg, train, augment_rng=None):
        column = cfg.data.input_column
        reversed_ds = ds.remove_columns(column).add_column(column, self._reverse(cfg, ds[column]))
        return super().prepare(reversed_ds, processor, cfg, train, augment_rng)

    def encode(self, processor, cfg, inputs):
        return super().encode(processor, cfg, self._reverse(cfg, inputs))


@pytest.fixture(autouse=True)
def reversed_text(monkeypatch):
    """Registered for this module's tests only (on a copy of the table, restored after): configs the other tests save
    carry every registered modality's section, and the fresh processes that read them back do not know this one."""
    monkeypatch.setattr(modalities, "_REGISTRY", dict(modalities._REGISTRY))
    register_modality(ReversedTextModality())


def snippet(card: str) -> str:
    return re.search(r"```python\n(.*?)\n```", card, re.S).group(1)


def test_a_fourth_modality_brings_its_own_config_section(tmp_path, tiny_bert):
    cfg = load_config(None, ["modality=reversed-text", "reversed-text.reverse_words=false", "text.max_length=16"])
    assert cfg.section("reversed-text") == ReversedTextConfig(reverse_words=False) and cfg.text.max_length == 16
    assert ("reversed-text.reverse_words", "read the words backwards (false: as written)", True) in describe()
    save_config(cfg, tmp_path / "config.yaml")  # the section is written and read back like the built-in ones
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["reversed-text"] == {"reverse_words": False} and load_config(tmp_path / "config.yaml") == cfg
    with pytest.raises(ConfigError, match=r"unknown key 'reversed-text.reverse'.*known keys here: reverse_words"):
        load_config(None, ["reversed-text.reverse=false"])
    with pytest.raises(ConfigError, match=r"reversed-text.reverse_words \(command line.*expected bool"):
        load_config(None, ["reversed-text.reverse_words=3"])
    # the setting reaches the modality: the same text encodes differently with the words reversed
    modality = get_modality("reversed-text")
    processor = modality.load_processor(str(tiny_bert), cfg)
    as_written = modality.encode(processor, cfg, ["the team win game"])["input_ids"]
    backwards = modality.encode(processor, load_config(None, ["text.max_length=16"]), ["the team win game"])["input_ids"]
    assert as_written.tolist() != backwards.tolist()


def test_a_fourth_modality_trains_exports_and_gets_a_card(quick_overrides):
    results = run(load_config(None, [*quick_overrides, "modality=reversed-text", "method.name=full", "export.enabled=true",
                                     "export.latency_repeats=1", "reversed-text.reverse_words=true"]))  # fmt: skip
    out = Path(next(o for o in quick_overrides if o.startswith("output.dir=")).split("=", 1)[1])
    assert results["run"]["modality"] == "reversed-text" and results["test"]["accuracy"] > 0.5
    assert yaml.safe_load((out / "config.yaml").read_text())["reversed-text"] == {"reverse_words": True}
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
