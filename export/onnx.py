"""Export a finished run to ONNX: merge, optimum export, parity gate, int8, latency report.

    python export/onnx.py runs/demo [export.key=value ...]     (same as `hftl export runs/demo`)

Writes RUN_DIR/onnx/{model.onnx, model_quantized.onnx, export_report.json}. The logic is hftl.deploy.export.
"""

import sys
from pathlib import Path

# Python puts this script's folder first on sys.path, where this file would shadow the `onnx` package that optimum
# imports (`python export/onnx.py` then failed inside optimum). The folder holds nothing to import: drop it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from hftl.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
