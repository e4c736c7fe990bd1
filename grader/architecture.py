"""Shapes and parameter counts from a model config alone, the way Keras would build the model.

Nothing is built: each layer's output shape and parameter count are worked out from its config and the
shapes that flow into it. This lets screening compare what a config declares with the weights the file
stores (a config can declare a layer of a billion units while storing a few kilobytes), and gives every
layer's output shape for reports. A layer this module does not know makes the count incomplete, never
wrong: `complete` says whether every layer was understood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int | None, ...]
MODEL_CLASSES = {"Sequential", "Functional", "Model"}
SHAPE_KEEPING = {
    "Activation",
    "ActivityRegularization",
    "AlphaDropout",
    "Dropout",
    "ELU",
    "GaussianDropout",
    "GaussianNoise",
    "Identity",
    "LeakyReLU",
    "Masking",
    "ReLU",
    "Rescaling",
    "Softmax",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "ThresholdedReLU",
    "UnitNormalization",
    "RandomBrightness",
    "RandomContrast",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "RandomShear",
    "RandomGaussianBlur",
    "RandomInvert",
    "RandomPosterization",
    "RandomSharpness",
    "RandomSaturation",
    "RandomHue",
    "RandomGrayscale",
    "RandomColorDegeneration",
    "RandomColorJitter",
    "RandomErasing",
    "RandomPerspective",
    "RandomElasticTransform",
    "AutoContrast",
    "Equalization",
    "Solarization",
    "AugMix",
    "RandAugment",
    "CutMix",
    "MixUp",
    "Normalization",
}
MERGING = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}


@dataclass
class Architecture:
    """What a config declares, worked out statically."""

    parameters: int = 0
    "Parameters of every layer understood (all of them when `complete`)."
    multiply_adds: int = 0
    "Roughly how many multiply-adds one image costs: each layer's weights times the positions it slides over."
    complete: bool = True
    "Whether every layer's shape and parameters were understood."
    output_shape: Shape | None = None
    unknown: list[str] = field(default_factory=list)
    "Layer classes whose shapes or parameters were not understood."
    layers: list[dict[str, Any]] = field(default_factory=list)
    "Per layer: name, class_name, output_shape, parameters."


def analyse(model: dict[str, Any]) -> Architecture:
    """Shapes and parameters of a Sequential or Functional model config (any Keras version's layout)."""
    result = Architecture()
    try:
        result.output_shape = _model(model, None, result, "")
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError, RecursionError):
        result.complete = False
        result.unknown.append("(config not understood)")
    return result


def _model(model: dict[str, Any], given: list[Shape] | None, result: Architecture, prefix: str) -> Shape | None:
    config = model.get("config")
    layers = config if isinstance(config, list) else (config or {}).get("layers", [])
    layers = [layer for layer in layers if isinstance(layer, dict)]
    if isinstance(config, dict) and config.get("input_layers") and any("inbound_nodes" in layer for layer in layers):
        return _functional(model, layers, given, result, prefix)
    shape: Shape | None = given[0] if given else None
    for layer in layers:
        declared = declared_input(layer)
        if declared is not None and (shape is None or layer.get("class_name") == "InputLayer"):
            shape = declared
        if layer.get("class_name") == "InputLayer":
            continue
        shape = _layer(layer, [shape] if shape is not None else None, result, prefix)
    return shape


def _functional(
    model: dict[str, Any], layers: list[dict[str, Any]], given: list[Shape] | None, result: Architecture, prefix: str
) -> Shape | None:
    outputs: dict[str, Shape | None] = {}
    input_names = endpoints(model["config"].get("input_layers"))
    for layer in layers:
        name = _name(layer)
        if layer.get("class_name") == "InputLayer":
            declared = declared_input(layer)
            if given and name in input_names and input_names.index(name) < len(given):
                declared = given[input_names.index(name)]
            outputs[name] = declared
            continue
        inbound = [outputs.get(source) for source in inbound_names(layer)]
        shapes = None if not inbound or any(s is None for s in inbound) else [s for s in inbound if s is not None]
        outputs[name] = _layer(layer, shapes, result, prefix)
    ends = endpoints(model["config"].get("output_layers"))
    return outputs.get(ends[0]) if len(ends) == 1 else None


