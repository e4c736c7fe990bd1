"""The verdict: from an evaluation's answer to the checks, reasons and failure texts that decide a student's status,
and the status, reason and mark themselves (model_verdict, code_verdict). Pure: no I/O, no gradebook; every text
names the coursework's own evaluation as its assignment file does."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from grader.checks.screening import PASS, WARN, Check, summary
from grader.courseworks.assignment import Assignment, EvaluationSpec, Part
from grader.evaluation.worker import MIN_NEAR_TIE, NEAR_TIE_SAFETY
from grader.gradebook import Evaluation
from grader.marking import scoring
from grader.marking.code import code_detail, file_attempts, mark_code
from grader.marking.code import reasons as code_reasons
from grader.run.unit import Unit, architecture
from grader.shapes import shape_text

# A worker's failed run, and a failed stage of an answer, as the status a student's row gets.
FAILED_RUNS = {"timeout": "timeout", "crashed": "crashed", "memory": "over_limit", "processes": "over_limit"}
FAILED_STAGES = {"load": "load_failed", "predict": "predict_failed", "output": "bad_output"}


@dataclass
class Verdict:
    """A unit's end: its status and reason, what they rest on, and its mark (a model's `result`, or a code part's
    `counts`: cases passed, cases, points)."""

    status: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    result: scoring.Mark | None = None
    evaluation_id: int | None = None
    counts: tuple[int, int, Any] | None = None


def model_verdict(
    unit: Unit, evaluation: Evaluation, *, reused: bool, rules: Assignment, labels: np.ndarray
) -> Verdict:
    """A model unit's verdict from its evaluation, marked against the part's held-out labels; the checks the
    evaluation adds are appended to the unit's."""
    part = unit.part
    detail: dict[str, Any] = {"evaluation": evaluation_detail(evaluation, reused)}
    if evaluation.status != "answered":
        return Verdict(FAILED_RUNS.get(evaluation.status, "crashed"), evaluation.reason, detail)
    answer = evaluation.answer or {}
    if not answer.get("ok"):
        status = FAILED_STAGES.get(answer.get("stage", ""), "load_failed")
        return Verdict(status, failure_reason(answer, part.evaluation.name), detail)
    if answer.get("fallback_from") and rules.versions.legacy_loader_policy == "refuse":
        return Verdict("load_failed", legacy_refusal(answer, rules, part), detail)
    # The evaluation states the output width; screening's guess from the config gives way to it.
    unit.checks = [check for check in unit.checks if check.name != "outputs"]
    unit.checks.extend(evaluation_checks(answer, rules, part))
    assert evaluation.predictions is not None and evaluation.output_shape is not None
    correct = scoring.count_correct(evaluation.predictions, labels)
    refusal = _output_refusal(unit, evaluation, correct, labels.size)
    if refusal:
        return Verdict("bad_output", refusal, detail)
    comparison = architecture(unit)
    result = scoring.mark(
        correct,
        labels.size,
        part.marking,
        comparison.status if comparison else None,
        "; ".join(comparison.problems[:3]) + ("; ..." if len(comparison.problems) > 3 else "") if comparison else "",
    )
    detail["mark"] = mark_detail(result, part)
    flagged = [check for check in unit.checks if check.outcome == WARN]
    status = "flagged" if flagged else "graded"
    return Verdict(status, summary(unit.checks, WARN), detail, result, evaluation.id)


def _output_refusal(unit: Unit, evaluation: Evaluation, correct: int, total: int) -> str:
    """Why the outputs cannot be marked under the part's policies ('' when they can); the checks on them (width,
    NaN, ties, one class for every image) are appended to the unit's."""
    part = unit.part
    assert evaluation.predictions is not None and evaluation.output_shape is not None
    classes, width = part.data.classes, evaluation.output_shape[1]
    if width != classes and part.evaluation.output_width_policy == "refuse":
        official = scoring.accuracy_percent(correct, total)
        return (
            f"the model outputs {width} scores per image; this assignment has {classes} classes "
            f"(end it with Dense({classes})); {part.evaluation.name} would report {official}% "
            '(output_width_policy = "refuse")'
        )
    unit.checks.append(width_check(width, classes, part.evaluation.name))
    if evaluation.nonfinite:
        message = (
            f"{evaluation.nonfinite:,} of {total:,} images gave NaN or infinite outputs "
            f"({part.evaluation.name}'s argmax counts those as the class of the first NaN)"
        )
        if part.evaluation.nonfinite_policy == "refuse":
            return message
        unit.checks.append(Check("outputs", WARN, message, "check the model for overflow or division by zero"))
    if evaluation.ties and evaluation.ties["images"]:
        unit.checks.append(ties_check(evaluation.ties, total, part.evaluation.tie_flag_share, part.evaluation.name))
    if evaluation.ties and evaluation.ties.get("constant"):
        unit.checks.append(constant_check(int(evaluation.predictions[0]), total))
    return ""


