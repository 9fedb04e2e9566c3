"""Inference backends behind one runner interface (ONNX Runtime, TensorRT, torch)."""
