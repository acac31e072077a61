"""f1 as an `evaluate` metric module, shipped inside hftl so it loads by path with no Hub look-up."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "The f1 score averaged over classes (average='macro' by default; classes absent from both sides count as 0 via zero_division=0)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
Returns:
    f1 (float)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, average: str = "macro", labels: list[int] | None = None):
        return {"f1": float(f1_score(references, predictions, average=average, labels=labels, zero_division=0))}