def code_verdict(unit: Unit, evaluation: Evaluation, *, reused: bool) -> Verdict:
    """A code unit's verdict (status, reason and points) from its evaluation; its checks appended to the unit's."""
    spec = unit.part.code
    assert spec is not None
    answer = evaluation.answer or {}
    detail: dict[str, Any] = {
        "evaluation": {
            "id": evaluation.id,
            "reused": reused,
            "seconds": evaluation.seconds,
            "isolation": evaluation.isolation,
        }
    }
    if evaluation.status != "answered":
        return Verdict("crashed", evaluation.reason or "the code could not be run", detail)
    if not answer.get("ok"):
        return Verdict("unreadable", answer.get("error", "the file could not be read"), detail)
    marks = mark_code(answer, spec)
    detail["code"] = code_detail(answer, marks)
    review = code_reasons(marks, "review")
    if review:
        unit.checks.append(Check("review", WARN, review, "a person should read these questions' code"))
    tried = file_attempts(answer)
    if tried:
        unit.checks.append(
            Check(
                "tripwire",
                WARN,
                "the file's code tried to " + "; ".join(tried) + " (refused)",
                "a person should read this file: its code tried what numpy functions never need",
            )
        )
    for note in unit.submission.notes:
        unit.checks.append(Check("file choice", WARN, note, "hand in one file with your functions"))
    unit.checks.extend(Check("file choice", PASS, fact) for fact in unit.submission.facts)
    flagged = [check for check in unit.checks if check.outcome == WARN]
    reason = "; ".join(filter(None, [summary(unit.checks, WARN) if flagged else "", code_reasons(marks)]))
    counts = (detail["code"]["passed"], detail["code"]["cases"], detail["code"]["score"])
    return Verdict("flagged" if flagged else "graded", reason, detail, evaluation_id=evaluation.id, counts=counts)


def failure_reason(answer: dict[str, Any], evaluation: str) -> str:
    """Why a file could not be marked; `evaluation`: what the coursework's own evaluation is called."""
    reason = _stage_failure(answer, evaluation)
    if answer.get("attempts"):
        reason += f"; {_attempts_text(answer)}"
    for other in answer.get("fallback_from", []):
        reason += f"; {other.get('loader', 'the Keras 2 loader')} failed too: {_stage_failure(other, evaluation)}"
    if answer.get("adapt_error"):
        reason += f"; fed the shape it declares, it failed again: {answer['adapt_error']}"
    return reason


def _stage_failure(answer: dict[str, Any], evaluation: str) -> str:
    error = answer.get("error", "unknown error")
    stage = answer.get("stage")
    if stage == "load":
        onnx = str(answer.get("loader", "")).startswith("onnxruntime")
        runtime = "onnxruntime could not load the graph" if onnx else "Keras could not load the model"
        return f"{runtime}: {error}"
    if stage == "predict" and str(answer.get("loader", "")).startswith("onnxruntime"):
        return f"onnxruntime could not predict these images with the graph: {error}"
    if stage == "predict":
        fed = answer.get("fed_shape")
        declared = answer.get("input_shape")
        if answer.get("net_type"):
            return (
                f"the model takes input {shape_text(declared, 'None')} but {evaluation} feeds "
                f"{shape_text(fed, 'None')} ({answer['net_type']} rule): {error}"
            )
        return f"the model takes input {shape_text(declared, 'None')} and was fed {shape_text(fed, 'None')}: {error}"
    return error


def _attempts_text(answer: dict[str, Any]) -> str:
    """What a model's own code (its Lambda layers, run under --allow-lambda) tried and was refused, in words."""
    return "the model's code tried to " + "; ".join(answer["attempts"]) + " (refused)"


