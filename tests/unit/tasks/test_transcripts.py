"""WER / CER through jiwer on hftl's normalisation; the old evaluation.wer names keep working."""

from __future__ import annotations

import random

import pytest

from hftl.evaluation.wer import edit_distance, word_error_rate
from hftl.run.metrics.transcripts import normalise, transcript_scores


def _levenshtein(a, b) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def test_scores_count_every_edit_over_the_corpus():
    refs = ["The cat sat.", "on the mat"]
    hyps = ["the cat sat down", "on a mat"]  # one insertion, one substitution; 6 reference words
    scores = transcript_scores(refs, hyps)
    assert scores["wer"] == pytest.approx(2 / 6)
    # characters of "the cat sat" + "on the mat" (21): " down" adds 5, "the" -> "a" costs 3
    assert scores["cer"] == pytest.approx(8 / 21)


def test_normalisation_ignores_case_and_punctuation_only():
    assert transcript_scores(["Don't stop -- now!"], ["don't stop now"]) == {"wer": 0.0, "cer": 0.0}
    assert normalise("Hello, World's END.") == ["hello", "world's", "end"]
    assert transcript_scores(["stop now"], ["stop no"])["wer"] == 0.5


def test_an_empty_hypothesis_deletes_and_an_empty_reference_row_inserts():
    assert transcript_scores(["one two"], [""])["wer"] == 1.0
    assert transcript_scores(["one two", "!!"], ["one two", "extra words"])["wer"] == 1.0  # 2 insertions / 2 words


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 references but 1"):
        transcript_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no words"):
        transcript_scores(["..."], ["a"])


def test_jiwer_agrees_with_a_plain_levenshtein_on_random_word_lists():
    rng = random.Random(0)
    words = ["a", "b", "c", "d"]
    for _ in range(200):
        ref = rng.choices(words, k=rng.randint(1, 7))
        hyp = rng.choices(words, k=rng.randint(0, 7))
        assert edit_distance(ref, hyp) == _levenshtein(ref, hyp)
        assert word_error_rate([" ".join(ref)], [" ".join(hyp)]) == pytest.approx(_levenshtein(ref, hyp) / len(ref))
