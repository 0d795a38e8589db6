"""GitOps: plan a change, publish a run as a report, promote what merged, the local forge.

Each step is one function used by the CLI (through :mod:`tango_ci.api`), by the workflows' CLI
commands and by the local forge alike: :func:`~tango_ci.gitops.plan.make_plan`,
:func:`~tango_ci.gitops.publish.publish_run`, :func:`~tango_ci.gitops.promote.promote_pending`.
Nothing is imported here, so that the workflows' plan step needs none of GTO or DVC.
"""
