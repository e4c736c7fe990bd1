"""An assignment's required architecture, compared layer by layer with what a file's config declares.

A spec is an ordered list of layers, each a kind and the settings the coursework asks for; a setting left
out is open. The comparison reads only the inspection (the config, read with h5py; nothing is built or
run), and treats equivalent spellings as the same network:
- aliases: `Convolution2D` is `Conv2D`, `MaxPool2D` is `MaxPooling2D`;
- an activation layer (`ReLU()`, `Activation('relu')`, `Softmax()`) right after a convolution or dense
  layer without an activation of its own is that layer's activation: `Conv2D` + `ReLU()` is
  `Conv2D(activation='relu')`; `Activation('linear')` is nothing;
- an explicit `ZeroPadding2D` before a convolution is that convolution's padding: padding of 0 is
  'valid', the padding 'same' would add is 'same', anything else is stated as it is;
- `InputLayer` is not a layer (the input shape is the part's).
Layers are then aligned as an edit distance (a missing or extra layer costs one, another kind one and a
half, a differing setting a hundredth), so that a missing dropout shows as missing, not as every later
layer being wrong. The result says, for every layer, what the coursework asks, what the file has, the
expected and found output shape and parameter count, and what to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from grader.formats.keras_layers import ACTIVATION_LAYERS, analyse, canonical_kind

POLICIES = ("refuse", "flag", "report")
"What a mismatch does: refuse the file (no mark), flag it for review, or report it (information only; a"
" sign-off scheme's rules still read the result)."
EXACT, KINDS, DIFFERENT = "exact", "kinds", "different"
STATUSES = (EXACT, KINDS, DIFFERENT)
"Best first: every layer and setting as asked; the right kinds in the right order with some settings"
" different; layers missing, extra or of another kind."
SETTINGS = ("filters", "units", "kernel_size", "pool_size", "strides", "padding", "rate", "activation", "use_bias")
SIZE_SETTINGS = ("kernel_size", "strides", "pool_size")
PADDINGS = ("valid", "same")
MISSING, EXTRA, OTHER_KIND = 1.0, 1.0, 1.5
# Layers an export for inference removes (torch.onnx.export in eval mode drops Dropout).
ERASED_BY_EXPORT = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout"})
SETTING_COST = 0.01
_LINEAR_KINDS = ("Conv", "SeparableConv", "DepthwiseConv", "Dense")


@dataclass(frozen=True)
class LayerSpec:
    """One layer the coursework asks for."""

    kind: str
    "Layer class, under its first name ('Conv2D', 'MaxPooling2D', 'Dense', 'Dropout', 'Flatten')."
    settings: tuple[tuple[str, Any], ...] = ()
    "The settings asked for, as (name, value); sizes as tuples, an activation as a tuple of accepted names."
    says: str = ""
    "Where the coursework asks for it ('seed 002, line 92'), for reports."

    def get(self, key: str) -> Any:
        return dict(self.settings).get(key)

    def call(self) -> str:
        """The layer as a Keras call: "Conv2D(filters=25, kernel_size=12, strides=2, padding='valid')"."""
        return keras_call(self.kind, self.settings)


def keras_call(kind: str, settings: Any) -> str:
    """A layer as Keras code: sizes as tuples, a spec's accepted activations joined by 'or'."""
    shown = []
    for key, value in settings:
        if key == "activation" and isinstance(value, tuple):
            text = " or ".join(repr(name) for name in value)
        elif isinstance(value, tuple | list):
            text = "(" + ", ".join(map(str, value)) + ")"
        else:
            text = repr(value)
        shown.append(f"{key}={text}")
    return f"{kind}({', '.join(shown)})"


@dataclass(frozen=True)
class ArchitectureSpec:
    """The architecture a part requires, and what a mismatch does."""

    layers: tuple[LayerSpec, ...]
    policy: str = "flag"
    "'refuse', 'flag' or 'report' (see POLICIES)."
    input_shape: tuple[int, ...] = ()
    "One image's input shape (without the batch axis) the expected shapes are worked out from."
    document: str = "the assignment"
    "What messages call the coursework ('the practical')."
    source: str = ""
    "Where the coursework prescribes it ('seed 002, lines 92-98')."
    ignore: tuple[str, ...] = ()
    "Layer classes that never count as a difference (a Reshape that turns (28, 28) into (28, 28, 1)): left"
    " out of the comparison, and listed in the report."


