"""Evidence that a network was not its student's own work, for a person to weigh: never a penalty.

Pure functions of what a run stores (no model runs again): each network's file hash, its weights summary
(grader.formats.fingerprint) and its predictions on the held-out set. Five kinds of evidence, strongest first:

- same file: two folders hold the same bytes;
- same weights: the same numbers saved again (another name, another Keras version or format);
- shared layers: some layers' weights are exactly another network's (a public network with its last layer
  retrained; layers that never move from a fixed initialisation are left out);
- derived weights: two networks of one architecture whose kernels stay close once their hidden units are
  matched (one fine-tuned from the other, or re-ordered to hide it). Independent trainings start from
  independent random weights, whose kernels are near orthogonal however the units are matched;
- shared mistakes: more identical wrong answers than each image's difficulty and each network's own habits
  predict (see `shared_mistakes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

DERIVED_SIMILARITY = 0.5
"Matched-kernel cosine (weighted by layer size) from which two networks are called derived; 484 pairs of"
" independently trained networks of one architecture measured at most 0.19, fine-tuned ones 0.99."
APART_MEASURED = 0.19
"The highest matched-kernel cosine measured between networks trained apart (bench/integrity.py)."
SCREEN_SIMILARITY = 0.5
"Cheaper bounds below which a pair is not matched unit by unit (derived pairs measured 0.98 and above)."
SHARED_LAYER_PARAMETERS = 1000
"Smallest layer whose exact reuse counts as evidence (a bias of ten zeros is shared by chance)."
FALSE_ALARM = 0.001
"Shared mistakes: the chance, for a whole cohort of independent networks, that any pair is flagged."
MIN_SHARED_MISTAKES = 8
"Fewest identical wrong answers that can be evidence at all."
MISTAKES_NEEDS = 8
"Fewest networks in a cohort (with the library) for each image's wrong answers to be estimated."
PRIOR_WEIGHT = 1.0
"How many networks' worth of the cohort's overall confusions smooth each image's wrong answers."
HABIT_WEIGHT = 10.0
"How many wrong answers' worth of the cohort's habits smooth each network's own (its confusion matrix)."
TYPICAL_SHARE = 0.9
"Shared mistakes: the quantile of a network's excess over independence, with all the others, that any one"
" pair is allowed (two networks of one kind share more mistakes than independence predicts)."
SHARED_MARGIN = 1.3
"Shared mistakes: how far beyond that a pair must go (measured on 40 independent networks: at most 1.13)."
ONE_CLASS_SHARE = 0.5
"A network giving one class to more than this share of the images is not compared by its mistakes."


@dataclass(frozen=True)
class Network:
    """One network as integrity sees it: a student's (or a library's) file, weights and answers."""

    key: str
    "Student id, or 'library:<file>' for a known model."
    label: str
    "How a person names it: the student's name and id, or the library file."
    sha256: str
    weights: dict[str, Any] | None = None
    "The weights summary (grader.formats.fingerprint), without the kernels."
    kernels: Callable[[], dict[int, np.ndarray]] | None = None
    "Reads the stored kernels, by layer index (only when a pair needs them)."
    predictions: np.ndarray | None = None
    "The class given to each held-out image."
    library: bool = False


@dataclass(frozen=True)
class Finding:
    """One pair (or a network and a known model) with its evidence, in words and numbers."""

    kind: str
    "'same file', 'same weights', 'shared layers', 'derived weights' or 'shared mistakes'."
    first: str
    second: str
    strength: float
    "For sorting: same file and same weights rank first; then the similarity or the surprise."
    summary: str
    numbers: dict[str, Any] = field(default_factory=dict)
    images: tuple[int, ...] = ()
    "Held-out images given the same wrong answer (shared mistakes), most surprising first."


def find_evidence(networks: list[Network], labels: np.ndarray | None, classes: int) -> list[Finding]:
    """Every pair's evidence, strongest first: students with students, and students with library models."""
    findings: list[Finding] = []
    pairs = [(a, b) for a, b in combinations(networks, 2) if not (a.library and b.library)]
    identical = set()
    for a, b in pairs:
        if a.sha256 == b.sha256:
            identical.add((a.key, b.key))
            findings.append(Finding("same file", a.key, b.key, 1e9, f"the same file (sha256 {a.sha256[:12]})"))
    same = [(a, b) for a, b in pairs if (a.key, b.key) not in identical]
    findings += same_weights(same)
    weighed = {(f.first, f.second) for f in findings}
    findings += shared_layers([(a, b) for a, b in same if (a.key, b.key) not in weighed])
    findings += derived_weights([(a, b) for a, b in same if (a.key, b.key) not in weighed])
    if labels is not None:
        exact = identical | {(f.first, f.second) for f in findings if f.kind == "same weights"}
        findings += shared_mistakes(networks, labels, classes, skip=exact)
    return sorted(findings, key=lambda f: (-f.strength, f.first, f.second))


