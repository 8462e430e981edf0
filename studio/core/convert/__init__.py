"""Float conversions between frameworks and targets (ONNX, TFLite)."""
