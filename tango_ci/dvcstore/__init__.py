"""Artifacts in the DVC remote, by content hash, with the real ``dvc`` command.

Each push or pull works in a scratch DVC project (``dvc init --no-scm``) that uses the
repository's remote, so the repository's working tree is never changed. An artifact is
addressed by DVC's directory hash (``md5`` ending in ``.dir``).

The remote is untrusted (anyone who can write to the storage can change it), so a pull is
verified before anything is written where it was asked to go:

1. the directory listing (the ``.dir`` object) is downloaded alone, size-limited, and its md5
   compared with the registry's record; every ``relpath`` must be a normalised relative path,
   and the list of files must be exactly the record's;
2. that listing is put in the scratch cache and ``dvc fetch`` (never ``checkout``) brings the
   files into the scratch cache, where each one's size and sha256 are checked against the
   record;
3. only then are the files copied into a staging folder beside the destination, checked once
   more, and the folder renamed into place. On any failure the staging folder is removed and
   the destination is left as it was.

``dvc`` runs as ``python -I -m dvc`` so that a checkout it runs in is never on ``sys.path``.

Modules: ``_dvc`` (the command, the remote, hashes of a folder), ``_artifacts`` (push and
verified pull of an artifact), ``_data`` (a project's data: ``dvc add`` and its pointer files).
"""

from tango_ci.dvcstore._artifacts import HashMismatch, ListingMismatch, pull_dir, push_dir
from tango_ci.dvcstore._data import pull_pointers, track
from tango_ci.dvcstore._dvc import (
    python_environment,
    regular_files,
    remote_url,
    run_dvc,
    tree_digest,
    tree_hashes,
)

__all__ = [
    "HashMismatch",
    "ListingMismatch",
    "pull_dir",
    "pull_pointers",
    "push_dir",
    "python_environment",
    "regular_files",
    "remote_url",
    "run_dvc",
    "track",
    "tree_digest",
    "tree_hashes",
]