def same_weights(pairs: Iterable[tuple[Network, Network]]) -> list[Finding]:
    found = []
    for a, b in pairs:
        ours, theirs = _hash(a), _hash(b)
        if ours is not None and ours == theirs:
            found.append(
                Finding(
                    "same weights",
                    a.key,
                    b.key,
                    1e8,
                    f"different files holding the same weights (every one of {_parameters(a):,} values equal)",
                    {"weights_sha256": ours},
                )
            )
    return found


def shared_layers(pairs: Iterable[tuple[Network, Network]]) -> list[Finding]:
    found = []
    for a, b in pairs:
        if a.weights is None or b.weights is None or "layers" not in a.weights or "layers" not in b.weights:
            continue
        theirs = {layer["sha256"] for layer in b.weights["layers"] if _counts(layer)}
        shared = [layer for layer in a.weights["layers"] if _counts(layer) and layer["sha256"] in theirs]
        if not shared:
            continue
        count = sum(layer["parameters"] for layer in shared)
        total = _parameters(a)
        names = ", ".join(layer["name"] for layer in shared)
        found.append(
            Finding(
                "shared layers",
                a.key,
                b.key,
                1e7 + count,
                f"{len(shared)} of {len(a.weights['layers'])} layers hold exactly the same weights ({names}: "
                f"{count:,} of {total:,} values); the others differ",
                {"layers": [layer["name"] for layer in shared], "shared_parameters": count, "parameters": total},
            )
        )
    return found


def derived_weights(pairs: Iterable[tuple[Network, Network]]) -> list[Finding]:
    """Pairs of one architecture whose kernels, units matched, are closer than independent trainings get."""
    found = []
    cache: dict[str, dict[int, np.ndarray]] = {}
    firsts: dict[str, np.ndarray] = {}
    for a, b in pairs:
        shapes = _kernel_shapes(a)
        if not shapes or shapes != _kernel_shapes(b) or a.kernels is None or b.kernels is None:
            continue
        for network in (a, b):
            if network.key not in cache:
                cache[network.key] = network.kernels()  # type: ignore[misc]
        ka, kb = cache[a.key], cache[b.key]
        if set(ka) != set(kb) or not ka:
            continue
        if _screen(ka, kb, firsts.setdefault(a.key, _first_units(ka)), firsts.setdefault(b.key, _first_units(kb))) < (
            SCREEN_SIMILARITY
        ):
            continue
        layers = align(ka, kb)
        similarity = _weighted(layers)
        if similarity < DERIVED_SIMILARITY:
            continue
        names = {index: layer["name"] for index, layer in enumerate(a.weights["layers"])} if a.weights else {}
        per_layer = ", ".join(f"{names.get(index, index)} {cosine:.2f}" for index, cosine, *_ in layers)
        reordered = not all(in_order for _, _, in_order, _ in layers)
        found.append(
            Finding(
                "derived weights",
                a.key,
                b.key,
                1e6 * similarity,
                f"the same architecture, with kernels this close once hidden units are matched: {per_layer} "
                f"(cosine: 1 is identical; networks trained apart measured at most {APART_MEASURED})"
                + ("; the hidden units were re-ordered" if reordered else ""),
                {
                    "similarity": round(similarity, 4),
                    "layers": {str(names.get(i, i)): round(c, 4) for i, c, *_ in layers},
                    "reordered": reordered,
                },
            )
        )
    return found


