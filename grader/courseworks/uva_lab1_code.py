"""The cases UvA Lab 1's code part (questions 20-25, seed 004 lines 305-315) is checked with.

The instructor's file, run by grader in the grading process (never in the sandbox, never shown to students):
reference implementations and, for each question in uva-lab1.toml, a function that builds its cases from a
seeded generator. To add a question: write its reference and a `<name>_cases(rng)` function returning
`Case`s, add it to CASES, and add a [[parts.questions]] table to the TOML file (see
docs/code-questions.md). Where a question leaves a choice open, a case accepts each variant by name.

The seed's words, and what the cases take from them:
- Q20 convolution "for two-dimensional and three-dimensional inputs", "a set of convolutional filters
  ('kernels' in Keras's terminology)", "each filter should have a third dimension of corresponding size",
  "output a number of two-dimensional feature maps ... stacked into a third dimension": Keras's layout.
  The output size is not stated: 'valid' and 'same', and flipped kernels, are accepted.
- Q21 relu "over a whole feature map, with a threshold at zero".
- Q22 max pooling that lets you "specify the spatial extent of the pooling, with the size of the output
  feature map changing accordingly": non-overlapping windows; a ragged edge may be dropped or kept.
- Q23 "normalisation within each feature map ... mean value is zero and its standard deviation is one":
  each channel on its own; either standard deviation (population or sample) is accepted.
- Q24 a fully-connected layer over "a stack of feature maps ... flattened into a 1-dimensional matrix
  first": weights given as (inputs, outputs); numpy's (Keras's) flattening order, or channels first.
- Q25 softmax of "a 1-dimensional matrix"; a batch case checks the axis, large inputs check stability.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from grader.evaluation.code import Case

# Each case's tolerance: float32 code passes, an answer off in the fifth digit does not.
RTOL, ATOL = 1e-4, 1e-5


def cross_correlate(image: np.ndarray, kernels: np.ndarray, padding: str = "valid") -> np.ndarray:
    """What Keras's Conv2D computes: (H, W[, C]) with (kh, kw[, C], n) -> (H', W', n)."""
    x = image if image.ndim == 3 else image[:, :, None]
    k = kernels if kernels.ndim == 4 else kernels[:, :, None, :]
    kh, kw = k.shape[:2]
    if padding == "same":
        x = np.pad(x, (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(0, 1))  # type: ignore[call-overload]  # (H', W', C, kh, kw)
    return np.tensordot(windows, k, axes=([2, 3, 4], [2, 0, 1]))


def plain_convolution(image: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """The timing baseline: whole-array numpy as a student writes it (sliding windows and einsum), not the
    BLAS-backed tensordot above, which runs ten times faster than code that is just as vectorised. Element-
    by-element code is then 200 times slower or more, and vectorised code (any of the usual ways) within a few
    times: the threshold sits far from both."""
    x = image if image.ndim == 3 else image[:, :, None]
    k = kernels if kernels.ndim == 4 else kernels[:, :, None, :]
    windows = sliding_window_view(x, k.shape[:2], axis=(0, 1))  # type: ignore[call-overload]
    return np.einsum("ijcyx,yxcn->ijn", windows, k)


def convolve_variants(image: np.ndarray, kernels: np.ndarray) -> dict[str, np.ndarray]:
    flipped = kernels[::-1, ::-1]
    return {
        "valid cross-correlation (as Keras's Conv2D)": cross_correlate(image, kernels),
        "valid convolution (flipped filters)": cross_correlate(image, flipped),
        "'same' cross-correlation (zero padding)": cross_correlate(image, kernels, "same"),
        "'same' convolution (zero padding, flipped filters)": cross_correlate(image, flipped, "same"),
    }


def convolve_cases(rng: np.random.Generator) -> list[Case]:
    shapes = [
        ("one 6x6 map, one 3x3 filter", (6, 6), (3, 3, 1)),
        ("one 8x7 map, four 3x3 filters", (8, 7), (3, 3, 4)),
        ("a stack of 3 maps (7x7), two 3x3x3 filters", (7, 7, 3), (3, 3, 3, 2)),
        ("a stack of 2 maps (9x12), three 5x5x2 filters", (9, 12, 2), (5, 5, 2, 3)),
        ("a stack of 1 map (6x6), two 2x2x1 filters", (6, 6, 1), (2, 2, 1, 2)),
    ]
    cases = []
    for name, image_shape, kernel_shape in shapes:
        image, kernels = rng.normal(size=image_shape), rng.normal(size=kernel_shape)
        cases.append(Case(name, (image, kernels), convolve_variants(image, kernels), RTOL, ATOL))
    image, kernels = rng.normal(size=(96, 96, 8)), rng.normal(size=(3, 3, 8, 16))
    timed = "a stack of 8 maps (96x96), sixteen 3x3x8 filters (timed)"
    cases.append(
        Case(timed, (image, kernels), convolve_variants(image, kernels), RTOL, ATOL, reference=plain_convolution)
    )
    return cases


def reference_relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for name, shape in (("one 5x5 map", (5, 5)), ("a stack of 3 maps (6x6)", (6, 6, 3)), ("a vector", (10,))):
        x = rng.normal(size=shape)
        x.flat[0] = 0.0
        cases.append(Case(name, (x,), reference_relu(x), RTOL, ATOL))
    x = rng.normal(size=(256, 256, 16))
    cases.append(Case("a stack of 16 maps (256x256) (timed)", (x,), reference_relu(x), RTOL, ATOL, reference_relu))
    return cases


def pool(x: np.ndarray, size: int, ragged: str = "drop") -> np.ndarray:
    """Max pooling over size x size windows with stride size; a ragged edge dropped or pooled alone."""
    maps = x if x.ndim == 3 else x[:, :, None]
    height, width = maps.shape[:2]
    if ragged == "keep":
        tall, wide = -(-height // size) * size, -(-width // size) * size
        maps = np.pad(maps, ((0, tall - height), (0, wide - width), (0, 0)), constant_values=-np.inf)
    else:
        maps = maps[: height // size * size, : width // size * size]
    rows, columns = maps.shape[0] // size, maps.shape[1] // size
    pooled = maps.reshape(rows, size, columns, size, maps.shape[2]).max(axis=(1, 3))
    return pooled if x.ndim == 3 else pooled[:, :, 0]


def pool_variants(x: np.ndarray, size: int) -> dict[str, np.ndarray]:
    return {
        "ragged edge dropped (as padding='valid')": pool(x, size),
        "ragged edge pooled on its own (as padding='same')": pool(x, size, "keep"),
    }


def max_pool_cases(rng: np.random.Generator) -> list[Case]:
    shapes = [
        ("one 4x4 map, extent 2", (4, 4), 2),
        ("a stack of 3 maps (6x6), extent 2", (6, 6, 3), 2),
        ("a stack of 2 maps (6x6), extent 3", (6, 6, 2), 3),
        ("a stack of 2 maps (7x5), extent 2 (a ragged edge)", (7, 5, 2), 2),
        ("one 9x9 map, extent 3", (9, 9), 3),
    ]
    cases = [Case(name, (x := rng.normal(size=shape), size), pool_variants(x, size)) for name, shape, size in shapes]
    x = rng.normal(size=(256, 256, 16))
    cases.append(Case("a stack of 16 maps (256x256), extent 2 (timed)", (x, 2), pool_variants(x, 2), reference=pool))
    return cases


def standardise(x: np.ndarray, ddof: int = 0) -> np.ndarray:
    axes = (0, 1)
    return (x - x.mean(axis=axes)) / x.std(axis=axes, ddof=ddof)


def normalise_variants(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"population standard deviation": standardise(x), "sample standard deviation": standardise(x, 1)}


def normalise_cases(rng: np.random.Generator) -> list[Case]:
    cases = []
    for name, shape in (("one 5x5 map", (5, 5)), ("a stack of 2 maps (4x7)", (4, 7, 2))):
        x = rng.normal(loc=3.0, scale=2.0, size=shape)
        cases.append(Case(name, (x,), normalise_variants(x), RTOL, ATOL))
    # Channels of very different scale and offset: normalising the whole stack at once fails this.
    x = rng.normal(size=(6, 6, 3)) * np.array([1.0, 10.0, 0.1]) + np.array([0.0, 50.0, -2.0])
    cases.append(Case("a stack of 3 maps (6x6) of different scales", (x,), normalise_variants(x), RTOL, ATOL))
    x = rng.normal(loc=1.0, size=(256, 256, 16))
    cases.append(Case("a stack of 16 maps (256x256) (timed)", (x,), normalise_variants(x), RTOL, ATOL, standardise))
    return cases


def dense(inputs: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    return inputs.reshape(-1) @ weights + biases


def dense_variants(inputs: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> dict[str, np.ndarray]:
    variants = {"flattened in numpy's order (as Keras's Flatten)": dense(inputs, weights, biases)}
    if inputs.ndim == 3:
        channels_first = np.transpose(inputs, (2, 0, 1))
        variants["flattened channels first (as PyTorch's flatten)"] = dense(channels_first, weights, biases)
    return variants


def fully_connected_cases(rng: np.random.Generator) -> list[Case]:
    shapes = [
        ("10 inputs, 4 outputs", (10,), 4),
        ("one 3x5 map, 3 outputs", (3, 5), 3),
        ("a stack of 2 maps (4x4), 5 outputs", (4, 4, 2), 5),
        ("a stack of 3 maps (6x6), 10 outputs", (6, 6, 3), 10),
    ]
    cases = []
    for name, shape, outputs in shapes:
        inputs = rng.normal(size=shape)
        weights, biases = rng.normal(size=(inputs.size, outputs)), rng.normal(size=outputs)
        cases.append(Case(name, (inputs, weights, biases), dense_variants(inputs, weights, biases), RTOL, ATOL))
    inputs = rng.normal(size=(32, 32, 16))
    weights, biases = rng.normal(size=(inputs.size, 64)), rng.normal(size=64)
    name = "a stack of 16 maps (32x32), 64 outputs (timed)"
    cases.append(
        Case(name, (inputs, weights, biases), dense_variants(inputs, weights, biases), RTOL, ATOL, reference=dense)
    )
    return cases


def reference_softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def softmax_cases(rng: np.random.Generator) -> list[Case]:
    inputs = [
        ("3 activations", np.array([1.0, 2.0, 3.0])),
        ("10 activations", rng.normal(size=10)),
        ("large activations (1000, 1001, 1002)", np.array([1000.0, 1001.0, 1002.0])),
        ("very negative activations", np.array([-1000.0, -1001.0, -999.0, -1000.5])),
        ("a batch of 4 rows of 10 (over the last axis)", rng.normal(size=(4, 10))),
    ]
    cases = [Case(name, (x,), reference_softmax(x), RTOL, 1e-8) for name, x in inputs]
    x = rng.normal(size=(200_000,))
    cases.append(Case("200,000 activations (timed)", (x,), reference_softmax(x), RTOL, 1e-12, reference_softmax))
    return cases


CASES = {
    "q20": convolve_cases,
    "q21": relu_cases,
    "q22": max_pool_cases,
    "q23": normalise_cases,
    "q24": fully_connected_cases,
    "q25": softmax_cases,
}
