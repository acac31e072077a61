"""zoo:espeak-sentences: held-out sentences AND voices, deterministic plan, usable sentences only, noise at its SNR."""

from __future__ import annotations

import numpy as np
import pytest

from hftl.zoo import espeak_sentences as es


@pytest.fixture(scope="module")
def plan(real_home):
    return es.plan(es._texts("bbc-news"), es._texts("fortunes"))


def test_validation_test_and_probe_share_no_sentence_and_no_voice_with_train(plan):
    assert {k: len(v) for k, v in plan.items()} == es.SIZES
    train_text = {r[0].lower() for r in plan["train"]}
    train_voices = {r[1] for r in plan["train"]}
    for split in ("validation", "test", "source_probe"):
        assert not train_text & {r[0].lower() for r in plan[split]}, split
        assert not train_voices & {r[1] for r in plan[split]}, split
    assert not {r[1] for r in plan["validation"]} & {r[1] for r in plan["test"]}
    assert {r[1] for r in plan["source_probe"]} == {es.PROBE_VOICE}
    assert len({(r[2], r[3]) for r in plan["train"]}) == len(es.SPEEDS) * len(es.PITCHES)  # every speed x pitch


def test_the_plan_is_deterministic(plan, real_home):
    assert es.plan(es._texts("bbc-news"), es._texts("fortunes")) == plan


@pytest.mark.parametrize(
    ("sentence", "ok"),
    [
        ("The firm has neither admitted nor denied wrongdoing.", True),
        ("Profits rose 5% to 20m.", False),  # digits: how a number is written is not a word error
        ('"We will win," he said today.', False),  # quotes
        ("Too short.", False),
        ("one two three four five six seven eight nine ten eleven twelve", False),  # too long
    ],
)
def test_only_short_plain_sentences_are_used(sentence, ok):
    assert es.usable(sentence) is ok


def test_split_sentences():
    assert es.split_sentences("One two. Three four! Five six?") == ["One two.", "Three four!", "Five six?"]


def test_white_noise_is_added_at_the_stated_snr():
    wave = np.sin(np.linspace(0, 2000, 48_000)).astype(np.float32) * 0.3
    noisy = es.add_white_noise(wave, 10.0, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(wave**2) / np.mean((noisy - wave) ** 2))
    assert snr == pytest.approx(10.0, abs=0.2)
