"""A job's evolution strategy checkpointed after every generation (DIR/partial/<job>.ckpt), so
an interrupted job continues where it stopped instead of starting again."""
from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError


def partial_path(out_dir: Path, job: dict) -> Path:
    from .runner import job_name
    path = Path(out_dir) / "partial" / f"{job_name(job)}.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def resumed(path: Path, job: dict, load, start):
    """`load(path)` when the job left a checkpoint at `path`, else `start()`. A checkpoint that
    cannot be resumed (damaged, or of another version or config) is named in one line and
    removed, and the job starts from its first generation."""
    from .runner import job_name, say
    if path.exists():
        try:
            return load(path)
        except (CheckpointError, KeyError, TypeError, ValueError) as exc:
            say(f"{path} cannot be resumed ({exc}); job {job_name(job)} starts again")
            path.unlink()
    return start()


def resumed_es(make_es, path: Path, job: dict):
    """`make_es()`, with the state saved at `path` loaded when there is one (see `resumed`)."""
    from ..core.checkpoint import load

    def load_es(path):
        es = make_es()
        es.load_state_dict(load(path)["extra"]["es"])
        return es
    return resumed(path, job, load_es, make_es)


def save_es(es, path: Path) -> None:
    from ..core.checkpoint import save
    save(path, None, step=es.generation, extra={"es": es.state_dict()})
