"""Scale-out: the ready accelerate config files, as accelerate's own launcher reads them, and the recipe options that go
with them (mixed precision, gradient checkpointing) on the tiny BERT."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hftl.config import load_config
from hftl.errors import ConfigError
from hftl.recipe import run
from hftl.run.cpu import native_bf16
from tests.helpers.paths import REPO

ACCELERATE_CONFIGS = sorted((REPO / "recipes" / "accelerate").glob("*.yaml"))
EXPECTED = {"single_gpu": "NO", "multi_gpu": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED"}


def test_there_is_one_config_per_launch_kind():
    assert sorted(p.stem for p in ACCELERATE_CONFIGS) == sorted(EXPECTED)


def _launch_env(path: Path) -> tuple[object, dict[str, str]]:
    """The environment `accelerate launch --config_file path` gives the training processes (no process started)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import (
        prepare_deepspeed_cmd_env,
        prepare_multi_gpu_env,
        prepare_simple_launcher_cmd_env,
    )

    args = launch_command_parser().parse_args(["--config_file", str(path), "recipes/finetune.py"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:  # what accelerate's launch() sets before its DeepSpeed launcher
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        return defaults, prepare_deepspeed_cmd_env(args)[1]
    if args.use_fsdp or args.multi_gpu:
        return defaults, prepare_multi_gpu_env(args)
    return defaults, prepare_simple_launcher_cmd_env(args)[1]


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_config_is_what_accelerate_launch_reads(path, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    config = ClusterConfig.from_yaml_file(str(path))  # an unknown top-level key or distributed_type fails here
    assert config.distributed_type.value == EXPECTED[path.stem]
    assert config.mixed_precision == "no"  # precision is the recipe's option: training.mixed_precision
    # accelerate copies nested keys onto launch arguments without checking them: a typo would be silently ignored
    known = {action.dest for action in launch_command_parser()._actions}
    nested = [k if k.startswith("fsdp") else f"fsdp_{k}" for k in config.fsdp_config] + list(config.deepspeed_config)
    assert not [k for k in nested if k not in known]

    _, env = _launch_env(path)
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"
    assert "ACCELERATE_GRADIENT_ACCUMULATION_STEPS" not in env  # training.gradient_accumulation_steps decides
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if path.stem == "fsdp":
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin()  # what Accelerator builds from that environment
        assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
        assert plugin.state_dict_type.name == "SHARDED_STATE_DICT" and not plugin.activation_checkpointing
    if path.stem == "deepspeed_zero2":
        from accelerate.utils import DeepSpeedPlugin

        ds = DeepSpeedPlugin().deepspeed_config
        assert ds["zero_optimization"]["stage"] == 2 and ds["gradient_accumulation_steps"] == "auto"
        assert ds["gradient_clipping"] == load_config(None).training.max_grad_norm


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_each_config_shows_its_launch_line_and_the_readme_has_it(path):
    line = f"accelerate launch --config_file recipes/accelerate/{path.name}"
    assert line in path.read_text()
    assert line in (REPO / "README.md").read_text()


def test_a_launcher_precision_the_recipe_does_not_ask_for_is_refused(quick_overrides, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    with pytest.raises(ConfigError, match=r"mixed precision 'bf16', but training\.mixed_precision=no.*=bf16"):
        run(load_config(None, quick_overrides))
    out = Path(next(o for o in quick_overrides if o.startswith("output.dir=")).split("=", 1)[1])
    assert not out.exists()


def test_a_launcher_accumulation_that_differs_from_the_recipe_is_refused(quick_overrides, monkeypatch):
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "4")  # what a DeepSpeed config's value sets
    with pytest.raises(ConfigError, match=r"gradient_accumulation_steps=4, but training\.gradient_accumulation_steps=1"):
        run(load_config(None, quick_overrides))


def test_gradient_checkpointing_is_on_in_the_model(tiny_bert):
    from hftl.modalities import get_modality
    from hftl.run.methods import apply_method
    from hftl.run.models import build_model, enable_gradient_checkpointing

    cfg = load_config(None, [f"model.source={tiny_bert}", "method.name=lora"])
    text = get_modality("text")
    model = apply_method(cfg, text, build_model(cfg, text, ["a", "b", "c"]))
    enable_gradient_checkpointing(model)
    assert model.get_base_model().bert.encoder.gradient_checkpointing


def test_gradient_checkpointing_trains_the_same_model(quick_overrides, tmp_path):
    # Non-reentrant checkpointing replays the saved RNG state, so even dropout masks repeat: same losses, same weights.
    common = [*quick_overrides, "method.name=lora", "training.epochs=2", "training.tracking=none"]
    plain = run(load_config(None, [*common, f"output.dir={tmp_path / 'plain'}"]))
    checkpointed = run(load_config(None, [*common, "training.gradient_checkpointing=true",
                                          f"output.dir={tmp_path / 'checkpointed'}"]))  # fmt: skip
    assert (plain["run"]["gradient_checkpointing"], checkpointed["run"]["gradient_checkpointing"]) == (False, True)
    assert checkpointed["train"]["steps"] == plain["train"]["steps"]
    for a, b in zip(plain["history"], checkpointed["history"], strict=True):
        assert b["eval/loss"] == pytest.approx(a["eval/loss"], abs=1e-6)
    w1 = load_file(tmp_path / "plain" / "adapter" / "adapter_model.safetensors")
    w2 = load_file(tmp_path / "checkpointed" / "adapter" / "adapter_model.safetensors")
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-6
    assert any(torch.count_nonzero(v) for k, v in w2.items() if re.search(r"lora_B", k))  # it did train


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no bf16 instructions: hftl refuses bf16 here")
def test_runs_in_one_process_may_use_different_precisions(quick_overrides, tmp_path):
    """accelerate's state is a process-wide singleton; a notebook or sweep runs several recipes in one process."""
    first = run(load_config(None, [*quick_overrides, "training.epochs=1", "training.mixed_precision=bf16"]))
    second = run(load_config(None, [*quick_overrides, "training.epochs=1", "training.mixed_precision=no",
                                    f"output.dir={tmp_path / 'second'}"]))  # fmt: skip
    assert (first["run"]["mixed_precision"], second["run"]["mixed_precision"]) == ("bf16", "no")


def _bytes_saved_for_backward(model, batch) -> int:
    """Bytes of the tensors autograd keeps from the forward pass for the backward pass (activation memory)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    return sum(seen.values())


def test_gradient_checkpointing_drops_activation_memory(tmp_path):
    """On a model deep and wide enough to show it: what autograd keeps between forward and backward shrinks."""
    from transformers import BertConfig, BertForSequenceClassification

    from hftl.run.models import enable_gradient_checkpointing

    config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=8, num_attention_heads=4, intermediate_size=256,
                        max_position_embeddings=256, num_labels=2)  # fmt: skip
    torch.manual_seed(0)
    batch = {"input_ids": torch.randint(0, 100, (8, 256)), "labels": torch.tensor([0, 1] * 4)}
    model = BertForSequenceClassification(config).train()
    plain = _bytes_saved_for_backward(model, batch)
    enable_gradient_checkpointing(model)
    checkpointed = _bytes_saved_for_backward(model, batch)
    assert checkpointed < plain / 4, (plain, checkpointed)
