"""Word error rate of transcripts: hftl's normalisation, scored by jiwer (``hftl.run.metrics.transcripts``).

Kept as the evaluation layer's name for it (the forgetting measurement and older callers import from here).
"""

from __future__ import annotations

import jiwer

from hftl.run.metrics.transcripts import normalise, transcript_scores, word_error_rate

__all__ = ["edit_distance", "normalise", "transcript_scores", "word_error_rate"]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two word lists (each edit costs 1), by jiwer."""
    if not reference:
        return len(hypothesis)
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return out.substitutions + out.deletions + out.insertions