@dataclass
class _Found:
    """One layer of the file after equivalent spellings are merged (Conv2D + ReLU is one)."""

    kind: str
    attributes: dict[str, Any]
    number: int
    "Position of its first layer in the model, counted as model.summary() lists them (from 1)."
    names: list[str]
    classes: list[str]
    input_shape: list[Any] | None
    output_shape: list[Any] | None
    parameters: int | None

    def label(self) -> str:
        return f"layer {self.number} ({' + '.join(self.classes)})"

    def call(self) -> str:
        """The layer as a Keras call with the settings a spec can ask about: "Dense(units=128, activation='relu')"."""
        settings = [(key, self.attributes.get(key)) for key in SETTINGS]
        return keras_call(self.kind, [(k, v) for k, v in settings if v is not None and not (k == "use_bias" and v)])


@dataclass(frozen=True)
class Comparison:
    """A file's layers against the spec."""

    status: str
    "'exact', 'kinds' or 'different' (see STATUSES)."
    rows: tuple[dict[str, Any], ...]
    "One per aligned step: number, found, names, expected, says, outcome ('match', 'differs', 'missing',"
    " 'extra', 'other kind'), problems, expected/found output shape and parameters."
    problems: tuple[str, ...]
    "Every difference, as a sentence a student can act on."
    expected_parameters: int | None
    found_parameters: int | None
    document: str = "the assignment"
    source: str = ""
    ignored: tuple[str, ...] = ()
    "The file's layers left out of the comparison because the spec ignores their class ('layer 1 (Reshape)')."

    def summary(self) -> str:
        if self.status == EXACT:
            counted = f", {self.found_parameters:,} parameters" if self.found_parameters is not None else ""
            return f"matches {self.document}'s architecture layer by layer ({len(self.rows)} layers{counted})"
        shown = "; ".join(self.problems[:3])
        more = f"; and {len(self.problems) - 3} more" if len(self.problems) > 3 else ""
        kind = "the right kinds of layer in the right order, but " if self.status == KINDS else ""
        count = f"{len(self.problems)} difference{'s' if len(self.problems) != 1 else ''}"
        return f"{kind}{count} from {self.document}'s architecture: {shown}{more}"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary(),
            "rows": [dict(row) for row in self.rows],
            "problems": list(self.problems),
            "expected_parameters": self.expected_parameters,
            "found_parameters": self.found_parameters,
            "document": self.document,
            "source": self.source,
            "ignored": list(self.ignored),
        }


def compare(layer_table: list[dict[str, Any]] | tuple[dict[str, Any], ...], spec: ArchitectureSpec) -> Comparison:
    """Compare a file's layers (`Inspection.layer_table`) with the spec. The table comes from a hostile file's
    config: values no Keras writes (a stride of 0, a size that is a string) make the comparison
    'different', with the reason, never an exception."""
    try:
        return _compare(layer_table, spec)
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
        problem = (
            f"the model's config holds settings no Keras layer has ({type(error).__name__}: {error}), so its "
            f"architecture cannot be compared with {spec.document}'s"
        )
        return Comparison(DIFFERENT, (), (problem,), None, None, spec.document, spec.source)


def _compare(layer_table: list[dict[str, Any]] | tuple[dict[str, Any], ...], spec: ArchitectureSpec) -> Comparison:
    wanted = canonical_spec(spec.layers)
    if not layer_table:
        problem = (
            "the file's model config could not be read layer by layer, so its architecture cannot be compared "
            f"with {spec.document}'s"
        )
        return Comparison(DIFFERENT, (), (problem,), None, None, spec.document, spec.source)
    ignored = {canonical_kind(kind) for kind in spec.ignore}
    every = canonical_model(layer_table)
    found = [item for item in every if item.kind not in ignored]
    left_out = tuple(item.label() for item in every if item.kind in ignored)
    steps = _align(wanted, found)
    expected = _expected_shapes(steps, spec)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for (want, have), (shape, params) in zip(steps, expected, strict=True):
        row = _row(want, have, shape, params, spec, rows)
        rows.append(row)
        problems.extend(row["problems"])
    outcomes = {row["outcome"] for row in rows}
    if outcomes <= {"match"}:
        status = EXACT
    elif outcomes <= {"match", "differs"}:
        status = KINDS
    else:
        status = DIFFERENT
    known = [params for _, params in expected]
    expected_total = sum(p for p in known if p is not None) if all(p is not None for p in known) else None
    found_params = [item.parameters for item in found]
    found_total = sum(p for p in found_params if p is not None) if all(p is not None for p in found_params) else None
    return Comparison(
        status, tuple(rows), tuple(problems), expected_total, found_total, spec.document, spec.source, left_out
    )


