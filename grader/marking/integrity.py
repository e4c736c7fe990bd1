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
from functools import cache
from itertools import combinations
from typing import Any, Protocol

import numpy as np

DERIVED_SIMILARITY = 0.5
"Matched-kernel cosine (weighted by layer size) from which two networks are called derived; 484 pairs of"
" independently trained networks of one architecture measured at most 0.19, fine-tuned ones 0.99."
APART_MEASURED = 0.19
"The highest matched-kernel cosine measured between networks trained apart (bench/integrity.py: 0.18 over 380"
" pairs; 0.19 over 484 pairs of an earlier cohort)."
SCREEN_SIMILARITY = 0.8
"Similarity of the first wide layer's Gram matrices below which a pair is not matched unit by unit: networks"
" trained apart measured at most 0.45, a one-epoch fine-tune 0.96."
SCREEN_FAN = 64
"A layer whose units see this many inputs or more is wide enough for the screen's Gram matrix."
GRAM_SIDE = 128
"Inputs a Gram matrix is projected to (a fixed random projection), so that a group is compared at once."
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
"Shared mistakes: how far beyond that a pair must go (40 networks trained apart reached at most 1.09 of it)."
ALIGN_REVISION = 1
"What `align` computes: part of a kept alignment's key, so a change to the matching matches every pair again."
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


class Alignments(Protocol):
    """Where pairs already matched unit by unit are kept between runs (the gradebook), by the two files' sha256:
    a regrade matches only the pairs it has not seen. Matching is a pure function of the two files."""

    def get(self, first: str, second: str) -> list[tuple[int, float, bool, int]] | None: ...

    def put(self, first: str, second: str, layers: list[tuple[int, float, bool, int]]) -> None: ...


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
    "Held-out images given the same wrong answer (shared mistakes), in the held-out set's order."


def find_evidence(
    networks: list[Network], labels: np.ndarray | None, classes: int, alignments: Alignments | None = None
) -> list[Finding]:
    """Every pair's evidence, strongest first: students with students, and students with library models.
    `alignments` keeps the unit-by-unit matchings of derived weights for the next run."""
    order = {network.key: index for index, network in enumerate(networks)}

    def pairs_within(groups: dict[Any, list[Network]]) -> list[tuple[Network, Network]]:
        """Pairs of networks sharing a group, in the networks' order; two library models are never a pair."""
        return [
            (a, b)
            for members in groups.values()
            for a, b in combinations(sorted(members, key=lambda n: order[n.key]), 2)
            if not (a.library and b.library)
        ]

    findings = [
        Finding("same file", a.key, b.key, 1e9, f"the same file (sha256 {a.sha256[:12]})")
        for a, b in pairs_within(_groups(networks, lambda n: n.sha256))
    ]
    findings += same_weights([(a, b) for a, b in pairs_within(_groups(networks, _hash)) if a.sha256 != b.sha256])
    exact = {(f.first, f.second) for f in findings}
    by_layer: dict[Any, list[Network]] = {}
    for network in networks:
        for digest in {layer["sha256"] for layer in _layers(network) if _counts(layer)}:
            by_layer.setdefault(digest, []).append(network)
    sharing = {(a.key, b.key): (a, b) for a, b in pairs_within(by_layer) if (a.key, b.key) not in exact}
    findings += shared_layers(list(sharing.values()))
    for members in _groups(networks, lambda n: tuple(_kernel_shapes(n)) or None).values():
        findings += derived_weights(sorted(members, key=lambda n: order[n.key]), exact, alignments)
    if labels is not None:
        findings += shared_mistakes(networks, labels, classes, skip=exact)
    return sorted(findings, key=lambda f: (-f.strength, f.first, f.second))


def _groups(networks: list[Network], key: Callable[[Network], Any]) -> dict[Any, list[Network]]:
    """Networks by a key, leaving out those whose key is None."""
    groups: dict[Any, list[Network]] = {}
    for network in networks:
        if (value := key(network)) is not None:
            groups.setdefault(value, []).append(network)
    return groups


def same_weights(pairs: Iterable[tuple[Network, Network]]) -> list[Finding]:
    return [
        Finding(
            "same weights",
            a.key,
            b.key,
            1e8,
            f"different files holding the same weights (every one of {_parameters(a):,} values equal)",
            {"weights_sha256": _hash(a)},
        )
        for a, b in pairs
    ]