def config_of(item: dict[str, Any]) -> dict[str, Any]:
    """A layer's or model's 'config' table; {} when the file gives none or something else."""
    config = item.get("config")
    return config if isinstance(config, dict) else {}


def _layer(layer: dict[str, Any], inputs: list[Shape] | None, result: Architecture, prefix: str) -> Shape | None:
    kind = layer.get("class_name", "")
    config = config_of(layer)
    name = _name(layer)
    if kind in MODEL_CLASSES or "layers" in config:
        return _model(layer, inputs, result, f"{prefix}{name}/")
    shape, params = None, None
    if inputs is not None:
        try:
            shape, params = _rule(kind, config, inputs, result, f"{prefix}{name}/")
        except (ArithmeticError, TypeError, ValueError, KeyError, IndexError):
            shape, params = None, None
    if params is None:
        params = _input_free_parameters(kind, config)
    if params is None or (shape is None and inputs is not None):
        result.complete = False
        result.unknown.append(kind)
    result.parameters += params or 0
    if params and shape is not None:
        channels_first = config.get("data_format") == "channels_first"
        positions = shape[2:] if channels_first else shape[1:-1]
        result.multiply_adds += params * math.prod(size or 1 for size in positions)
    result.layers.append(
        {
            "name": f"{prefix}{name}",
            "class_name": kind,
            "output_shape": list(shape) if shape else None,
            "parameters": params,
        }
    )
    return shape


def _rule(
    kind: str, config: dict[str, Any], inputs: list[Shape], result: Architecture, prefix: str
) -> tuple[Shape | None, int | None]:
    shape = inputs[0]
    bias = 1 if config.get("use_bias", True) else 0
    channels_first = config.get("data_format") == "channels_first"
    if kind in SHAPE_KEEPING:
        return shape, 0
    if kind == "Dense":
        units = int(config["units"])
        return (*shape[:-1], units), _known(shape[-1]) * units + bias * units
    if kind == "EinsumDense":
        return None, None
    if kind in MERGING:
        return shape, 0
    if kind == "Concatenate":
        axis = config.get("axis", -1)
        total = sum(_known(s[axis]) for s in inputs)
        joined = list(shape)
        joined[axis] = total
        return tuple(joined), 0
    if kind == "Flatten":
        return (shape[0], math.prod(_known(d) for d in shape[1:])), 0
    if kind == "Reshape":
        target = list(config["target_shape"])
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            target[target.index(-1)] = math.prod(_known(d) for d in shape[1:]) // known
        return (shape[0], *target), 0
    if kind == "Permute":
        dims = config["dims"]
        return (shape[0], *(shape[d] for d in dims)), 0
    if kind == "RepeatVector":
        return (shape[0], int(config["n"]), *shape[1:]), 0
    if kind in ("BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization"):
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        width = _known(shape[axis]) if isinstance(axis, int) else None
        if width is None:
            return shape, None
        center, scale = bool(config.get("center", True)), bool(config.get("scale", True))
        if kind == "RMSNormalization":
            return shape, width
        moving = 2 if kind == "BatchNormalization" else 0
        return shape, (int(center) + int(scale) + moving) * width
    if kind == "PReLU":
        shared = set(config.get("shared_axes") or [])
        return shape, math.prod(1 if i in shared else _known(d) for i, d in enumerate(shape[1:], 1))
    if kind == "Embedding":
        return (*shape, int(config["output_dim"])), int(config["input_dim"]) * int(config["output_dim"])
    if kind.startswith(
        ("Conv", "Convolution", "SeparableConv", "SeparableConvolution", "DepthwiseConv")
    ) and not kind.startswith("ConvLSTM"):
        return _convolution(kind, config, shape, channels_first, bias)
    if kind.startswith(("MaxPool", "AveragePooling", "AvgPool", "MaxPooling")):
        dims = int(kind[-2])
        pool = _tuple(config.get("pool_size", 2), dims)
        strides = _tuple(config.get("strides") or pool, dims)
        return _spatial(shape, pool, strides, (1,) * dims, config.get("padding", "valid"), channels_first, None), 0
    if kind.startswith(("GlobalMaxPool", "GlobalAveragePooling", "GlobalAvgPool")):
        channels = shape[1] if channels_first else shape[-1]
        if config.get("keepdims"):
            return tuple(
                1 if i not in (0, 1 if channels_first else len(shape) - 1) else d for i, d in enumerate(shape)
            ), 0
        return (shape[0], channels), 0
    if kind.startswith(("UpSampling", "ZeroPadding", "Cropping")):
        return _resample(kind, config, shape, channels_first), 0
    if kind in ("Resizing", "CenterCrop", "RandomCrop"):
        height, width = int(config["height"]), int(config["width"])
        if channels_first:
            return (shape[0], shape[1], height, width), 0
        return (shape[0], height, width, *shape[3:]), 0
    if kind in ("SimpleRNN", "GRU", "LSTM"):
        units, width = int(config["units"]), _known(shape[-1])
        gates = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[kind]
        params = gates * (units * width + units * units + bias * units)
        if kind == "GRU" and config.get("reset_after", True) and bias:
            params += gates * units
        sequence: Shape = (shape[0], shape[1], units) if config.get("return_sequences") else (shape[0], units)
        return sequence, params
    if kind == "Bidirectional":
        inner = config["layer"]
        before = result.parameters
        out = _layer(inner, [shape], result, prefix)
        params = 2 * (result.parameters - before)
        result.parameters = before
        result.layers.pop()
        if out is None:
            return None, None
        if config.get("merge_mode", "concat") == "concat":
            out = (*out[:-1], _known(out[-1]) * 2)
        return out, params
    if kind == "TimeDistributed":
        inner = config["layer"]
        before = result.parameters
        out = _layer(inner, [(shape[0], *shape[2:])], result, prefix)
        params = result.parameters - before
        result.parameters = before
        result.layers.pop()
        return (None if out is None else (shape[0], shape[1], *out[1:])), params
    return None, None


