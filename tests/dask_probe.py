"""A Dask worker plugin for the tests: looks for the labels' bytes in every task a worker runs, every value it
holds, and every file other plugins keep in their folders (grader's plugin writes the images there), so that a
test can assert no label array ever reached a Dask worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cloudpickle
from distributed import WorkerPlugin


class LabelProbe(WorkerPlugin):
    name = "label-probe"

    def __init__(self, needles: dict[str, list[bytes]]) -> None:
        self.needles = needles
        "What to look for, by name ('labels', and the images as a control that the probe sees data)."

    def setup(self, worker: Any) -> None:
        self.worker = worker
        self.tasks = 0
        self.values: set[str] = set()
        self.found: dict[str, list[str]] = {name: [] for name in self.needles}

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing":
            return
        task = self.worker.state.tasks.get(key)
        if task is not None:
            self.tasks += 1
            self._look(f"task {key}", cloudpickle.dumps(task.run_spec))
        for name, value in list(self.worker.data.items()):
            if str(name) not in self.values:
                self.values.add(str(name))
                self._look(f"value {name}", cloudpickle.dumps(value))
        for plugin in list(self.worker.plugins.values()):
            folder = getattr(plugin, "folder", None)
            if plugin is self or not isinstance(folder, Path):
                continue
            for path in sorted(folder.rglob("*")):
                if path.is_file() and str(path) not in self.values:
                    self.values.add(str(path))
                    self._look(f"file {path}", path.read_bytes())

    def _look(self, what: str, blob: bytes) -> None:
        for name, needles in self.needles.items():
            if any(needle in blob for needle in needles):
                self.found[name].append(what)


def report(dask_worker: Any) -> dict[str, Any]:
    probe = dask_worker.plugins["label-probe"]
    return {"tasks": probe.tasks, "values": len(probe.values), "found": probe.found}