def shared_layers(pairs: Iterable[tuple[Network, Network]]) -> list[Finding]:
    """Pairs some of whose layers (of SHARED_LAYER_PARAMETERS values or more) hold exactly the same weights."""
    found = []
    for a, b in pairs:
        theirs = {layer["sha256"] for layer in _layers(b) if _counts(layer)}
        shared = [layer for layer in _layers(a) if _counts(layer) and layer["sha256"] in theirs]
        count = sum(layer["parameters"] for layer in shared)
        total = _parameters(a)
        names = ", ".join(layer["name"] for layer in shared)
        found.append(
            Finding(
                "shared layers",
                a.key,
                b.key,
                1e7 + count,
                f"{len(shared)} of {len(_layers(a))} layers hold exactly the same weights ({names}: "
                f"{count:,} of {total:,} values); the others differ",
                {"layers": [layer["name"] for layer in shared], "shared_parameters": count, "parameters": total},
            )
        )
    return found


def derived_weights(
    members: list[Network], exact: set[tuple[str, str]], alignments: Alignments | None = None
) -> list[Finding]:
    """Pairs among networks of one architecture whose kernels, units matched, are closer than networks
    trained apart get. A cheap screen over the whole group first (`_screened_pairs`); the unit-by-unit
    matching only for the pairs it passes (or taken from `alignments`, where an earlier run kept it)."""
    kernels = {n.key: n.kernels() for n in members if n.kernels is not None}
    # A network whose kernels were not all kept (over fingerprint.KERNEL_VALUES) is compared by hashes only.
    whole = {index for index, _ in _kernel_shapes(members[0])}
    members = [n for n in members if n.key in kernels and set(kernels[n.key]) == whole]
    found = []
    for a, b in _screened_pairs(members, kernels):
        if (a.key, b.key) in exact or (a.library and b.library):
            continue
        layers = alignments.get(a.sha256, b.sha256) if alignments is not None else None
        if layers is None:
            layers = align(kernels[a.key], kernels[b.key])
            if alignments is not None:
                alignments.put(a.sha256, b.sha256, layers)
        similarity = _weighted(layers)
        if similarity < DERIVED_SIMILARITY:
            continue
        names = {index: layer["name"] for index, layer in enumerate(_layers(a))}
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


def _screened_pairs(members: list[Network], kernels: dict[str, dict[int, np.ndarray]]) -> list[tuple[Network, Network]]:
    """The pairs of one architecture worth matching unit by unit. The screen compares the input-side Gram
    matrices of the first layer whose units see SCREEN_FAN or more inputs: a Gram matrix does not change when
    the layer's own units are re-ordered, so it needs no matching. When that layer is the first, the inputs
    are in a fixed order and the whole group is compared in one matrix product; after small first layers
    (3x3 convolutions of a grey image), those are matched first, pair by pair, which is cheap. A network
    with no such layer is matched with every other."""
    if len(members) < 2:
        return []
    sample = kernels[members[0].key]
    wide = next((index for index in sorted(sample) if _units_matrix(sample[index]).shape[0] >= SCREEN_FAN), None)
    pairs = list(combinations(members, 2))
    if wide is None:
        return pairs
    if wide == min(sample):
        grams = np.stack([_gram(_units_matrix(kernels[n.key][wide])) for n in members])
        similar = grams @ grams.T
        position = {n.key: index for index, n in enumerate(members)}
        return [(a, b) for a, b in pairs if similar[position[a.key], position[b.key]] >= SCREEN_SIMILARITY]
    chosen = []
    for a, b in pairs:
        ka, kb = kernels[a.key], kernels[b.key]
        match = _matches(ka, kb, stop=wide)
        theirs = _permute_inputs(kb[wide], match) if match is not None else kb[wide]
        if float(_gram(_units_matrix(ka[wide])) @ _gram(_units_matrix(theirs))) >= SCREEN_SIMILARITY:
            chosen.append((a, b))
    return chosen


def _units_matrix(kernel: np.ndarray) -> np.ndarray:
    """A kernel as (inputs each unit sees, units)."""
    return kernel.reshape(-1, kernel.shape[-1])


def _gram(units: np.ndarray) -> np.ndarray:
    """The layer's input-side Gram matrix (of its units' unit-length incoming weights), without its diagonal,
    projected to at most GRAM_SIDE inputs (a fixed random projection) and scaled to length 1, flattened."""
    directions = units / np.maximum(np.linalg.norm(units, axis=0, keepdims=True), 1e-12)
    if directions.shape[0] > GRAM_SIDE:
        directions = _projection(directions.shape[0]) @ directions
    gram = directions @ directions.T
    np.fill_diagonal(gram, 0.0)
    norm = float(np.linalg.norm(gram))
    return (gram / norm if norm > 0 else gram).ravel()


