"""Speech recognition end to end on a tiny random Whisper: train, resume exactly, evaluate by generation, the run
directory (model/ = merged WhisperForConditionalGeneration + WhisperProcessor), 2 processes = 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hftl import zoo
from hftl.config import load_config
from hftl.recipe import run
from tests.helpers.asr_data import write_transcribed_table
from tests.helpers.tiny_models import tiny_asr_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_asr(tmp_path_factory, real_home) -> Path:
    return tiny_asr_model(tmp_path_factory.mktemp("tiny_asr"), tokenizer_from=zoo.prepare("whisper-tiny"))


@pytest.fixture(scope="module")
def transcribed_csv(tmp_path_factory) -> Path:
    return write_transcribed_table(tmp_path_factory.mktemp("asr_data"), rows=30)


def _overrides(tiny_asr: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "modality=audio", "task=speech_recognition", f"model.source={tiny_asr}", f"data.source={data}",
        "data.input_column=audio", "data.label_column=transcript", "audio.clip_seconds=1",
        "evaluation.metrics=[wer,cer]", "training.metric_for_best=wer", "training.greater_is_better=false",
        "asr.max_new_tokens=6", "method.name=lora", "training.max_steps=4", "training.eval_steps=2",
        "training.batch_size=4", "training.learning_rate=3e-3",
        "evaluation.batch_size=4",  # 6 validation / test rows: an uneven last batch
        "training.save_total_limit=10", "training.tracking=none", f"output.dir={out}", *extra,
    ]  # fmt: skip


def evaluate_saved_model(model_dir: Path, overrides: list[str], split: str) -> tuple[dict[str, float], list[str]]:
    """WER/CER of RUN/model/ on a split, in this one process, through the same task code."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import WhisperForConditionalGeneration

    from hftl.modalities import get_modality
    from hftl.run.transcribed_data import load_transcribed_splits
    from hftl.tasks import get_task
    from hftl.tasks.speech_recognition import evaluate_transcripts

    cfg = load_config(None, overrides)
    audio, task = get_modality("audio"), get_task(cfg.task)
    rows = load_transcribed_splits(cfg.data)[split]
    processor = task.load_processor(audio, str(model_dir), cfg)
    prepared = task.prepare(audio, rows, processor, cfg, train=False, augment_rng=None)
    loader = DataLoader(prepared, batch_size=5, collate_fn=task.collator(audio, processor, cfg))
    accelerator = Accelerator(cpu=True)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    metrics, hyps, _ = evaluate_transcripts(model, loader, accelerator, processor.tokenizer, ["wer", "cer"], 1, 6)
    return metrics, list(hyps)


def test_a_lora_run_writes_the_speech_recogniser_and_its_wer(tiny_asr, transcribed_csv, tmp_path):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    out = tmp_path / "lora"
    overrides = _overrides(tiny_asr, transcribed_csv, out)
    results = run(load_config(None, overrides))
    saved = json.loads((out / "results.json").read_text())
    assert saved["run"]["task"] == "speech_recognition" and saved["run"]["method"] == "lora"
    assert set(saved["test"]) == {"wer", "cer", "loss"} and set(saved["eval"]) == {"wer", "cer", "loss"}
    assert set(saved["source_model"]) == {"validation", "test"} and "wer" in saved["source_model"]["test"]
    assert 0 < saved["params"]["trainable"] < saved["params"]["total"]
    assert saved["train"]["steps"] == 4 and saved["train"]["runtime_s"] > 0
    assert saved["data"]["labels"] == [] and saved["data"]["test"] == 6
    assert not saved.get("per_class")
    assert results["test"] == saved["test"]

    # LoRA targets: every attention projection (encoder self, decoder self and cross), nothing else
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["k_proj", "out_proj", "q_proj", "v_proj"]
    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    assert any(".encoder_attn." in k for k in weights) and any(".encoder." in k and ".self_attn." in k for k in weights)
    assert all("lora_" in k for k in weights)

    # model/: the merged recogniser and its processor, loadable as they stand; the scored model is the saved one
    model = WhisperForConditionalGeneration.from_pretrained(out / "model")
    processor = WhisperProcessor.from_pretrained(out / "model")
    assert model.config.max_source_positions == 50  # the encoder cut to audio.clip_seconds=1, as trained
    assert processor.feature_extractor.chunk_length == 1
    metrics, _ = evaluate_saved_model(out / "model", overrides, "test")
    assert metrics["wer"] == pytest.approx(saved["test"]["wer"])
    assert metrics["cer"] == pytest.approx(saved["test"]["cer"])