def evaluation_checks(answer: dict[str, Any], rules: Assignment, part: Part) -> list[Check]:
    """What the evaluation showed that the coursework's own evaluation would have done differently."""
    evaluation = part.evaluation.name
    checks = []
    if answer.get("attempts"):
        checks.append(
            Check(
                "tripwire",
                WARN,
                _attempts_text(answer),
                "a person should look at this file: its code tried what a model never needs",
            )
        )
    batches = answer.get("batches") or {}
    changed = batches.get("changed") or []
    if batches.get("batch_dependent"):
        checks.append(
            Check(
                "batch size",
                WARN,
                f"the model's outputs depend on the other images in its batch (a "
                f"layer works across the batch axis), so every image was predicted in {evaluation}'s "
                f"batches of {batches['official']}; batches of {batches['fast']} would have "
                f"changed the class of {len(changed):,} images",
                "normalise over an image's own axes (axis=-1), never over the batch (axis=0)",
            )
        )
    elif batches.get("fast", 0) > batches.get("official", 0):
        if "margin" in batches:
            why = (
                "the first, middle and last as probes, and every batch holding an image whose two top outputs "
                f"are within {batches['margin']:.2g} of each other: {NEAR_TIE_SAFETY} times twice the largest "
                f"difference measured between the two batch sizes ({batches['drift']:.2g}), and at least "
                f"{MIN_NEAR_TIE:.0e}"
            )
        else:
            why = "all of them: most batches held a near-tie"
        message = (
            f"predicted in batches of {batches['fast']}; {batches['rechecked']} of {evaluation}'s "
            f"batches of {batches['official']} were predicted again as it predicts them ({why}), with the "
            "same outputs up to rounding"
        )
        if changed:
            message += (
                f"; {len(changed)} images changed class there (kept as {evaluation} gives them: "
                f"{', '.join(map(str, changed[:10]))})"
            )
        checks.append(Check("batch size", PASS, message))
    if answer.get("fallback_from"):
        flag = rules.versions.legacy_loader_policy == "flag"
        advice = (
            f"save the model with TensorFlow {rules.versions.tensorflow} (Keras 3), which {evaluation} uses"
            if flag
            else ""
        )
        checks.append(Check("loader", WARN if flag else PASS, _legacy_message(answer, rules, part), advice))
    elif answer.get("onnx_batches"):
        checks.append(Check("loader", PASS, f"predicted by {answer.get('loader')}, {answer['onnx_batches']}"))
    else:
        checks.append(Check("loader", PASS, f"loaded by {answer.get('loader')}, as {evaluation} loads it"))
    # Only where the coursework's evaluation loads the file compiled (Coursework 1's load_model(file)): another
    # coursework's evaluation never meets the saved training setup.
    compiles = part.evaluation.compiles_on_load
    if compiles and answer.get("official_load_error"):
        checks.append(
            Check(
                "official script",
                WARN,
                "the official script's load_model(file) would fail while "
                f"compiling the saved training setup ({answer['official_load_error']}); graded "
                "with compile=False, which predicts the same",
                "save the model again with the TensorFlow the coursework names",
            )
        )
    if compiles and answer.get("official_load_unchecked"):
        checks.append(
            Check(
                "official script",
                WARN,
                "could not check whether the official script's load_model(file) would compile the saved "
                f"training setup ({answer['official_load_unchecked']}); graded with compile=False",
                "a marker should run the official script on this file",
            )
        )
    adapted = answer.get("adapted")
    if adapted:
        repeated = " with the grey image in each of 3 channels" if adapted["channels_repeated"] > 1 else ""
        checks.append(
            Check(
                "input",
                WARN,
                f"{part.evaluation.name} would fail ({adapted['reference_error']}); "
                f"fed {shape_text(adapted['fed_shape'], 'None')} as the model declares{repeated}",
                f"take {_fed_shapes(part.evaluation)} input as {part.evaluation.name} feeds",
            )
        )
    return checks


def _fed_shapes(spec: EvaluationSpec) -> str:
    """The shapes the coursework's rule feeds: '28x28x1 (or 784 values)'."""
    shapes = [rule.shape for rule in spec.by_rank]
    if not shapes:
        return "the declared"

    def said(shape: tuple[int, ...]) -> str:
        return f"{shape[0]} values" if len(shape) == 1 else "x".join(map(str, shape))

    return said(shapes[0]) + "".join(f" (or {said(shape)})" for shape in shapes[1:])


def _legacy_message(answer: dict[str, Any], rules: Assignment, part: Part) -> str:
    """Why a file was graded with TensorFlow's Keras 2 loader: what the coursework's evaluation's loader did."""
    tensorflow = rules.versions.tensorflow
    failure = _stage_failure(answer["fallback_from"][0], part.evaluation.name)
    return (
        f"{part.evaluation.name} would fail with this file (its loader under TensorFlow {tensorflow} is Keras 3: "
        f"{failure}); graded with TensorFlow {tensorflow}'s Keras 2 loader "
        f"({answer.get('loader')}), as markers resolve older files"
    )


def legacy_refusal(answer: dict[str, Any], rules: Assignment, part: Part) -> str:
    """The reason for a file only the Keras 2 loader reads, under legacy_loader_policy = 'refuse'."""
    tensorflow = rules.versions.tensorflow
    failure = _stage_failure(answer["fallback_from"][0], part.evaluation.name)
    return (
        f"{part.evaluation.name} cannot use this file: its loader under TensorFlow {tensorflow} is Keras 3, and "
        f"{failure}; this assignment does not grade with TensorFlow "
        f'{tensorflow}\'s Keras 2 loader ({answer.get("loader")}), which can (legacy_loader_policy = "refuse")'
    )


