"""Models: cards (what a model expects and returns), runtimes (ONNX, optional TorchScript), and the
pre/post-processing between MedView's images and a model's tensors. No database or HTTP here."""
