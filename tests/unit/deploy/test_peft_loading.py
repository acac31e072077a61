"""A saved hftl adapter loads the standard PEFT way: AutoPeftModel* with the label count and maps the card states.

The bases here are saved with 2 labels and the runs train 3 classes: the situation of the issue (a base built with its
default label count does not fit the adapter's trained head).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hftl.config import load_config
from hftl.recipe import run
from tests.helpers.tiny_models import tiny_text_model, tiny_vision_model
from tests.helpers.vision_data import write_pattern_folder

RUN = ("training.epochs=1", "training.batch_size=16", "training.learning_rate=3e-3", "training.tracking=none",
       "method.name=lora", "method.lora.r=4")  # fmt: skip


def label_kwargs(run_dir: Path) -> dict:
    """The keyword arguments of the model card's snippet: the run's labels, and the base's own head set aside."""
    labels = json.loads((run_dir / "results.json").read_text())["data"]["labels"]
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": {name: i for i, name in enumerate(labels)},
            "ignore_mismatched_sizes": True}  # fmt: skip


def test_text_adapter_loads_with_auto_peft_model_for_sequence_classification(topic_csv, tmp_path):
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = tiny_text_model(tmp_path / "base", num_labels=2)
    out = tmp_path / "run"
    run(load_config(None, [f"model.source={base}", f"data.source={topic_csv}", "text.max_length=16", *RUN,
                           f"output.dir={out}"]))  # fmt: skip
    with pytest.raises(RuntimeError, match=r"size mismatch"):  # the issue: the base keeps its default 2 labels
        AutoPeftModelForSequenceClassification.from_pretrained(str(out / "adapter"))

    model = AutoPeftModelForSequenceClassification.from_pretrained(str(out / "adapter"), **label_kwargs(out)).eval()

    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    batch = tokenizer(["the team will win the game", "money and market news"], padding=True, return_tensors="pt")
    merged = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(**batch).logits.numpy(), merged(**batch).logits.numpy(), atol=1e-5)
    assert model.config.id2label == {0: "business", 1: "film", 2: "sport"}


def test_vision_adapter_loads_with_auto_peft_model(tmp_path):
    from peft import AutoPeftModel
    from transformers import AutoModelForImageClassification

    base = tiny_vision_model(tmp_path / "base", num_labels=2, image_size=28)
    images = write_pattern_folder(tmp_path / "patterns", per_class=8)
    out = tmp_path / "run"
    run(load_config(None, ["modality=vision", f"model.source={base}", f"data.source={images}", "data.input_column=image",
                           "vision.image_size=28", *RUN, f"output.dir={out}"]))  # fmt: skip
    model = AutoPeftModel.from_pretrained(str(out / "adapter"), **label_kwargs(out)).eval()
    merged = AutoModelForImageClassification.from_pretrained(out / "model").eval()
    pixels = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 28, 28)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(model(pixel_values=pixels).logits.numpy(), merged(pixel_values=pixels).logits.numpy(),
                                   atol=1e-5)  # fmt: skip


def test_whisper_adapter_loads_with_auto_peft_model_and_the_card_states_the_cut_encoder(tmp_path):
    """Whisper's encoder is cut to the clip length in training; the card's snippet rebuilds the base that way."""
    import yaml
    from peft import AutoPeftModel
    from transformers import AutoModelForAudioClassification

    from hftl.deploy.model_card import render_card
    from hftl.run.record import read_record
    from tests.helpers.audio_data import write_tone_csv
    from tests.helpers.tiny_models import tiny_audio_model

    base = tiny_audio_model(tmp_path / "base", num_labels=2, clip_seconds=2)
    out = tmp_path / "run"
    run(load_config(None, ["modality=audio", f"model.source={base}", f"data.source={write_tone_csv(tmp_path / 'tones', 8)}",
                           "data.input_column=audio", "audio.clip_seconds=1", *RUN, f"output.dir={out}"]))  # fmt: skip
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    card = render_card(what="adapter", repo_id="me/tones", results=read_record(out),
                       config=yaml.safe_load((out / "config.yaml").read_text()), adapter_config=adapter_config,
                       base_model="someone/whisper")  # fmt: skip
    assert "AutoPeftModel.from_pretrained(" in card and "    max_source_positions=50,  # the encoder cut to 1 s" in card

    model = AutoPeftModel.from_pretrained(str(out / "adapter"), **label_kwargs(out), max_source_positions=50).eval()
    merged = AutoModelForAudioClassification.from_pretrained(out / "model").eval()
    features = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 16, 100)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(model(input_features=features).logits.numpy(),
                                   merged(input_features=features).logits.numpy(), atol=1e-4)  # fmt: skip
