"""Device runners: probe this host into a runner file."""

from tango_ci.runners.probe import probe_host, runner_yaml

__all__ = ["probe_host", "runner_yaml"]