@cache
def _projection(inputs: int) -> np.ndarray:
    generator = np.random.default_rng(inputs)
    return (generator.standard_normal((GRAM_SIDE, inputs)) / math.sqrt(GRAM_SIDE)).astype(np.float32)


def align(ka: dict[int, np.ndarray], kb: dict[int, np.ndarray]) -> list[tuple[int, float, bool, int]]:
    """Match b's hidden units to a's layer by layer (each layer's units by their incoming weights, after the
    previous layer's match is applied to its inputs); return each layer's (index, cosine, units kept in
    order, size)."""
    found: list[tuple[int, float, bool, int]] = []
    _matches(ka, kb, found=found)
    return found


def _matches(
    ka: dict[int, np.ndarray],
    kb: dict[int, np.ndarray],
    stop: int | None = None,
    found: list[tuple[int, float, bool, int]] | None = None,
) -> np.ndarray | None:
    """The matching of `align`, over the layers before `stop` (all when None); returns the last match."""
    order = sorted(ka)
    previous: np.ndarray | None = None
    for index in order:
        if stop is not None and index >= stop:
            break
        a, b = ka[index], kb[index]
        if previous is not None:
            b = _permute_inputs(b, previous)
        units = a.shape[-1]
        ua, ub = _units_matrix(a).T, _units_matrix(b).T
        # The last layer's units are the classes: their order is fixed.
        match = np.arange(units) if index == order[-1] else _assignment(_unit(ua) @ _unit(ub).T)
        if found is not None:
            in_order = bool(np.all(match == np.arange(units)))
            found.append((index, _cosine(ua.ravel(), ub[match].ravel()), in_order, int(a.size)))
        previous = match
    return previous


def _assignment(similar: np.ndarray) -> np.ndarray:
    """The one-to-one matching of a's units (rows) to b's (columns) with the largest total similarity. When every
    row's best column is a different column, that is the matching: no matching's total can exceed the sum of the
    rows' maxima, and this one reaches it (the common case for a copy, re-ordered or not, and cheap). Otherwise
    the Hungarian method (scipy's linear_sum_assignment) finds it."""
    best = np.argmax(similar, axis=1)
    if len(np.unique(best)) == len(best):
        return best
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(-similar)[1]


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
    return sum(layer["parameters"] for layer in _layers(network))


def _counts(layer: dict[str, Any]) -> bool:
    return layer["parameters"] >= SHARED_LAYER_PARAMETERS and bool(layer.get("varied", True))


def _kernel_shapes(network: Network) -> list[Any]:
    """Each kernel's layer position and shape: networks alike in these share an architecture."""
    return [(index, tuple(layer["kernel"])) for index, layer in enumerate(_layers(network)) if layer.get("kernel")]


