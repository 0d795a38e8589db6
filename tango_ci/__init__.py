"""TANGO-CI: target-aware neural network generation and operation, run the GitOps way."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tango-ci")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