def compare_inspection(inspection: Any, spec: ArchitectureSpec) -> Comparison:
    """Compare an inspected file with the spec. An inference graph (ONNX) has no Dropout: the spec's dropout
    layers are left out of the comparison there, and the result says so."""
    if not getattr(inspection, "inference_graph", False):
        return compare(inspection.layer_table, spec)
    kept = tuple(layer for layer in spec.layers if canonical_kind(layer.kind) not in ERASED_BY_EXPORT)
    result = compare(inspection.layer_table, replace(spec, layers=kept))
    erased = tuple(
        f"{layer.call()} (an exported inference graph holds no dropout)"
        for layer in spec.layers
        if canonical_kind(layer.kind) in ERASED_BY_EXPORT
    )
    return replace(result, ignored=result.ignored + erased)


def at_least(status: str, required: str) -> bool:
    """Whether a comparison's status is `required` or better ('exact' is at least 'kinds')."""
    return STATUSES.index(status) <= STATUSES.index(required)


def canonical_spec(layers: tuple[LayerSpec, ...]) -> list[LayerSpec]:
    """The spec with activation layers folded into the layer before them, as `canonical_model` does."""
    merged: list[LayerSpec] = []
    for layer in layers:
        kind = canonical_kind(layer.kind)
        activation = layer.get("activation") or (_fixed_activation(kind),)
        if kind in ACTIVATION_LAYERS:
            previous = merged[-1] if merged else None
            if previous is not None and previous.kind.startswith(_LINEAR_KINDS):
                before = previous.get("activation")
                if before is None or before == ("linear",):
                    settings = tuple((k, v) for k, v in previous.settings if k != "activation")
                    says = ", ".join(filter(None, dict.fromkeys([previous.says, layer.says])))
                    merged[-1] = LayerSpec(previous.kind, (*settings, ("activation", activation)), says)
                    continue
            merged.append(LayerSpec("Activation", (("activation", activation),), layer.says))
            continue
        merged.append(LayerSpec(kind, layer.settings, layer.says))
    return merged


def _fixed_activation(kind: str) -> str:
    return {"ReLU": "relu", "Softmax": "softmax", "LeakyReLU": "leaky_relu", "ELU": "elu"}.get(kind, "linear")