def _layers(network: Network) -> list[dict[str, Any]]:
    return list((network.weights or {}).get("layers", ()))


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

    The expected count for a pair is sum_i sum_c w_a(i, c) w_b(i, c), where w_n(i, c) is network n's chance
    of giving the wrong answer c to image i: P(n wrong on i) r_n(i, c), with
    - P(n wrong on i) from a logistic model of the cohort's mistakes (each network's skill on each class,
      each image's difficulty), so hard images are expected to be missed together, and a network that never
      recognises an 8 is expected to miss every 8;
    - r_n(i, c), n's chance of answering c when wrong on i: the cohort's wrong answers on that image (n's own
      left out, smoothed by the cohort's confusions for its true class) tilted by n's own confusion matrix
      against the cohort's, so that networks with the same habit are expected to agree.
    Networks of one kind (two MLPs) share more mistakes than this model of independence says, so each
    network is allowed SHARED_MARGIN times what it shares with the networks most like it among all it is
    compared with, library models included (the TYPICAL_SHARE quantile of its observed-to-expected ratios);
    a pair is measured against the larger of its
    two allowances. The count is then a Poisson-binomial; a pair is flagged when its upper tail, times the
    number of pairs compared, is at most FALSE_ALARM. All pairs are weighed at once (matrix products), the
    exact tail only for pairs beyond their allowance.
    """
    answered = [n for n in networks if n.predictions is not None and len(n.predictions) == len(labels)]
    in_cohort = np.array([not n.library for n in answered], dtype=bool)
    if len(answered) < MISTAKES_NEEDS or in_cohort.sum() < 2:
        return []
    skip = skip or set()
    predictions = np.clip(np.stack([n.predictions for n in answered]).astype(np.int64), 0, classes - 1)  # type: ignore[misc]
    labels = labels.astype(np.int64)
    wrong = predictions != labels
    chances = _wrong_answer_chances(predictions, labels, classes, in_cohort)
    observed = np.zeros((len(answered), len(answered)), dtype=np.float64)
    expected = np.zeros_like(observed)
    for answer in range(classes):
        given = (wrong & (predictions == answer)).astype(np.float32)
        observed += given @ given.T
        expected += chances[answer] @ chances[answer].T
    # A network that gives one class to most images (an untrained BatchNormalization does) agrees with any
    # other such network on thousands of wrong answers: its mistakes say nothing about copying.
    commonest = np.array([np.bincount(row, minlength=classes).max() for row in predictions]) / len(labels)
    compared = ~(commonest > ONE_CLASS_SHARE)
    pair = np.outer(compared, compared) & (in_cohort[:, None] | in_cohort[None, :])
    np.fill_diagonal(pair, False)
    ratio = np.where(pair & (observed >= MIN_SHARED_MISTAKES), observed / np.maximum(expected, 1e-9), np.nan)
    typical = np.ones(len(answered))
    for index in range(len(answered)):
        row = ratio[index][~np.isnan(ratio[index])]
        if len(row) >= MISTAKES_NEEDS - 1:
            typical[index] = max(float(np.quantile(row, TYPICAL_SHARE)), 1.0)
    allowance = SHARED_MARGIN * np.maximum(typical[:, None], typical[None, :])
    tests = max(int(np.triu(pair).sum()), 1)
    found = []
    for i, j in zip(*np.nonzero(np.triu(ratio > allowance, 1)), strict=True):
        if (answered[i].key, answered[j].key) in skip:
            continue
        excess = float(allowance[i, j])
        scaled = np.clip((chances[:, i] * chances[:, j]).sum(axis=0) * excess, 0.0, 1.0)
        both = wrong[i] & wrong[j]
        same = np.flatnonzero(both & (predictions[i] == predictions[j]))
        mean, shared = float(scaled.sum()), len(same)
        if (shared - mean) / math.sqrt(max(float((scaled * (1 - scaled)).sum()), 1e-12)) < 3:
            continue
        tail = poisson_binomial_tail(scaled[scaled > 1e-9], shared)
        if tail * tests > FALSE_ALARM:
            continue
        found.append(
            Finding(
                "shared mistakes",
                answered[i].key,
                answered[j].key,
                -math.log10(max(tail, 1e-300)),
                f"{shared} identical wrong answers where about {mean:.0f} were expected (both wrong on "
                f"{int(both.sum())} images; allowing for networks of a kind, which share up to {excess:.2f} times "
                f"what independence predicts in this cohort; chance of so many for a pair trained apart: "
                f"{_chance(tail)}, {_chance(min(tail * tests, 1.0))} for any of the {tests:,} pairs compared)",
                {
                    "identical_wrong": shared,
                    "expected": round(mean, 1),
                    "both_wrong": int(both.sum()),
                    "cohort_excess": round(excess, 3),
                    "p_value": tail,
                    "pairs": tests,
                },
                tuple(int(index) for index in same),
            )
        )
    return found


def _wrong_answer_chances(
    predictions: np.ndarray, labels: np.ndarray, classes: int, in_cohort: np.ndarray
) -> np.ndarray:
    """(classes, networks, images): each network's chance of giving each wrong answer to each image (by
    class first, so that each class's slice is one contiguous matrix)."""
    wrong = predictions != labels
    missed = _chance_wrong(wrong, labels, classes, in_cohort)
    habits = _habits(predictions, labels, classes, in_cohort)
    images = np.arange(len(labels))
    yardstick = habits.answers + PRIOR_WEIGHT * habits.prior[labels]
    chances = np.empty((classes, len(predictions), len(labels)), dtype=np.float32)
    for index, row in enumerate(predictions):
        counts = yardstick.copy()
        if in_cohort[index]:
            counts[images, row] -= 1  # its own answers are not its yardstick
        weighted = np.maximum(counts, 0) * habits.tilt[index][labels]
        weighted[images, labels] = 0
        chances[:, index] = (weighted / weighted.sum(axis=1, keepdims=True) * missed[index][:, None]).T
    return chances


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
