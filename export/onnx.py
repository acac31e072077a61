"""Export a finished run to ONNX: merge, optimum export, parity gate, int8, latency report.

    python export/onnx.py runs/demo [export.key=value ...]     (same as `hftl export runs/demo`)

Writes RUN_DIR/onnx/{model.onnx, model_quantized.onnx, export_report.json}. The logic is hftl.deploy.export.
"""

import sys

from hftl.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