def _convolution(kind: str, config: dict[str, Any], shape: Shape, channels_first: bool, bias: int) -> tuple[Shape, int]:
    dims = next(int(c) for c in kind if c.isdigit())
    kernel = _tuple(config["kernel_size"], dims)
    strides = _tuple(config.get("strides", 1), dims)
    dilation = _tuple(config.get("dilation_rate", 1), dims)
    channels = _known(shape[1] if channels_first else shape[-1])
    groups = int(config.get("groups", 1) or 1)
    transpose = "Transpose" in kind
    if kind.startswith("Depthwise"):
        multiplier = int(config.get("depth_multiplier", 1))
        filters = channels * multiplier
        params = math.prod(kernel) * channels * multiplier + bias * filters
    elif kind.startswith("Separable"):
        multiplier = int(config.get("depth_multiplier", 1))
        filters = int(config["filters"])
        params = math.prod(kernel) * channels * multiplier + channels * multiplier * filters + bias * filters
    else:
        filters = int(config["filters"])
        params = math.prod(kernel) * (channels // groups) * filters + bias * filters
    padding = config.get("padding", "valid")
    out = _spatial(shape, kernel, strides, dilation, padding, channels_first, filters, transpose)
    return out, params


def _spatial(
    shape: Shape,
    window: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: str,
    channels_first: bool,
    filters: int | None,
    transpose: bool = False,
) -> Shape:
    sizes = shape[2:] if channels_first else shape[1:-1]
    out: list[int | None] = []
    for size, k, s, d in zip(sizes, window, strides, dilation, strict=True):
        if size is None:
            out.append(None)
            continue
        span = d * (k - 1) + 1
        if transpose:
            out.append(size * s if padding == "same" else (size - 1) * s + span)
        elif padding == "same":
            out.append(-(-size // s))
        else:
            out.append((size - span) // s + 1)
    channels = filters if filters is not None else (shape[1] if channels_first else shape[-1])
    if any(size is not None and size <= 0 for size in out):
        raise ValueError("a window larger than its input")
    return (shape[0], channels, *out) if channels_first else (shape[0], *out, channels)


def _resample(kind: str, config: dict[str, Any], shape: Shape, channels_first: bool) -> Shape:
    dims = int(kind[-2])
    sizes = list(shape[2:] if channels_first else shape[1:-1])
    if kind.startswith("UpSampling"):
        factor = _tuple(config.get("size", 2), dims)
        sizes = [None if n is None else n * f for n, f in zip(sizes, factor, strict=True)]
    else:
        key = "padding" if kind.startswith("ZeroPadding") else "cropping"
        sign = 1 if key == "padding" else -1
        amounts = config.get(key, 1)
        pairs = _pairs(amounts, dims)
        sizes = [None if n is None else n + sign * (a + b) for n, (a, b) in zip(sizes, pairs, strict=True)]
    if channels_first:
        return (shape[0], shape[1], *sizes)
    return (shape[0], *sizes, shape[-1])


def _input_free_parameters(kind: str, config: dict[str, Any]) -> int | None:
    """Parameters that do not depend on the input shape, for layers whose input is unknown."""
    if (
        kind in SHAPE_KEEPING
        or kind in MERGING
        or kind in ("Flatten", "Reshape", "Permute", "RepeatVector", "InputLayer", "Concatenate")
    ):
        return 0
    if kind.startswith(
        (
            "MaxPool",
            "AveragePooling",
            "AvgPool",
            "MaxPooling",
            "GlobalMax",
            "GlobalAv",
            "UpSampling",
            "ZeroPadding",
            "Cropping",
        )
    ):
        return 0
    if kind == "Embedding":
        return int(config["input_dim"]) * int(config["output_dim"])
    if kind == "Dense":
        return int(config["units"])  # at least the biases: a lower bound, flagged incomplete by the caller
    return None


def declared_input(layer: dict[str, Any]) -> Shape | None:
    """The batch input shape a layer's config declares (batch_shape, batch_input_shape, input_shape or,
    except for Embedding, input_dim), or None."""
    config = layer.get("config")
    if not isinstance(config, dict):
        return None
    for key in ("batch_shape", "batch_input_shape"):
        if isinstance(config.get(key), list):
            return tuple(config[key])
    if isinstance(config.get("input_shape"), list):
        return (None, *config["input_shape"])
    if isinstance(config.get("input_dim"), int) and layer.get("class_name") != "Embedding":
        return (None, config["input_dim"])
    return None


def endpoints(entries: Any) -> list[str]:
    """Layer names a functional config lists as 'input_layers' or 'output_layers'.

    Keras 2 writes [[name, 0, 0], ...]; Keras 3 writes [name, 0, 0] for one endpoint, else the nested form.
    """
    if not isinstance(entries, list) or not entries:
        return []
    if isinstance(entries[0], list):
        return [entry[0] for entry in entries if isinstance(entry, list) and entry and isinstance(entry[0], str)]
    return [entries[0]] if isinstance(entries[0], str) else []


def inbound_names(layer: dict[str, Any]) -> list[str]:
    """Names of the layers feeding a functional layer's first call (Keras 2 and Keras 3 layouts)."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    node = nodes[0]
    names: list[str] = []
    stack: list[Any] = [node]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            history = item.get("config", {}).get("keras_history") if isinstance(item.get("config"), dict) else None
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
            elif "args" in item:  # Keras 3: the call's positional arguments hold the input tensors
                stack.extend(item["args"])
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                names.append(item[0])
            else:
                stack.extend(item)
    return names


def _name(layer: dict[str, Any]) -> str:
    config = layer.get("config")
    if isinstance(config, dict) and isinstance(config.get("name"), str):
        return config["name"]
    return str(layer.get("name") or layer.get("class_name", "layer")).lower()


def _tuple(value: Any, dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    return tuple(int(v) for v in value)


def _pairs(value: Any, dims: int) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * dims
    pairs = []
    for item in value:
        pairs.append((int(item), int(item)) if isinstance(item, int) else (int(item[0]), int(item[1])))
    return pairs


def _known(value: int | None) -> int:
    if value is None:
        raise ValueError("an unknown dimension")
    return int(value)
