"""Writing the main job's outputs under ``--out``: staged in a private folder, then renamed into place.

Why: a figure or report written in place is half-written if the disk fills or the job is killed (a
truncated PDF was left behind), and a symlink planted under ``--out`` (``out/report.html`` -> a file
elsewhere) made carousel overwrite a file outside its output folder. Here every output is first written
to ``out/.carousel-staging-<pid>/`` (same file system, so ``os.replace`` is an atomic rename); only when
every output exists are the destinations checked (no symlink, no directory in the way) and the files
renamed into place. A failure before that leaves every existing output as it was.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import InputError

STAGING_PREFIX = ".carousel-staging-"


def check_destination(path: Path) -> None:
    """InputError unless ``path`` is absent or a regular file that is not a symlink."""
    if path.is_symlink():
        raise InputError(f"{path} is a symbolic link; carousel does not write through links under --out "
                         "(remove it)", file=path, field="--out")
    if path.exists() and not path.is_file():
        raise InputError(f"{path} exists and is not a regular file (remove it)", file=path, field="--out")


def check_folder(folder: Path) -> None:
    """InputError if an output folder under ``--out`` is a symlink (its files would land elsewhere)."""
    if folder.is_symlink():
        raise InputError(f"{folder} is a symbolic link; carousel does not write through links under --out "
                         "(remove it)", file=folder, field="--out")


def stage_path(out: Path) -> Path:
    """This process's staging folder under ``out`` (on the same file system, so renames are atomic)."""
    return out / f"{STAGING_PREFIX}{os.getpid()}"


@contextmanager
def staged(stage: Path) -> Iterator[Path]:
    """Create the staging folder ``stage`` afresh; removed on exit whatever happens."""
    out = stage.parent
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir()
    except OSError as exc:
        raise InputError(f"cannot write under {out}: {exc.strerror or exc}", field="--out") from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out: Path, files: list[Path]) -> list[Path]:
    """Rename the staged ``files`` to the same relative place under ``out``; returns the final paths.

    Every destination is checked before the first rename, so a planted symlink or a directory in the
    way refuses the whole set instead of leaving a mix of old and new outputs.
    """
    moves = [(f, out / f.relative_to(stage)) for f in files]
    for _, dest in moves:
        check_folder(dest.parent)
        check_destination(dest)
    for src, dest in moves:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
    return [dest for _, dest in moves]
