"""The stage layer: the stages every task shares (search, compile, bench, gate, report).

The data, train and export stages differ by task; each task names its own (see
:class:`tango_ci.tasks.BaseTask`). :mod:`tango_ci.pipeline` chains them over one run folder.
"""
