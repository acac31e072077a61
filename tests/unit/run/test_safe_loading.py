"""Safe loading: pickled weights are refused unless model.allow_pickle, remote code stays off unless trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from hftl.config import load_config
from hftl.errors import ModelError
from hftl.modalities import get_modality
from hftl.run.models import build_model

LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def pickled_bert(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT saved the old way: pytorch_model.bin (a pickle), no safetensors."""
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path_factory.mktemp("pickled_bert")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    model.save_pretrained(folder, safe_serialization=False)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_bert / name).exists():
            shutil.copy(tiny_bert / name, folder / name)
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    return folder


def test_pickled_weights_are_refused_unless_allowed(pickled_bert, tiny_bert):
    text = get_modality("text")
    with pytest.raises(ModelError, match=r"only pickled weights \(pytorch_model\.bin\).*model\.allow_pickle=true"):
        build_model(load_config(None, [f"model.source={pickled_bert}"]), text, LABELS)
    built = build_model(load_config(None, [f"model.source={pickled_bert}", "model.allow_pickle=true"]), text, LABELS)
    reference = build_model(load_config(None, [f"model.source={tiny_bert}"]), text, LABELS)
    a, b = built.model.bert.state_dict(), reference.model.bert.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)  # the same backbone, read from the pickle


def test_pickled_adapter_is_refused_unless_allowed(tiny_bert, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    lora = LoraConfig(r=2, target_modules=["query", "value"], modules_to_save=["classifier"])
    adapter = tmp_path / "adapter"
    get_peft_model(model, lora).save_pretrained(adapter, safe_serialization=False)
    assert (adapter / "adapter_model.bin").is_file()
    text = get_modality("text")
    with pytest.raises(ModelError, match=r"adapter .* only pickled weights \(adapter_model\.bin\)"):
        build_model(load_config(None, [f"model.source={adapter}", "method.name=lora"]), text, LABELS)
    built = build_model(load_config(None, [f"model.source={adapter}", "method.name=lora", "model.allow_pickle=true"]),
                        text, LABELS)  # fmt: skip
    assert built.adapter == str(adapter)


def test_custom_code_in_a_model_folder_does_not_run_unless_trusted(tiny_bert, tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_bert, folder)
    marker = tmp_path / "code-ran"
    (folder / "custom_config.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "from transformers import BertConfig\n\nclass CustomConfig(BertConfig):\n    model_type = 'hftl-custom'\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="hftl-custom", auto_map={"AutoConfig": "custom_config.CustomConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="trust_remote_code"):
        build_model(load_config(None, [f"model.source={folder}"]), get_modality("text"), LABELS)
    assert not marker.exists()
