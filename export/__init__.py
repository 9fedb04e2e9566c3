"""ivos.export: the PyTorch side (network definitions, ONNX export + parity check, TensorRT
plan build + refit, quantization, OSVOS fine-tuning). Imports torch; the runtime never
imports this package."""
