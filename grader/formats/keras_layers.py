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
    non_trainable: int = 0
    "Of those, the ones training leaves alone: BatchNormalization's moving statistics, frozen layers."
    multiply_adds: int = 0
    "Roughly how many multiply-adds one image costs: each layer's weights times the positions it slides over."
    complete: bool = True
    "Whether every layer's shape and parameters were understood."
    output_shape: Shape | None = None
    unknown: list[str] = field(default_factory=list)
    "Layer classes whose shapes or parameters were not understood."
    layers: list[dict[str, Any]] = field(default_factory=list)
    "Per layer: name, class_name, input_shape, output_shape, parameters, non_trainable, formula (how the"
    " count comes about, e.g. '(3x3x1 + 1) x 32 = 320') and attributes (see `attributes`)."

    @property
    def trainable(self) -> int:
        return self.parameters - self.non_trainable


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
    given = inputs[0] if inputs else None
    frozen = _non_trainable(kind, config, params)
    result.non_trainable += frozen
    if params and shape is not None:
        channels_first = config.get("data_format") == "channels_first"
        positions = shape[2:] if channels_first else shape[1:-1]
        result.multiply_adds += params * math.prod(size or 1 for size in positions)
    result.layers.append(
        {
            "name": f"{prefix}{name}",
            "class_name": kind,
            "input_shape": list(given) if given else None,
            "output_shape": list(shape) if shape else None,
            "parameters": params,
            "non_trainable": frozen,
            "formula": formula(kind, config, given, params),
            "attributes": _attributes_or_none(kind, config),
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
    if kind in ("Bidirectional", "TimeDistributed"):
        return _wrapper(kind, config, shape, result, prefix)
    return None, None


def _wrapper(
    kind: str, config: dict[str, Any], shape: Shape, result: Architecture, prefix: str
) -> tuple[Shape | None, int | None]:
    """A layer that wraps another (Bidirectional: two copies; TimeDistributed: one, applied at each step): the inner
    layer is worked out as if alone, then taken back out of the list of layers."""
    if kind == "Bidirectional":
        inner = config["layer"]
        before, frozen_before = result.parameters, result.non_trainable
        out = _layer(inner, [shape], result, prefix)
        params = 2 * (result.parameters - before)
        result.parameters, result.non_trainable = before, frozen_before
        result.layers.pop()
        if out is None:
            return None, None
        if config.get("merge_mode", "concat") == "concat":
            out = (*out[:-1], _known(out[-1]) * 2)
        return out, params
    inner = config["layer"]  # TimeDistributed
    before, frozen_before = result.parameters, result.non_trainable
    out = _layer(inner, [(shape[0], *shape[2:])], result, prefix)
    params = result.parameters - before
    result.parameters, result.non_trainable = before, frozen_before
    result.layers.pop()
    return (None if out is None else (shape[0], shape[1], *out[1:])), params


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


# Other spellings of the same layer class (Keras aliases, older names): compared as the first name.
ALIASES = {
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "Convolution3D": "Conv3D",
    "Convolution1DTranspose": "Conv1DTranspose",
    "Convolution2DTranspose": "Conv2DTranspose",
    "Convolution3DTranspose": "Conv3DTranspose",
    "SeparableConvolution1D": "SeparableConv1D",
    "SeparableConvolution2D": "SeparableConv2D",
    "MaxPool1D": "MaxPooling1D",
    "MaxPool2D": "MaxPooling2D",
    "MaxPool3D": "MaxPooling3D",
    "AvgPool1D": "AveragePooling1D",
    "AvgPool2D": "AveragePooling2D",
    "AvgPool3D": "AveragePooling3D",
    "GlobalMaxPool1D": "GlobalMaxPooling1D",
    "GlobalMaxPool2D": "GlobalMaxPooling2D",
    "GlobalMaxPool3D": "GlobalMaxPooling3D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "GlobalAvgPool3D": "GlobalAveragePooling3D",
}
# Layers whose only job is an activation function, and the function each applies (see `attributes`).
ACTIVATION_LAYERS = {"Activation", "ReLU", "Softmax", "LeakyReLU", "ELU", "ThresholdedReLU"}


def canonical_kind(kind: str) -> str:
    """A layer class under its first name: 'Convolution2D' -> 'Conv2D', 'MaxPool2D' -> 'MaxPooling2D'."""
    return ALIASES.get(kind, kind)


def attributes(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The settings of a layer that an architecture spec can ask about, with Keras's defaults filled in
    and sizes as lists (kernel_size 3 -> [3, 3] for a 2D layer); activations by name ('linear' for none)."""
    kind = canonical_kind(kind)
    dims = _dims(kind)
    found: dict[str, Any] = {}
    if config.get("trainable") is False:
        found["trainable"] = False
    if kind.startswith(("Conv", "SeparableConv", "DepthwiseConv")) and dims:
        if "filters" in config:
            found["filters"] = config["filters"]
        for key, default in (("kernel_size", None), ("strides", 1), ("dilation_rate", 1)):
            value = config.get(key, default)
            if value is not None:
                found[key] = list(_tuple(value, dims))
        found["padding"] = str(config.get("padding", "valid")).lower()
        found["activation"] = activation_name(config.get("activation"))
        found["use_bias"] = bool(config.get("use_bias", True))
    elif kind in ("Dense", "EinsumDense"):
        if "units" in config:
            found["units"] = config["units"]
        found["activation"] = activation_name(config.get("activation"))
        found["use_bias"] = bool(config.get("use_bias", True))
    elif "Dropout" in kind:
        if "rate" in config:
            found["rate"] = config["rate"]
    elif kind.startswith(("MaxPooling", "AveragePooling")) and dims:
        pool = _tuple(config.get("pool_size", 2), dims)
        found["pool_size"] = list(pool)
        found["strides"] = list(_tuple(config.get("strides") or pool, dims))
        found["padding"] = str(config.get("padding", "valid")).lower()
    elif kind.startswith("ZeroPadding") and dims:
        found["padding"] = [list(pair) for pair in _pairs(config.get("padding", 1), dims)]
    elif kind in ACTIVATION_LAYERS:
        found["activation"] = _layer_activation(kind, config)
    return found


def _attributes_or_none(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """`attributes`, or {} for settings of a type no Keras writes (a hostile config): never a crash."""
    try:
        return attributes(kind, config)
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError):
        return {}


def activation_name(value: Any) -> str:
    """An activation as a config gives it (a name, None, or Keras 3's serialised function) as a name."""
    if value is None:
        return "linear"
    if isinstance(value, dict):
        inner = value.get("config")
        value = inner if isinstance(inner, str) else value.get("class_name", "custom")
    return str(value).lower()


def _layer_activation(kind: str, config: dict[str, Any]) -> str:
    if kind == "Activation":
        return activation_name(config.get("activation"))
    if kind == "ReLU":
        changed = {
            key: config.get(key)
            for key in ("max_value", "negative_slope", "threshold")
            if config.get(key) not in (None, 0, 0.0)
        }
        if not changed:
            return "relu"
        return "relu(" + ", ".join(f"{key}={value}" for key, value in changed.items()) + ")"
    return {"Softmax": "softmax", "LeakyReLU": "leaky_relu", "ELU": "elu", "ThresholdedReLU": "thresholded_relu"}[kind]


def _dims(kind: str) -> int:
    digits = [char for char in kind if char.isdigit()]
    return int(digits[0]) if digits else 0


def _non_trainable(kind: str, config: dict[str, Any], params: int | None) -> int:
    """How many of a layer's parameters training leaves alone: all of a frozen layer's, and
    BatchNormalization's moving mean and variance."""
    if not params:
        return 0
    if config.get("trainable") is False:
        return params
    if canonical_kind(kind) == "BatchNormalization":
        vectors = int(bool(config.get("center", True))) + int(bool(config.get("scale", True))) + 2
        return 2 * (params // vectors)
    return 0


def formula(kind: str, config: dict[str, Any], given: Shape | None, params: int | None) -> str:
    """How a layer's parameter count comes about: 'Conv2D: (3x3x1 + 1) x 32 = 320',
    'Dense: (1024 + 1) x 10 = 10,250'; '' when the count is not known."""
    if params is None:
        return ""
    kind = canonical_kind(kind)
    if params == 0:
        return "0 (no weights)"
    total = f"{params:,}"
    try:
        text = _formula_terms(kind, config, given, params)
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError):
        text = ""
    note = ""
    if config.get("trainable") is False:
        note = " (frozen: all non-trainable)"
    elif kind == "BatchNormalization":
        frozen = _non_trainable(kind, config, params)
        note = f" ({params - frozen:,} trainable: gamma, beta; {frozen:,} non-trainable: moving mean, variance)"
    return f"{text} = {total}{note}" if text else f"{total}{note}"


def _formula_terms(kind: str, config: dict[str, Any], given: Shape | None, params: int) -> str:
    bias = bool(config.get("use_bias", True))
    channels_first = config.get("data_format") == "channels_first"
    if kind == "Dense" and given is not None:
        width, units = _known(given[-1]), int(config["units"])
        return f"({width} + 1) x {units}" if bias else f"{width} x {units}"
    if kind.startswith(("Conv", "DepthwiseConv", "SeparableConv")) and given is not None and "LSTM" not in kind:
        dims = _dims(kind)
        kernel = "x".join(map(str, _tuple(config["kernel_size"], dims)))
        channels = _known(given[1] if channels_first else given[-1])
        if kind.startswith("DepthwiseConv"):
            multiplier = int(config.get("depth_multiplier", 1))
            weights = f"{kernel}x{channels}x{multiplier}"
            return f"{weights} + {channels * multiplier}" if bias else weights
        if kind.startswith("SeparableConv"):
            multiplier, filters = int(config.get("depth_multiplier", 1)), int(config["filters"])
            depthwise = f"{kernel}x{channels}x{multiplier}"
            pointwise = f"({channels * multiplier} + 1) x {filters}" if bias else f"{channels * multiplier} x {filters}"
            return f"{depthwise} + {pointwise}"
        groups = int(config.get("groups", 1) or 1)
        filters = int(config["filters"])
        inner = f"{kernel}x{channels // groups}"
        return f"({inner} + 1) x {filters}" if bias else f"{inner} x {filters}"
    if kind in ("BatchNormalization", "LayerNormalization", "GroupNormalization"):
        learned = [name for name, key in (("gamma", "scale"), ("beta", "center")) if config.get(key, True)]
        vectors = len(learned) + (2 if kind == "BatchNormalization" else 0)
        return f"{vectors} x {params // vectors}"
    if kind == "Embedding":
        return f"{int(config['input_dim'])} x {int(config['output_dim'])}"
    if kind in ("SimpleRNN", "GRU", "LSTM") and given is not None:
        units, width = int(config["units"]), _known(given[-1])
        gates = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[kind]
        biases = (2 if kind == "GRU" and config.get("reset_after", True) else 1) if bias else 0
        return f"{gates} x ({width} x {units} + {units} x {units}{f' + {biases} x {units}' if biases else ''})"
    return ""


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


def explain_parameters(
    layers: list[dict[str, Any]] | tuple[dict[str, Any], ...],
    stored_by_layer: dict[str, int],
    stored_total: int,
) -> dict[str, Any]:
    """Where a model's parameter count comes from: each layer's formula (from `analyse`), the trainable and
    non-trainable totals, and the check against the weights the file stores, layer by layer.

    Returns {"layers": [...], "trainable", "non_trainable", "total", "stored", "complete", "differing"}, where
    "differing" lists the layers whose config and stored weights disagree (nothing when they agree).
    """
    rows: list[dict[str, Any]] = []
    declared_by_group: dict[str, int] = {}
    complete = bool(layers)
    for number, layer in enumerate(layers, 1):
        params = layer.get("parameters")
        complete = complete and params is not None
        group = layer["name"].split("/")[0]
        declared_by_group[group] = declared_by_group.get(group, 0) + (params or 0)
        rows.append(
            {
                "number": number,
                "name": layer["name"],
                "class_name": layer["class_name"],
                "output_shape": layer.get("output_shape"),
                "parameters": params,
                "non_trainable": layer.get("non_trainable", 0),
                "formula": layer.get("formula") or "",
            }
        )
    differing = [
        {"layer": group, "config": declared_by_group.get(group, 0), "stored": stored_by_layer.get(group, 0)}
        for group in dict.fromkeys([*declared_by_group, *stored_by_layer])
        if declared_by_group.get(group, 0) != stored_by_layer.get(group, 0)
    ]
    total = sum(row["parameters"] or 0 for row in rows)
    non_trainable = sum(row["non_trainable"] or 0 for row in rows)
    return {
        "layers": rows,
        "trainable": total - non_trainable,
        "non_trainable": non_trainable,
        "total": total,
        "stored": stored_total,
        "complete": complete,
        "differing": differing,
    }


def explain_inspection(inspection: dict[str, Any] | None) -> dict[str, Any] | None:
    """`explain_parameters` for a stored inspection (its layer table and stored weights), with its sentence;
    None when the inspection has no layer table."""
    if not inspection or not inspection.get("layer_table"):
        return None
    explained = explain_parameters(
        inspection["layer_table"], inspection.get("stored_by_layer") or {}, inspection.get("parameter_count", 0)
    )
    return {**explained, "sentence": parameters_sentence(explained)}


def parameters_sentence(explained: dict[str, Any]) -> str:
    """'trainable 1,103,539 + non-trainable 0 = 1,103,539 parameters; the stored weights hold 1,103,539,
    layer by layer the same.'"""
    total = explained["total"]
    counted = (
        f"trainable {explained['trainable']:,} + non-trainable {explained['non_trainable']:,} = {total:,} parameters"
    )
    if not explained["complete"]:
        counted += " (some layers not understood: a lower bound)"
    stored = explained["stored"]
    if not explained["differing"]:
        return f"{counted}; the stored weights hold {stored:,}, layer by layer the same"
    where = ", ".join(
        f"{item['layer']} (config {item['config']:,}, stored {item['stored']:,})" for item in explained["differing"][:5]
    )
    return f"{counted}; the stored weights hold {stored:,}: they differ at {where}"