def align(ka: dict[int, np.ndarray], kb: dict[int, np.ndarray]) -> list[tuple[int, float, bool, int]]:
    """Match b's hidden units to a's layer by layer (each layer's units by their incoming weights, after the
    previous layer's match is applied to its inputs); return each layer's (index, cosine, units kept in
    order, size)."""
    from scipy.optimize import linear_sum_assignment

    order = sorted(ka)
    previous: np.ndarray | None = None
    found = []
    for index in order:
        a, b = ka[index], kb[index]
        if previous is not None:
            b = _permute_inputs(b, previous)
        units = a.shape[-1]
        ua, ub = a.reshape(-1, units).T, b.reshape(-1, units).T
        if index == order[-1]:
            match = np.arange(units)  # the last layer's units are the classes: their order is fixed
        else:
            _, match = linear_sum_assignment(-(_unit(ua) @ _unit(ub).T))
        in_order = bool(np.all(match == np.arange(units)))
        found.append((index, _cosine(ua.ravel(), ub[match].ravel()), in_order, int(a.size)))
        previous = match
    return found


def _permute_inputs(kernel: np.ndarray, match: np.ndarray) -> np.ndarray:
    """Re-order a kernel's input channels as the previous layer's units were re-ordered. A Dense layer after
    a Flatten sees each channel once per position (channels last)."""
    channels = len(match)
    if kernel.ndim >= 3 and kernel.shape[-2] == channels:
        return kernel[..., match, :]
    fan_in = kernel.shape[0]
    if kernel.ndim == 2 and fan_in % channels == 0:
        return kernel.reshape(fan_in // channels, channels, -1)[:, match, :].reshape(kernel.shape)
    return kernel


def _first_units(kernels: dict[int, np.ndarray]) -> np.ndarray:
    """The first layer's units as unit-length rows of their incoming weights (whose order is the input's)."""
    first = kernels[min(kernels)]
    return _unit(first.reshape(-1, first.shape[-1]).T)


def _screen(ka: dict[int, np.ndarray], kb: dict[int, np.ndarray], ua: np.ndarray, ub: np.ndarray) -> float:
    """A cheap upper view of how alike two networks' kernels are: the better of the unmatched cosine and the
    first layer's units matched each to its best counterpart (the first layer's inputs are in a fixed order)."""
    plain = _weighted([(i, _cosine(ka[i].ravel(), kb[i].ravel()), True, ka[i].size) for i in sorted(ka)])
    return max(plain, float((ua @ ub.T).max(axis=1).mean()))


def _weighted(layers: list[tuple[int, float, bool, int]]) -> float:
    """The layers' cosines weighted by their sizes: the large layers, where chance agreement is least, count most."""
    sizes = sum(size for *_, size in layers)
    return sum(cosine * size for _, cosine, _, size in layers) / sizes if sizes else 0.0


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / denominator if denominator > 0 else 0.0


def _hash(network: Network) -> str | None:
    return network.weights.get("weights_sha256") if network.weights else None


def _parameters(network: Network) -> int:
    return sum(layer["parameters"] for layer in (network.weights or {}).get("layers", ()))


def _counts(layer: dict[str, Any]) -> bool:
    return layer["parameters"] >= SHARED_LAYER_PARAMETERS and bool(layer.get("varied", True))


def _kernel_shapes(network: Network) -> list[Any]:
    layers = (network.weights or {}).get("layers", ())
    return [layer.get("kernel") for layer in layers]


# Shared mistakes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Habits:
    """What the cohort's wrong answers say, per image and per network."""

    answers: np.ndarray
    "(images, classes): how many cohort networks gave each class to each image."
    prior: np.ndarray
    "(classes, classes): the cohort's wrong answers by true class, as shares of each row."
    tilt: np.ndarray
    "(networks, classes, classes): each network's wrong answers relative to the cohort's, smoothed."


def shared_mistakes(
    networks: list[Network], labels: np.ndarray, classes: int, skip: set[tuple[str, str]] | None = None
) -> list[Finding]:
    """Pairs with more identical wrong answers than networks trained apart give.

    The expected count for a pair is sum_i P(a wrong on i) P(b wrong on i) sum_c r_a(c) r_b(c), where:
    - P(n wrong on i) comes from a logistic model of the cohort's mistakes (each network's skill, each
      image's difficulty), so hard images are expected to be missed together, and a broken network that is
      wrong everywhere is expected to be wrong everywhere;
    - r_n(c), network n's chance of answering c when wrong on i, is the cohort's wrong answers on that image
      (without a and b, smoothed by the cohort's confusions for its true class) tilted by n's own confusion
      matrix against the cohort's, so that two networks answering '1' for everything are expected to agree.
    Networks of one kind (two MLPs) share more mistakes than this model of independence says; the model's
    expectation is therefore scaled by the cohort's own typical excess (the median ratio of observed to
    expected over its pairs, at least 1), so that a pair is measured against pairs trained apart in the same
    course. The count is then a Poisson-binomial; a pair is flagged when its upper tail, times the number of
    pairs compared, is at most FALSE_ALARM.
    """
    answered = [n for n in networks if n.predictions is not None and len(n.predictions) == len(labels)]
    in_cohort = np.array([not n.library for n in answered], dtype=bool)
    if len(answered) < MISTAKES_NEEDS or in_cohort.sum() < 2:
        return []
    skip = skip or set()
    predictions = np.clip(np.stack([n.predictions for n in answered]).astype(np.int64), 0, classes - 1)  # type: ignore[misc]
    labels = labels.astype(np.int64)
    wrong = predictions != labels
    missed = _chance_wrong(wrong, labels, classes, in_cohort)
    habits = _habits(predictions, labels, classes, in_cohort)
    # A network that gives one class to most images (an untrained BatchNormalization does) agrees with any
    # other such network on thousands of wrong answers: its mistakes say nothing about copying.
    commonest = np.array([np.bincount(row, minlength=classes).max() for row in predictions]) / len(labels)
    degenerate = commonest > ONE_CLASS_SHARE
    candidates = []
    for i, j in combinations(range(len(answered)), 2):
        if not (in_cohort[i] or in_cohort[j]) or degenerate[i] or degenerate[j]:
            continue
        if (answered[i].key, answered[j].key) in skip:
            continue
        both = wrong[i] & wrong[j]
        same = np.flatnonzero(both)[predictions[i, both] == predictions[j, both]]
        if len(same) < MIN_SHARED_MISTAKES:
            continue
        joint = missed[i] * missed[j]
        images = np.flatnonzero((joint > 1e-4) | both)
        chance = joint[images] * _same_answer_chance(habits, predictions, labels, images, i, j, in_cohort)
        candidates.append((i, j, same, chance, int(both.sum())))
    # Networks of one kind (two MLPs) share more mistakes than independence says: each network's yardstick
    # is how much it shares with the networks most like it in this cohort (its TYPICAL_SHARE quantile).
    ratio = np.full((len(answered), len(answered)), np.nan)
    for i, j, same, chance, _ in candidates:
        ratio[i, j] = ratio[j, i] = len(same) / max(float(chance.sum()), 1e-9)
    typical = np.ones(len(answered))
    for index in range(len(answered)):
        row = ratio[index][in_cohort & ~np.isnan(ratio[index])]
        if len(row) >= MISTAKES_NEEDS - 1:
            typical[index] = max(float(np.quantile(row, TYPICAL_SHARE)), 1.0)
    tests = max(int(in_cohort.sum()) * (len(answered) - 1) - math.comb(int(in_cohort.sum()), 2), 1)
    found = []
    for i, j, same, chance, both_wrong in candidates:
        excess = SHARED_MARGIN * max(typical[i], typical[j])
        scaled = np.clip(chance * excess, 0.0, 1.0)
        expected, shared = float(scaled.sum()), len(same)
        spread = math.sqrt(max(float((scaled * (1 - scaled)).sum()), 1e-12))
        if (shared - expected) / spread < 3:
            continue
        tail = poisson_binomial_tail(scaled, shared)
        if tail * tests > FALSE_ALARM:
            continue
        found.append(
            Finding(
                "shared mistakes",
                answered[i].key,
                answered[j].key,
                -math.log10(max(tail, 1e-300)),
                f"{shared} identical wrong answers where about {expected:.0f} were expected (both wrong on "
                f"{both_wrong} images; allowing for networks of a kind, which share up to {excess:.2f} times what "
                f"independence predicts in this cohort; chance of so many for a pair trained apart: {_chance(tail)}, "
                f"{_chance(min(tail * tests, 1.0))} for any of the {tests:,} pairs compared)",
                {
                    "identical_wrong": shared,
                    "expected": round(expected, 1),
                    "both_wrong": both_wrong,
                    "cohort_excess": round(excess, 3),
                    "p_value": tail,
                    "pairs": tests,
                },
                tuple(int(index) for index in same),
            )
        )
    return found


def _chance_wrong(
    wrong: np.ndarray, labels: np.ndarray, classes: int, in_cohort: np.ndarray, rounds: int = 30
) -> np.ndarray:
    """Each network's chance of being wrong on each image, from a logistic (Rasch) model fitted to the cohort:
    logit P = skill of the network on the image's true class + difficulty of the image. Skill per class, so
    that a network that never recognises an 8 (or answers '1' to everything) is expected to be wrong on those
    images. Library networks get their skills with the cohort's difficulties."""
    observed = wrong.astype(np.float64)
    by_class = np.eye(classes)[labels]  # (images, classes)
    cohort = observed[in_cohort]
    # Started from the observed rates, so that a network wrong on every image of a class starts (and stays)
    # certain to be wrong there, however easy the images are for the others.
    floor = 0.5 / len(cohort)
    difficulty = _logit(np.clip(cohort.mean(axis=0), floor, 1 - floor))
    counts = by_class.sum(axis=0) + 1e-9
    rates = (observed @ by_class) / counts
    skill = _logit(np.clip(rates, 1e-9, 1 - 1e-9)) - (difficulty @ by_class) / counts
    for _ in range(rounds):
        chance = _logistic(skill[:, labels] + difficulty[None, :])
        slope = chance * (1 - chance)
        skill += ((observed - chance) @ by_class) / (slope @ by_class + 1e-3)
        skill = np.clip(skill, -50, 50)
        chance = _logistic(skill[in_cohort][:, labels] + difficulty[None, :])
        slope = chance * (1 - chance)
        difficulty += (cohort - chance).sum(axis=0) / (slope.sum(axis=0) + 1e-3)
        difficulty = np.clip(difficulty, -15, 15)
    return _logistic(skill[:, labels] + difficulty[None, :]).astype(np.float32)


def _logit(values: np.ndarray) -> np.ndarray:
    return np.log(values / (1 - values))


def _logistic(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def _habits(predictions: np.ndarray, labels: np.ndarray, classes: int, in_cohort: np.ndarray) -> _Habits:
    images = len(labels)
    answers = np.zeros((images, classes))
    for row in predictions[in_cohort]:
        answers[np.arange(images), row] += 1
    confusion = np.zeros((len(predictions), classes, classes))
    for index, row in enumerate(predictions):
        np.add.at(confusion[index], (labels, row), 1)
    off = 1 - np.eye(classes)
    pooled = (confusion[in_cohort] * off).sum(axis=0) + off  # +1: every wrong answer stays possible
    prior = pooled / pooled.sum(axis=1, keepdims=True)
    own = confusion * off
    smoothed = (own + HABIT_WEIGHT * prior) / (own.sum(axis=2, keepdims=True) + HABIT_WEIGHT)
    return _Habits(answers, prior, smoothed / np.where(prior > 0, prior, 1))


def _same_answer_chance(
    habits: _Habits,
    predictions: np.ndarray,
    labels: np.ndarray,
    images: np.ndarray,
    i: int,
    j: int,
    in_cohort: np.ndarray,
) -> np.ndarray:
    """Per image (both wrong), the chance that two independent networks give the same wrong answer."""
    truth = labels[images]
    rows = np.arange(len(images))
    counts = habits.answers[images].copy()
    for index in (i, j):
        if in_cohort[index]:
            counts[rows, predictions[index, images]] -= 1  # leave the pair out of its own yardstick
    counts += PRIOR_WEIGHT * habits.prior[truth]
    counts[rows, truth] = 0
    chances = []
    for index in (i, j):
        weighted = counts * habits.tilt[index][truth]
        weighted[rows, truth] = 0
        chances.append(weighted / weighted.sum(axis=1, keepdims=True))
    return np.clip((chances[0] * chances[1]).sum(axis=1), 0.0, 1.0)


def poisson_binomial_tail(chances: np.ndarray, at_least: int) -> float:
    """P(at least `at_least` successes) for independent trials with these chances (exact, by recursion)."""
    if at_least <= 0:
        return 1.0
    distribution = np.zeros(at_least + 1)
    distribution[0] = 1.0  # the last cell gathers 'at_least or more'
    for chance in chances:
        carried = distribution[-1] + distribution[-2] * chance if at_least >= 1 else distribution[-1]
        distribution[1:-1] = distribution[1:-1] * (1 - chance) + distribution[:-2] * chance
        distribution[0] *= 1 - chance
        distribution[-1] = carried
    return float(min(distribution[-1], 1.0))


def _chance(value: float) -> str:
    """A small probability as a person reads it."""
    if value >= 0.01:
        return f"{value:.2f}"
    if value >= 1e-6:
        return f"about 1 in {round(1 / value):,}"
    return f"below 1 in 10^{math.floor(-math.log10(max(value, 1e-300)))}"
