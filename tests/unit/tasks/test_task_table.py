"""The task axis: one table, the config key `task` checked against it, the speech recogniser's labels."""

from __future__ import annotations

import pytest
import torch

from hftl.config import TASKS, load_config
from hftl.errors import ConfigError
from hftl.tasks import get_task, task_names
from hftl.tasks.speech_recognition import IGNORE_INDEX, LORA_TARGETS, label_ids

ASR = ["modality=audio", "task=speech_recognition", "evaluation.metrics=[wer,cer]", "training.metric_for_best=wer",
       "training.greater_is_better=false"]  # fmt: skip


def test_the_table_and_the_config_choices_agree():
    assert task_names() == sorted(TASKS) == ["classification", "speech_recognition"]
    assert load_config(None, []).task == "classification"  # the default: every existing config keeps its meaning


def test_an_unknown_task_is_named_with_the_choices():
    with pytest.raises(ConfigError, match=r"task: 'translation' is not one of \['classification', 'speech_recognition'\]"):
        load_config(None, ["task=translation"])
    with pytest.raises(ConfigError, match="unknown task 'translation'"):
        get_task("translation")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.name=linear_probe", "no new head"),
        ("method.name=lp_ft", "no new head"),
        ("evaluation.metrics=[accuracy]", r"\['accuracy'\] do not score transcripts"),
        ("training.greater_is_better=true", "lower is better"),
        ("evaluation.forgetting=true", "asr.extra_splits"),
        ("modality=text", "needs modality=audio"),
        ("asr.num_beams=0", "asr.num_beams must be >= 1"),
    ],
)
def test_speech_recognition_configs_are_checked_before_any_work(override, message):
    load_config(None, ASR)  # the valid base
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*ASR, override])


def test_default_metric_for_best_is_refused_for_transcripts():
    with pytest.raises(ConfigError, match="metric_for_best='accuracy' is not computed"):
        load_config(None, ["modality=audio", "task=speech_recognition", "evaluation.metrics=[wer]"])


def test_labels_drop_the_decoder_start_token_and_pad_with_ignore_index(real_home):
    from transformers import AutoTokenizer

    from hftl import zoo

    tokenizer = AutoTokenizer.from_pretrained(zoo.prepare("whisper-tiny"))  # what the processor loads (fast)
    labels = label_ids(tokenizer, ["hello world", "a much longer transcript than that"])
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    assert (labels[:, 0] == tokenizer.convert_tokens_to_ids("<|notimestamps|>")).all()  # the prompt, without <|sot|>
    assert (labels != start).all()
    short = labels[0][labels[0] != IGNORE_INDEX]
    assert short[-1].item() == tokenizer.eos_token_id and (labels[0, len(short) :] == IGNORE_INDEX).all()
    assert tokenizer.decode(short, skip_special_tokens=True).strip() == "hello world"
    assert labels.dtype == torch.long


def test_lora_adapts_every_attention_projection_of_whisper():
    assert LORA_TARGETS["whisper"] == ["q_proj", "k_proj", "v_proj", "out_proj"]
