"""Speech recognition scores: corpus WER and CER through jiwer (the maintained implementation), on hftl's normalisation.

Normalisation (explicit, applied to references and hypotheses alike before scoring): lower-case, keep only words of
``[a-z0-9']`` (punctuation, quotes and hyphens become word breaks), single spaces. So "Don't stop -- now!" and
"don't stop now" score as equal; casing and punctuation, which Whisper writes and many references lack, are not
counted as errors. CER is computed on the same normalised words joined by single spaces.
"""

from __future__ import annotations

import re

import jiwer

_WORD = re.compile(r"[a-z0-9']+")


def normalise(text: str) -> list[str]:
    """Lower-case words without punctuation ("Don't!" -> ["don't"]), so only the words are compared."""
    return _WORD.findall(text.lower())


def _normalised(references: list[str], hypotheses: list[str]) -> tuple[list[str], list[str]]:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [" ".join(normalise(r)) for r in references]
    if not any(refs):
        raise ValueError("the references hold no words")
    return refs, [" ".join(normalise(h)) for h in hypotheses]


def transcript_scores(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """Corpus WER and CER (total edits over total reference words / characters; above 1 when hypotheses add much).

    Raises:
        ValueError: the lists differ in length, or the references hold no words.
    """
    refs, hyps = _normalised(references, hypotheses)
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True)]
    words = jiwer.process_words([r for r, _ in pairs if r], [h for r, h in pairs if r])
    chars = jiwer.process_characters([r for r, _ in pairs if r], [h for r, h in pairs if r])
    # A row whose reference normalises to nothing adds its hypothesis as insertions (jiwer refuses empty references).
    extra_words = sum(len(h.split()) for r, h in pairs if not r)
    extra_chars = sum(len(h) for r, h in pairs if not r)
    ref_words = sum(len(r.split()) for r, _ in pairs)
    ref_chars = sum(len(r) for r, _ in pairs)
    word_edits = words.substitutions + words.deletions + words.insertions + extra_words
    char_edits = chars.substitutions + chars.deletions + chars.insertions + extra_chars
    return {"wer": word_edits / ref_words, "cer": char_edits / ref_chars}


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER after :func:`normalise` (see :func:`transcript_scores`)."""
    return transcript_scores(references, hypotheses)["wer"]
