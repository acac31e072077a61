"""hftl: transfer learning on the Hugging Face stack, for vision, text and audio classifiers."""

__version__ = "0.1.0"
