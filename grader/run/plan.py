"""The plan: what a worker is asked to do with one staged file (its images, how they are prepared and fed, the
batch sizes, its format's own settings), and which files go first. Pure: no I/O."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from grader.courseworks.assignment import Part
from grader.courseworks.heldout import HeldoutSet
from grader.evaluation.scheduler import Job
from grader.formats.base import Inspection, ModelFormat

# Predictions run in batches of this size, then near-ties are predicted again in the official script's
# own batches (see worker._predict_as_official): the same outputs as batch 32, two to four times faster.
# 256 is as fast as 1024 on the models students train, and holds a worker to about 0.8 GB, not 1.3.
FAST_BATCH_SIZE = 256
# Float32 bytes one layer's outputs may take for a whole fast batch (a 224x224x32 feature map: 40 images).
ACTIVATION_BUDGET = 256 * 1024 * 1024


def image_set(heldout: HeldoutSet) -> str:
    """The name a worker knows a held-out set's images by: parts judged on the same images share one copy."""
    return f"images-{heldout.images_sha256[:16]}"


def worker_request(
    part: Part,
    heldout: HeldoutSet,
    inspection: Inspection | None,
    found: ModelFormat,
    *,
    allow_lambda: bool,
    runs_code: bool,
) -> dict[str, Any]:
    """The worker's request for a file of format `found`, for `part`, predicted on `heldout`'s images."""
    evaluation, data = part.evaluation, part.data
    return {
        # Keras refuses a Lambda's bytecode in safe mode: only an instructor's --allow-lambda
        # lets it load, and then only in a worker of its own, inside the sandbox.
        "safe_mode": not runs_code,
        "images": image_set(heldout),
        "data": {"scale": data.scale, "mean": list(data.mean), "std": list(data.std), "layout": data.layout},
        "image_shape": list(data.image_shape),
        "feed": evaluation.feed,
        "batch_size": evaluation.batch_size,
        "fast_batch_size": fast_batch_size(inspection, evaluation.batch_size),
        "by_rank": [asdict(rule) for rule in evaluation.by_rank],
        "input_mode": evaluation.input_mode,
        "format": found.name,
        **found.request(inspection, allow_lambda=allow_lambda),
    }


def cost(inspection: Inspection | None) -> int:
    """An estimate of the work a model is: its multiply-adds per image, else its parameters."""
    if inspection is None:
        return 0
    return inspection.multiply_adds or inspection.parameter_count


def fast_batch_size(inspection: Inspection | None, official: int) -> int:
    """How many images a fast batch holds: up to FAST_BATCH_SIZE while the largest layer's outputs stay
    within ACTIVATION_BUDGET, and the official batch size when the config does not say how large they are."""
    largest = inspection.largest_activation if inspection is not None else None
    if not largest:
        return official
    return max(official, min(FAST_BATCH_SIZE, ACTIVATION_BUDGET // (4 * largest)))


def job_for(
    part: Part,
    heldout: HeldoutSet,
    *,
    sha256: str,
    inspection: Inspection | None,
    found: ModelFormat,
    model_path: Path,
    name: str,
    suffix: str,
    companions: tuple[tuple[Path, str], ...],
    allow_lambda: bool,
) -> Job:
    """The job for one staged file of format `found`: its key (part and sha256: identical files are evaluated
    once per part), its request, and whether it needs a worker of its own."""
    # Screening let a file that carries code through only under --allow-lambda (and warned).
    runs_code = allow_lambda and inspection is not None and found.runs_code(inspection)
    return Job(
        key=f"{part.name}:{sha256}",
        model_path=model_path,
        name=name,
        request=worker_request(part, heldout, inspection, found, allow_lambda=allow_lambda, runs_code=runs_code),
        # A file that runs code gets a worker of its own, thrown away afterwards.
        fresh=runs_code,
        wall_seconds=part.evaluation.time_limit_seconds,
        model_name=f"model{suffix}",
        companions=companions,
    )
