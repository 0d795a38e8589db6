"""The runtime a deployment bundle carries: pre-processing, the engine session,
post-processing, hash-checked loading, ``predict`` and ``serve``.

This package imports nothing from the rest of tango_ci and needs only numpy, Pillow and the
target's engine runtime (onnxruntime): ``tango deploy`` copies its files into a bundle as the
``tango_runtime`` package, and bench uses the same functions, so their outputs cannot drift
apart. Every import inside it is relative.
"""

from .bundle import Bundle, BundleError

__all__ = ["Bundle", "BundleError"]
