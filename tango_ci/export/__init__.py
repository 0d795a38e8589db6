"""ONNX export with a checker, optional simplification and a parity check against PyTorch."""

from tango_ci.export.onnx_export import ParityError, export_onnx, parity

__all__ = ["ParityError", "export_onnx", "parity"]