def test_resume_continues_exactly(tiny_asr, transcribed_csv, tmp_path):
    common = _overrides(tiny_asr, transcribed_csv, tmp_path / "straight", "method.name=full", "asr.source_baseline=false",
                        "audio.gain_db=[-6.0,6.0]", "audio.time_masks=1")  # augmented: draws per (seed, epoch, row)
    straight = run(load_config(None, common))
    checkpoint = sorted((tmp_path / "straight" / "checkpoints").iterdir())[0]  # step 2 of 4
    resumed = run(load_config(None, [*common, f"output.dir={tmp_path / 'resumed'}", f"training.resume_from={checkpoint}"]))
    assert resumed["train"]["steps"] == straight["train"]["steps"] == 4
    assert resumed["history"][-1] == pytest.approx(straight["history"][-1])
    assert resumed["test"] == pytest.approx(straight["test"], abs=1e-6)
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_scratch_starts_from_random_weights(tiny_asr, transcribed_csv, tmp_path):
    overrides = _overrides(tiny_asr, transcribed_csv, tmp_path / "scratch", "method.name=scratch", "training.max_steps=2",
                           "asr.source_baseline=false")  # fmt: skip
    results = run(load_config(None, overrides))
    assert results["params"]["trainable"] == results["params"]["total"] - 50 * 32  # all but the frozen positions
    assert "wer" in results["test"]


@pytest.mark.slow  # two processes through torchrun
def test_two_process_evaluation_equals_one_process(tiny_asr, transcribed_csv, tmp_path):
    out = tmp_path / "ddp"
    overrides = _overrides(tiny_asr, transcribed_csv, out, "method.name=full", "evaluation.batch_size=2")  # 6 rows / 2 ranks / 2 per batch: uneven
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    cmd = [str(torchrun), "--nproc_per_node", "2", str(ROOT / "recipes" / "finetune.py"), *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["world_size"] == 2
    for split, reported in (("validation", results["eval"]), ("test", results["test"])):
        metrics, hyps = evaluate_saved_model(out / "model", overrides, split)
        assert len(set(hyps)) > 1, hyps  # transcripts that differ by row: a repeated or lost row changes the scores
        assert metrics["wer"] == pytest.approx(reported["wer"]), split
        assert metrics["cer"] == pytest.approx(reported["cer"]), split
        # the mean token loss counts every row once: a repeated row of the uneven last batch would move it
        assert metrics["loss"] == pytest.approx(reported["loss"], abs=1e-4), split


def test_freeze_encoder_adapts_the_decoder_only(tiny_asr, transcribed_csv, tmp_path):
    out = tmp_path / "decoder"
    overrides = _overrides(tiny_asr, transcribed_csv, out, "method.name=full", "asr.freeze_encoder=true",
                           "training.max_steps=2", "asr.source_baseline=false")  # fmt: skip
    results = run(load_config(None, overrides))
    source = load_file(tiny_asr / "model.safetensors")
    trained = load_file(out / "model" / "model.safetensors")
    encoder = [k for k in trained if k.startswith("model.encoder.") and "embed_positions" not in k]
    decoder = [k for k in trained if k.startswith("model.decoder.layers.")]
    assert encoder and all(torch.equal(trained[k], source[k]) for k in encoder)
    assert any(not torch.equal(trained[k], source[k]) for k in decoder)
    assert results["params"]["trainable"] == sum(trained[k].numel() for k in trained if k.startswith("model.decoder."))


def test_a_trained_recogniser_exports_with_identical_transcripts_and_is_not_evaluated_as_a_classifier(
    tiny_asr, transcribed_csv, tmp_path
):
    """The two halves joined: a run trained here, exported by `hftl export`'s speech path on the rows it scored."""
    from hftl.deploy.export import export_run
    from hftl.errors import HftlError
    from hftl.evaluate_run import evaluate_run

    out = tmp_path / "lora"
    run(load_config(None, _overrides(tiny_asr, transcribed_csv, out)))
    with pytest.raises(HftlError, match="is a speech_recognition run"):
        evaluate_run(out, str(transcribed_csv))
    report = export_run(out, ["export.latency_repeats=1", "export.num_threads=1", "export.max_int8_wer_increase=100"])
    assert report["num_clips"] == 6  # the run's carved test split, not a split the data set lacks
    assert report["parity"]["fp32_differing_transcripts"] == 0
    assert report["transcripts"]["torch"] == report["transcripts"]["onnx_fp32"]