def canonical_model(layer_table: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> list[_Found]:
    """The file's layers with equivalent spellings merged (see the module's docstring)."""
    found: list[_Found] = []
    for number, layer in enumerate(layer_table, 1):
        kind = canonical_kind(layer.get("class_name", ""))
        attributes = dict(layer.get("attributes") or {})
        item = _Found(
            kind,
            attributes,
            number,
            [layer.get("name", "")],
            [layer.get("class_name", "")],
            layer.get("input_shape"),
            layer.get("output_shape"),
            layer.get("parameters"),
        )
        previous = found[-1] if found else None
        if kind in ACTIVATION_LAYERS:
            activation = attributes.get("activation", "linear")
            if activation == "linear" and previous is not None:
                _absorb(previous, item)
                continue
            linear = previous is not None and previous.kind.startswith(_LINEAR_KINDS)
            if linear and previous is not None and previous.attributes.get("activation") == "linear":
                previous.attributes["activation"] = activation
                _absorb(previous, item)
                continue
            item.kind, item.attributes = "Activation", {"activation": activation}
        elif (
            kind.startswith(("Conv", "SeparableConv", "DepthwiseConv"))
            and previous is not None
            and previous.kind.startswith("ZeroPadding")
            and attributes.get("padding") == "valid"
        ):
            attributes["padding"] = _padding_equivalent(previous, attributes)
            item.number, item.input_shape = previous.number, previous.input_shape
            item.names = previous.names + item.names
            item.classes = previous.classes + item.classes
            found[-1] = item
            continue
        found.append(item)
    # A ZeroPadding of 0 that no convolution took in changes nothing.
    return [
        item
        for item in found
        if not (item.kind.startswith("ZeroPadding") and not any(map(any, item.attributes.get("padding") or [])))
    ]


def _absorb(into: _Found, layer: _Found) -> None:
    into.names.append(layer.names[0])
    into.classes.append(layer.classes[0])
    into.output_shape = layer.output_shape or into.output_shape
    if into.parameters is not None:
        into.parameters = None if layer.parameters is None else into.parameters + layer.parameters


def _padding_equivalent(padding: _Found, conv: dict[str, Any]) -> str:
    """A ZeroPadding before a 'valid' convolution, as that convolution's padding."""
    pairs = padding.attributes.get("padding") or []
    if not any(map(any, pairs)):
        return "valid"
    shape = padding.input_shape
    kernel, strides = conv.get("kernel_size") or [], conv.get("strides") or []
    dilation = conv.get("dilation_rate") or [1] * len(kernel)
    if shape and len(shape) == len(kernel) + 2 and len(pairs) == len(kernel):
        same = []
        for size, k, s, d in zip(shape[1:-1], kernel, strides, dilation, strict=False):
            if size is None:
                break
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            same.append([total // 2, total - total // 2])
        if same == [list(pair) for pair in pairs]:
            return "same"
    return "explicit " + ", ".join(f"({a}, {b})" for a, b in pairs)


def _align(wanted: list[LayerSpec], found: list[_Found]) -> list[tuple[LayerSpec | None, _Found | None]]:
    """The cheapest alignment of spec layers with the file's layers (an edit distance)."""
    rows, cols = len(wanted), len(found)
    cost = [[0.0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        cost[i][0] = i * MISSING
    for j in range(1, cols + 1):
        cost[0][j] = j * EXTRA
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            cost[i][j] = min(
                cost[i - 1][j - 1] + _pair_cost(wanted[i - 1], found[j - 1]),
                cost[i - 1][j] + MISSING,
                cost[i][j - 1] + EXTRA,
            )
    steps: list[tuple[LayerSpec | None, _Found | None]] = []
    i, j = rows, cols
    while i or j:
        if i and j and math.isclose(cost[i][j], cost[i - 1][j - 1] + _pair_cost(wanted[i - 1], found[j - 1])):
            steps.append((wanted[i - 1], found[j - 1]))
            i, j = i - 1, j - 1
        elif i and math.isclose(cost[i][j], cost[i - 1][j] + MISSING):
            steps.append((wanted[i - 1], None))
            i -= 1
        else:
            steps.append((None, found[j - 1]))
            j -= 1
    return steps[::-1]


def _pair_cost(want: LayerSpec, have: _Found) -> float:
    if want.kind != have.kind:
        return OTHER_KIND
    return SETTING_COST * len(_differences(want, have))


def _differences(want: LayerSpec, have: _Found) -> list[tuple[str, Any, Any]]:
    """(setting, asked, found) for every setting the spec names that the file's layer does not meet."""
    dims = len(have.attributes.get("kernel_size") or have.attributes.get("pool_size") or []) or 1
    different = []
    for key, asked in want.settings:
        value = have.attributes.get(key)
        if key in SIZE_SETTINGS:
            ok = value is not None and tuple(value) == _sized(asked, dims)
        elif key == "activation":
            ok = value in asked
        elif key == "rate":
            ok = isinstance(value, int | float) and math.isclose(value, asked, abs_tol=1e-9)
        else:
            ok = value == asked
        if not ok:
            different.append((key, asked, value))
    return different


def _sized(value: Any, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (int(value),) * dims


def _expected_shapes(
    steps: list[tuple[LayerSpec | None, _Found | None]], spec: ArchitectureSpec
) -> list[tuple[list[Any] | None, int | None]]:
    """Each step's expected output shape and parameter count: the spec's layers built from the part's input
    shape, a setting the spec leaves open taken from the file's matching layer. An extra layer expects
    nothing."""
    layers: list[dict[str, Any]] = [{"class_name": "InputLayer", "config": {"batch_shape": [None, *spec.input_shape]}}]
    for want, have in steps:
        if want is None:
            continue
        config: dict[str, Any] = {}
        if have is not None and have.kind == want.kind:
            config.update({k: v for k, v in have.attributes.items() if k in SETTINGS})
        for key, value in want.settings:
            config[key] = list(value) if isinstance(value, tuple) and key != "activation" else value
        if isinstance(config.get("padding"), str) and config["padding"].startswith("explicit"):
            config["padding"] = "valid"  # a shape the spec cannot state: left to the found layer's row
        config.pop("activation", None)
        layers.append({"class_name": want.kind, "config": config})
    analysed = analyse({"class_name": "Sequential", "config": {"layers": layers}}).layers if spec.input_shape else []
    by_spec = iter(analysed)
    result: list[tuple[list[Any] | None, int | None]] = []
    for want, _ in steps:
        if want is None:
            result.append((None, None))
            continue
        entry = next(by_spec, None)
        result.append((entry["output_shape"], entry["parameters"]) if entry else (None, None))
    return result


def _row(
    want: LayerSpec | None,
    have: _Found | None,
    shape: list[Any] | None,
    params: int | None,
    spec: ArchitectureSpec,
    before: list[dict[str, Any]],
) -> dict[str, Any]:
    doc = spec.document
    problems: list[str] = []
    if want is not None and have is not None and want.kind == have.kind:
        for key, asked, value in _differences(want, have):
            problems.append(f"{have.label()}: {_difference_text(key, asked, value, have, doc)}")
        outcome = "differs" if problems else "match"
    elif want is not None and have is not None:
        outcome = "other kind"
        problems.append(f"{have.label()} is {have.call()}; {doc} asks for {want.call()} here")
    elif want is not None:
        outcome = "missing"
        after = next((row for row in reversed(before) if row["number"] is not None), None)
        where = f"after layer {after['number']} ({after['found']})" if after else "as the first layer"
        problems.append(f"{doc} asks for {want.call()} {where}; the model has none there: add it")
    else:
        assert have is not None
        outcome = "extra"
        problems.append(f"{have.label()}, {have.call()}, is not in {doc}'s architecture: remove it")
    return {
        "number": have.number if have else None,
        "found": " + ".join(have.classes) if have else None,
        "names": have.names if have else [],
        "expected": want.call() if want else None,
        "says": want.says if want else "",
        "outcome": outcome,
        "problems": problems,
        "expected_shape": shape,
        "found_shape": have.output_shape if have else None,
        "expected_parameters": params,
        "found_parameters": have.parameters if have else None,
    }


def _difference_text(key: str, asked: Any, value: Any, have: _Found, doc: str) -> str:
    if value is None:
        return f"the file does not state {key}; {doc} asks for {_value_text(key, asked, have)}"
    found = _value_text(key, value, have)
    if key == "padding":
        if asked == "same":
            spatial = (have.input_shape or [])[1:-1]
            strides = have.attributes.get("strides") or []
            if spatial and all(isinstance(size, int) for size in spatial) and all(s == 1 for s in strides):
                kept = "x".join(map(str, spatial))
                return f"padding is {found}, {doc} asks for padding that keeps {kept} (padding='same')"
            return f"padding is {found}, {doc} asks for padding='same'"
        if asked == "valid":
            return f"padding is {found}, {doc} asks for no padding (padding='valid')"
    return f"{key} is {found}, {doc} asks for {_value_text(key, asked, have)}"


def _value_text(key: str, value: Any, have: _Found) -> str:
    if key == "activation":
        names = value if isinstance(value, tuple) else (value,)
        return " or ".join(f"'{name}'" + (" (none)" if name == "linear" else "") for name in names)
    if key in SIZE_SETTINGS:
        dims = len(have.attributes.get(key) or []) or 1
        return "x".join(map(str, _sized(value, dims)))
    return repr(value) if isinstance(value, str) else str(value)
