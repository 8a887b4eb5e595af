"""Progress of a run: one bar over all jobs that moves with every job's steps, wherever it runs.

The trainers show their own tqdm bars (`distill`'s steps, `train_urn`'s epochs). Inside a job
those bars are captured (`job_progress`): they draw nothing and report the fraction of the job
done instead, to the runner's bar directly in-process, or through a small Ray actor
(`ProgressBoard`) that the runner reads while it waits for results. The runner's bar counts
jobs, with running jobs counted by the fraction they have done.
"""
from __future__ import annotations

import io
import time
from contextlib import contextmanager

REPORT_EVERY_S = 0.5


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


@contextmanager
def job_progress(report):
    """Within the block, every tqdm bar that `tqdm.auto` makes reports `report(fraction)` (at
    most every REPORT_EVERY_S seconds, and when it closes) and draws nothing. `report=None`
    leaves the bars alone."""
    if report is None:
        yield
        return
    import tqdm.auto
    original = tqdm.auto.tqdm

    class Reporting(original):
        def __init__(self, *args, **kwargs):
            kwargs["file"] = _Discard()
            self._reported_at = 0.0
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            shown = super().update(n)
            now = time.monotonic()
            if self.total and now - self._reported_at >= REPORT_EVERY_S:
                self._reported_at = now
                report(min(1.0, self.n / self.total))
            return shown

        def close(self):
            if self.total and not self.disable:
                report(min(1.0, self.n / self.total))
            super().close()

    tqdm.auto.tqdm = Reporting
    try:
        report(0.0)
        yield
    finally:
        tqdm.auto.tqdm = original


class RunBar:
    """The runner's bar: `total` jobs; `started(key)`, `fraction(key, f)` and `finished(key)`
    move it, `note(text)` says what happens before any job has started."""

    def __init__(self, desc: str, total: int, enabled: bool):
        from tqdm.auto import tqdm
        self._bar = tqdm(total=total, desc=desc, disable=not enabled or not total, unit="job",
                         bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} jobs [{elapsed}<{remaining}{postfix}]")
        self._running: dict = {}
        self._done = 0

    def note(self, text: str) -> None:
        self._bar.set_postfix_str(text)

    def fraction(self, key, value: float) -> None:
        if key is not None:
            self._running[key] = value
        self._show()

    def finished(self, key) -> None:
        self._running.pop(key, None)
        self._done += 1
        self._show()

    def _show(self) -> None:
        self._bar.n = self._done + sum(self._running.values())
        self._bar.set_postfix_str(f"{len(self._running)} running" if self._running else "", refresh=False)
        self._bar.refresh()

    def close(self, keep: bool = True) -> None:
        """keep=False: the bar is erased (a run that ends in an error shows only the error)."""
        self._bar.leave = keep
        self._bar.close()


def progress_board():
    """A Ray actor that keeps each job's latest fraction (Ray must be initialised)."""
    import ray

    @ray.remote(num_cpus=0)
    class ProgressBoard:
        def __init__(self):
            self.fractions = {}

        def report(self, key, fraction):
            self.fractions[key] = fraction

        def snapshot(self):
            return dict(self.fractions)

    return ProgressBoard.remote()
