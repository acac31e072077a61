"""Word error rate: word-level edit distance (substitutions + deletions + insertions) over reference words."""

from __future__ import annotations

import re


def normalise(text: str) -> list[str]:
    """Lower-case words without punctuation ("Don't!" -> ["don't"]), so only the words are compared."""
    return re.findall(r"[a-z0-9']+", text.lower())


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two word lists (each edit costs 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: total edits over total reference words (can exceed 1 when the hypotheses add words).

    Raises:
        ValueError: the lists differ in length, or the references hold no words.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalise(r) for r in references]
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ValueError("the references hold no words")
    edits = sum(edit_distance(r, normalise(h)) for r, h in zip(refs, hypotheses, strict=True))
    return edits / total
