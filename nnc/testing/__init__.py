"""Test-support code: seeded ONNX model builders (the model zoo) and helpers."""