def width_check(width: int, classes: int, evaluation: str) -> Check:
    """The output width the evaluation found, against the assignment's classes (output_width_policy 'flag')."""
    if width == classes:
        return Check("outputs", PASS, f"{width} outputs, one per class")
    effect = (
        f"an image given {_classes(classes, width - 1)} counts as wrong"
        if width > classes
        else f"{_classes(width, classes - 1)} can never be predicted"
    )
    scores = "1 score" if width == 1 else f"{width} scores"
    return Check(
        "outputs",
        WARN,
        f"the model outputs {scores} per image; this assignment has {classes} classes; graded as {evaluation} "
        f"grades it, by the argmax over {'its one output' if width == 1 else f'all {width}'} ({effect})",
        f"end the model with Dense({classes}, activation='softmax')",
    )


def _classes(first: int, last: int) -> str:
    """'class 9', 'classes 10 and 11', 'classes 5 to 9'."""
    if first == last:
        return f"class {first}"
    return f"classes {first} {'and' if last == first + 1 else 'to'} {last}"


def ties_check(ties: dict[str, Any], total: int, flag_share: float, evaluation: str) -> Check:
    """How many images the evaluation's tie rule decided, flagged above the assignment's share."""
    given = ", ".join(f"{count:,} given class {cls}" for cls, count in sorted(ties["classes"].items(), key=_by_class))
    message = (
        f"{ties['images']:,} of {total:,} images had two or more classes with exactly the same top output; "
        f"{evaluation}'s argmax gave each the first of them ({given})"
    )
    # Exact: "more than 1%" of 12,000 images is 121 or more, never a float's rounding of 120.
    if ties["images"] > Fraction(repr(flag_share)) * total:
        return Check(
            "tied outputs",
            WARN,
            f"{message}: more than {flag_share * 100:g}% of the images, so the tie rule, not the model, decided them",
            "classes with exactly the same output on many images share their weights (a copied layer or "
            "column), or the network is dead and gives every class the same output (NaN weights, a saturated "
            "ReLU): check its last layers and its training",
        )
    return Check("tied outputs", PASS, f"{message}; at most {flag_share * 100:g}% of the images, not flagged")


def constant_check(given: int, total: int) -> Check:
    """A model whose outputs are the same for every image: it does not use its input."""
    return Check(
        "constant outputs",
        WARN,
        f"every one of the {total:,} images got exactly the same outputs, so the model gives class {given} to "
        "all of them whatever the image shows: it does not use its input",
        "a network whose outputs do not depend on its input is dead or broken (NaN weights behind a ReLU, a "
        "saturated layer): check its training",
    )


def _by_class(item: tuple[str, int]) -> int:
    return int(item[0])


def evaluation_detail(evaluation: Evaluation, reused: bool) -> dict[str, Any]:
    answer = evaluation.answer or {}
    keys = (
        "net_type",
        "input_shape",
        "fed_shape",
        "output_shape",
        "loader",
        "load_seconds",
        "trace_seconds",
        "check_seconds",
        "predict_seconds",
        "compiled",
        "parameters",
        "summary",
        "versions",
        "stage",
        "error",
        "worker",
        "adapted",
        "official_load_error",
        "official_load_unchecked",
        "fallback_from",
        "attempts",
    )
    return {
        "id": evaluation.id,
        "status": evaluation.status,
        "reused": reused,
        "isolation": evaluation.isolation,
        "seconds": evaluation.seconds,
        "nonfinite": evaluation.nonfinite,
        **{key: answer[key] for key in keys if key in answer},
    }


def mark_detail(result: scoring.Mark, part: Part) -> dict[str, Any]:
    percent = result.exact_percent
    return {
        "correct": result.correct,
        "total": result.total,
        "accuracy": result.accuracy,
        "accuracy_exact": f"{percent.numerator}/{percent.denominator}",
        "band": result.band.text if result.band else None,
        "score": result.score,
        "max_score": part.max_score,
        "scheme": f"{part.marking_name}: {part.marking.describe()}",
        "next_band": result.next_label,
        "next_score": result.next_score,
        "images_to_next_band": result.images_to_next,
        **(
            {
                "label": result.label,
                "rule": result.rule,
                "passed_over": [{"label": label, "reasons": list(why)} for label, why in result.passed_over],
            }
            if result.label is not None
            else {}
        ),
    }
