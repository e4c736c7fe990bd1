"""ONNX graphs (torch.onnx.export, tf2onnx, jax2onnx): inspected with the onnx package, predicted with onnxruntime.

Inspection (in the sandboxed inspector child) parses the protobuf without loading external data: producer,
opsets, operators and their domains, custom functions, inputs and outputs with their shapes, each
initializer's declared size against the bytes it stores (or the external file, offset and length it names),
what onnx.checker says, and the graph as a table of layers (Conv, Gemm, MatMul+Add, pooling, activations)
that the architecture checks read like a Keras config. Nothing in the graph is executed here.

Prediction (in the sandboxed worker) uses onnxruntime, single-threaded, on the part's prepared images in the
shape the graph's input declares: channels first or last as its input says, in batches of the size it fixes
(one image at a time for a graph exported with a fixed batch of 1), or image by image for a graph with no
batch axis at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from grader.errors import ModelLoadError
from grader.formats.base import FAIL, PASS, WARN, Check, Evaluator, Inspection, ModelFormat, Screening, installed
from grader.formats.keras_layers import canonical_kind

STANDARD_DOMAINS = ("", "ai.onnx")
# Bytes per element of ONNX's tensor types (TensorProto.DataType), for declared sizes.
ITEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2}
FLOAT_TYPES = {1, 10, 11, 16}
# Operators that move or reshape data without being a layer of the network (PyTorch's dynamic reshapes,
# tf2onnx's layout transposes).
PLUMBING = {
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Cast",
    "Identity",
    "Transpose",
    "Slice",
}
ACTIVATIONS = {
    "Relu": ("ReLU", "relu"),
    "LeakyRelu": ("LeakyReLU", "leaky_relu"),
    "Softmax": ("Softmax", "softmax"),
    "Sigmoid": ("Activation", "sigmoid"),
    "Tanh": ("Activation", "tanh"),
    "Elu": ("ELU", "elu"),
    "LogSoftmax": ("Activation", "log_softmax"),
}
BATCH = 256
MAX_FIXED_BATCH = 4096
# onnx's checker runs on a copy whose external tensors are zeros of their declared size, up to this much.
CHECK_EXTERNAL_BYTES = 256 * 1024**2


def inspect_onnx(path: Path) -> Inspection:
    """Facts about an ONNX file, parsed with onnx alone; external data is named, never read."""
    import onnx

    size = path.stat().st_size
    base: dict[str, Any] = {"path": str(path), "size": size, "format": "onnx"}
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends: a fact about the file
        return Inspection(**base, open_error=f"not a readable ONNX graph ({type(error).__name__}: {error})")
    graph = model.graph
    facts: dict[str, Any] = {**base, "readable": True, "has_model_config": True, "model_class": "ONNX graph"}
    facts["producer"] = f"{model.producer_name} {model.producer_version}".strip() or None
    facts["opsets"] = {entry.domain or "": int(entry.version) for entry in model.opset_import}
    facts["operators"] = tuple(
        dict.fromkeys(
            node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}:{node.op_type}" for node in graph.node
        )
    )
    facts["layer_classes"] = facts["operators"]
    facts["functions"] = tuple(f"{function.domain}:{function.name}" for function in model.functions)
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    shapes = [_dims(value) for value in inputs]
    facts["input_shape"] = shapes[0] if len(shapes) == 1 else shapes or None
    outputs = [_dims(value) for value in graph.output]
    facts["output_shape"] = outputs[0] if outputs else None
    first, out = (shapes[0] if shapes else None), (outputs[0] if outputs else None)
    facts["batch_axis"] = not (out is not None and len(out) == 1)
    if first and facts["batch_axis"] and isinstance(first[0], int):
        facts["fixed_batch"] = first[0]
    if out:
        facts["output_units"] = out[-1] if isinstance(out[-1], int) else None
    facts.update(_tensors(graph, initializers))
    try:
        onnx.checker.check_model(_without_external_data(model))
    except Exception as error:  # the checker's findings are facts about the graph
        facts["checker_error"] = (
            str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        )
    facts.update(_layers(model, initializers))
    return Inspection(**facts)


def _without_external_data(model: Any) -> Any:
    """A copy of the graph whose external tensors no longer name files: onnx's checker looks for the files a
    graph names (any path, /etc/passwd included), and nothing a submission names is touched here."""
    import onnx

    if not any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in model.graph.initializer):
        return model
    declared = sum(
        math.prod(tensor.dims) * ITEM_BYTES.get(tensor.data_type, 8)
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
    )
    if declared > CHECK_EXTERNAL_BYTES:
        raise ValueError(f"not checked: its external tensors declare {declared:,} bytes")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in copy.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
            # Zeros of the declared size stand in for the bytes, which are checked when the file is staged.
            tensor.raw_data = bytes(math.prod(tensor.dims) * ITEM_BYTES.get(tensor.data_type, 8))
    return copy


def _dims(value: Any) -> list[int | None]:
    """A value's shape: each dimension's size, or None where the graph leaves it open (a name, or unset)."""
    return [
        dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None
        for dim in value.type.tensor_type.shape.dim
    ]


def _tensors(graph: Any, initializers: dict[str, Any]) -> dict[str, Any]:
    """Parameters (floating-point initializers), declared sizes against stored bytes, and external data."""
    import onnx

    parameters, arrays, largest = 0, 0, 0
    unbacked, external = [], []
    tensors = list(initializers.values()) + [
        attribute.t
        for node in graph.node
        for attribute in node.attribute
        if attribute.type == onnx.AttributeProto.TENSOR
    ]
    for tensor in tensors:
        dims = list(tensor.dims)
        if any(size < 0 for size in dims):
            unbacked.append(f"{tensor.name} declares a negative size {dims}")
            continue
        count = math.prod(dims)
        declared = count * ITEM_BYTES.get(tensor.data_type, 8)
        largest = max(largest, declared)
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entry = {item.key: item.value for item in tensor.external_data}
            external.append(
                {
                    "tensor": tensor.name,
                    "location": entry.get("location", ""),
                    "offset": entry.get("offset", "0"),
                    "length": entry.get("length", ""),
                    "bytes": declared,
                }
            )
        else:
            stored = len(tensor.raw_data) or _typed_bytes(tensor)
            if declared > stored and count:
                unbacked.append(f"{tensor.name} declares {declared:,} bytes ({dims}) and stores {stored:,}")
        if tensor.data_type in FLOAT_TYPES and tensor.name in initializers:
            parameters += count
            arrays += 1
    return {
        "parameter_count": parameters,
        "weight_arrays": arrays,
        "largest_declared_bytes": largest,
        "unbacked_datasets": tuple(unbacked),
        "external_data": tuple(external),
    }


def _typed_bytes(tensor: Any) -> int:
    """Bytes a tensor stores in its typed fields (float_data, int64_data, ...) rather than raw_data."""
    stored = 0
    for field_name, width in (
        ("float_data", 4),
        ("int32_data", 4),
        ("int64_data", 8),
        ("double_data", 8),
        ("uint64_data", 8),
    ):
        values = len(getattr(tensor, field_name))
        if values:
            # int32_data also carries 8- and 16-bit types, one value each.
            stored += values * (ITEM_BYTES.get(tensor.data_type, width) if field_name == "int32_data" else width)
    return stored + sum(len(item) for item in tensor.string_data)


# The graph as layers ----------------------------------------------------------------------------------


def _layers(model: Any, initializers: dict[str, Any]) -> dict[str, Any]:
    """The graph read as a Keras-like table of layers (see architecture.analyse), in node order."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a help, never a requirement
        inferred = model
    shapes = {
        value.name: _dims(value)
        for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    table: list[dict[str, Any]] = []
    pending_matmul: dict[str, dict[str, Any]] = {}
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    weights = dict(initializers)
    for node in model.graph.node:
        if node.op_type == "Transpose" and node.input and node.input[0] in initializers:
            # A weight transposed in the graph (PyTorch's dynamo export writes Linear as Transpose + MatMul).
            weights[node.output[0]] = _transposed(initializers[node.input[0]])
        if node.op_type in PLUMBING or node.domain not in STANDARD_DOMAINS:
            if node.domain not in STANDARD_DOMAINS:
                table.append(_entry(node, f"{node.domain}:{node.op_type}", {}, shapes, None, ""))
            continue
        attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        op = node.op_type
        if op == "Add" and node.input and node.input[0] in pending_matmul:
            bias = initializers.get(node.input[1]) if len(node.input) > 1 else None
            dense = pending_matmul.pop(node.input[0])
            if bias is not None:
                units = dense["attributes"]["units"]
                dense["parameters"] += math.prod(bias.dims)
                dense["attributes"]["use_bias"] = True
                dense["formula"] = f"({dense['width']} + 1) x {units} = {dense['parameters']:,}"
                dense["output_shape"] = _nhwc(shapes.get(node.output[0]))
                continue
        entry = _layer(node, op, attributes, weights, shapes)
        if entry is not None and op == "Reshape" and consumers.get(node.output[0], set()) & {"Gemm", "MatMul"}:
            entry["class_name"] = "Flatten"  # a reshape to (N, features) before a dense layer, however written
        if entry is None:
            continue
        if op == "MatMul" and entry["class_name"] == "Dense":
            pending_matmul[node.output[0]] = entry
        table.append(entry)
    for entry in table:
        entry.pop("width", None)
    counts = [entry["parameters"] for entry in table]
    return {
        "layer_table": tuple(table),
        "config_parameters": sum(count or 0 for count in counts),
        "config_complete": all(count is not None for count in counts),
        "trainable_parameters": sum(count or 0 for count in counts),
        "non_trainable_parameters": sum(entry["non_trainable"] for entry in table),
        "inference_graph": True,
    }


def _transposed(tensor: Any) -> Any:
    """A stand-in for a transposed 2-D weight: only its name, dims and type are read."""
    import onnx

    copy = onnx.TensorProto()
    copy.name, copy.data_type = tensor.name, tensor.data_type
    copy.dims.extend(reversed(list(tensor.dims)))
    return copy


def _layer(
    node: Any, op: str, attributes: dict[str, Any], initializers: dict[str, Any], shapes: dict[str, Any]
) -> dict[str, Any] | None:
    if op in ACTIVATIONS:
        kind, name = ACTIVATIONS[op]
        return _entry(node, kind, {"activation": name}, shapes, 0, "")
    if op == "Conv":
        weight = initializers.get(node.input[1]) if len(node.input) > 1 else None
        if weight is None or len(weight.dims) != 4:
            return _entry(node, "Conv2D", {}, shapes, None, "")
        filters, channels, height, width = (int(size) for size in weight.dims)
        bias = len(node.input) > 2 and node.input[2] in initializers
        params = math.prod(weight.dims) + (filters if bias else 0)
        settings = {
            "filters": filters,
            "kernel_size": [height, width],
            "strides": list(attributes.get("strides", [1, 1])),
            "dilation_rate": list(attributes.get("dilations", [1, 1])),
            "padding": _padding(attributes, shapes.get(node.input[0]), [height, width]),
            "activation": "linear",
            "use_bias": bias,
        }
        inner = f"{height}x{width}x{channels}"
        formula = f"({inner} + 1) x {filters} = {params:,}" if bias else f"{inner} x {filters} = {params:,}"
        return _entry(node, "Conv2D", settings, shapes, params, formula)
    if op in ("MaxPool", "AveragePool"):
        pool = list(attributes.get("kernel_shape", [2, 2]))
        settings = {
            "pool_size": pool,
            "strides": list(attributes.get("strides", [1] * len(pool))),
            "padding": _padding(attributes, shapes.get(node.input[0]), pool),
        }
        return _entry(node, "MaxPooling2D" if op == "MaxPool" else "AveragePooling2D", settings, shapes, 0, "")
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return _entry(node, canonical_kind(op.replace("Pool", "Pooling2D")), {}, shapes, 0, "")
    if op == "Flatten":
        return _entry(node, "Flatten", {}, shapes, 0, "")
    if op == "Reshape":
        out = shapes.get(node.output[0])
        return _entry(node, "Flatten" if out is not None and len(out) == 2 else "Reshape", {}, shapes, 0, "")
    if op in ("Gemm", "MatMul"):
        weight = initializers.get(node.input[1]) if len(node.input) > 1 else None
        if weight is None or len(weight.dims) != 2:
            return _entry(node, op, {}, shapes, None, "")
        rows, cols = (int(size) for size in weight.dims)
        width, units = (cols, rows) if op == "Gemm" and attributes.get("transB", 0) else (rows, cols)
        bias = op == "Gemm" and len(node.input) > 2 and node.input[2] in initializers
        params = rows * cols + (units if bias else 0)
        formula = f"({width} + 1) x {units} = {params:,}" if bias else f"{width} x {units} = {params:,}"
        entry = _entry(
            node, "Dense", {"units": units, "activation": "linear", "use_bias": bias}, shapes, params, formula
        )
        entry["width"] = width
        return entry
    if op == "Dropout":
        ratio = attributes.get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1] in initializers:
            from onnx import numpy_helper

            ratio = float(numpy_helper.to_array(initializers[node.input[1]]))
        return _entry(node, "Dropout", {"rate": float(ratio)}, shapes, 0, "")
    if op == "BatchNormalization":
        scale = initializers.get(node.input[1]) if len(node.input) > 1 else None
        if scale is None:
            return _entry(node, "BatchNormalization", {}, shapes, None, "")
        channels = int(math.prod(scale.dims))
        entry = _entry(node, "BatchNormalization", {}, shapes, 4 * channels, f"4 x {channels} = {4 * channels:,}")
        entry["non_trainable"] = 2 * channels
        return entry
    return _entry(node, op, {}, shapes, 0, "")


def _entry(
    node: Any, kind: str, settings: dict[str, Any], shapes: dict[str, Any], params: int | None, formula: str
) -> dict[str, Any]:
    return {
        "name": node.name or f"{node.op_type}_{node.output[0] if node.output else ''}",
        "class_name": kind,
        "input_shape": _nhwc(shapes.get(node.input[0])) if node.input else None,
        "output_shape": _nhwc(shapes.get(node.output[0])) if node.output else None,
        "parameters": params,
        "non_trainable": 0,
        "formula": formula or ("0 (no weights)" if params == 0 else ""),
        "attributes": settings,
    }


def _nhwc(shape: list[Any] | None) -> list[Any] | None:
    """A 4-D NCHW shape as Keras writes it (N, H, W, C), so that it reads beside an architecture spec's."""
    if shape is None or len(shape) != 4:
        return shape
    return [shape[0], shape[2], shape[3], shape[1]]


def _padding(attributes: dict[str, Any], given: list[Any] | None, window: list[int]) -> str:
    """ONNX's auto_pad and pads, as Keras's padding names them: 'valid', 'same', or the explicit amounts."""
    auto = attributes.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return "same"
    pads = list(attributes.get("pads", [0] * (2 * len(window))))
    if not any(pads):
        return "valid"
    dims = len(window)
    pairs = [[int(pads[i]), int(pads[i + dims])] for i in range(dims)]
    strides = list(attributes.get("strides", [1] * dims))
    dilations = list(attributes.get("dilations", [1] * dims))
    spatial = (given or [])[2:]
    if len(spatial) == dims and all(isinstance(size, int) for size in spatial):
        same = []
        for size, k, s, d in zip(spatial, window, strides, dilations, strict=True):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            same.append([total // 2, total - total // 2])
        if same == pairs:
            return "same"
    return "explicit " + ", ".join(f"({a}, {b})" for a, b in pairs)


# Prediction (in the worker) ---------------------------------------------------------------------------


def predict_onnx(path: str, x: np.ndarray, threads: int = 1) -> tuple[np.ndarray, dict[str, Any]]:
    """Outputs of an ONNX graph for prepared images `x` (N, height, width[, channels]), fed in the shape its
    input declares, and what was done (fed shape, batches, runtime version)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    started = time.perf_counter()
    try:
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own Fail / InvalidGraph / NotImplemented errors
        raise ModelLoadError(f"onnxruntime cannot load the graph: {error}") from None
    info: dict[str, Any] = {"load_seconds": round(time.perf_counter() - started, 3)}
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"the graph takes {len(inputs)} inputs; a classifier takes one (the images)")
    declared = [size if isinstance(size, int) and size > 0 else None for size in inputs[0].shape]
    output_rank = len(session.get_outputs()[0].shape)
    batch_axis = output_rank != 1
    per_image = declared[1:] if batch_axis else declared
    info["input_shape"] = declared
    fed = _fed(x, per_image)
    count = fed.shape[0]
    dtype = np.float64 if inputs[0].type == "tensor(double)" else np.float32
    fed = fed.astype(dtype, copy=False)
    name = inputs[0].name
    fixed = declared[0] if batch_axis and declared and declared[0] is not None else None
    if fixed is not None and fixed > MAX_FIXED_BATCH:
        raise ValueError(f"the graph fixes a batch of {fixed:,} images; export it with a batch of 1 or an open batch")
    started = time.perf_counter()
    if not batch_axis:
        rows = [np.asarray(session.run(None, {name: fed[i]})[0]).reshape(-1) for i in range(count)]
        outputs = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        info["batches"] = f"one image at a time: the graph's input {declared} has no batch axis"
    else:
        size = fixed or BATCH
        parts = []
        for start in range(0, count, size):
            batch = fed[start : start + size]
            real = batch.shape[0]
            if fixed and real < fixed:
                # A graph fixed at a batch of B takes exactly B images: the last batch is padded, its padding dropped.
                batch = np.concatenate([batch, np.zeros((fixed - real, *batch.shape[1:]), batch.dtype)])
            result = np.asarray(session.run(None, {name: batch})[0])
            parts.append(result.reshape(result.shape[0], -1)[:real])
        outputs = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        info["batches"] = (
            f"in batches of {fixed}, the batch size the graph fixes" if fixed else f"in batches of {BATCH}"
        )
    info["predict_seconds"] = round(time.perf_counter() - started, 3)
    info["fed_shape"] = [count, *fed.shape[1:]]
    return outputs, info


def _fed(x: np.ndarray, per_image: list[int | None]) -> np.ndarray:
    """Prepared images in the per-image shape a graph declares: reshaped when the values line up (grey
    images, flat inputs), moved to channels first when the graph takes (channels, height, width) colour."""
    count, image = x.shape[0], tuple(x.shape[1:])
    values = math.prod(image)
    channels = image[2] if len(image) == 3 else 1
    wanted = list(per_image)
    if len(wanted) == 3 and len(image) == 3 and wanted[0] in (channels, None) and wanted[-1] not in (channels,):
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        image = tuple(x.shape[1:])
    if None in wanted:
        if len(wanted) == len(image):
            wanted = [size if size is not None else image[i] for i, size in enumerate(wanted)]
        elif len(wanted) == len(image) + 1:
            padded = [1, *image] if wanted[0] in (1, None) else [*image, 1]
            wanted = [size if size is not None else padded[i] for i, size in enumerate(wanted)]
    if None in wanted or math.prod(int(size or 0) for size in wanted) != values:
        shape = "(" + ", ".join("None" if s is None else str(s) for s in per_image) + ")"
        described = "x".join(map(str, image))
        raise ValueError(
            f"the graph's input takes {shape} per image, but this part's images are {described} ({values:,} values): "
            "export the model for this part's images"
        )
    return x.reshape(count, *wanted)


# Weights for integrity evidence ----------------------------------------------------------------------


def onnx_weight_layers(path: Path) -> list[tuple[str, list[np.ndarray]]] | None:
    """Each weighted node's initializers in Keras's layout (inputs first, units last), in node order; None when
    the weights live beside the graph (external data is never read here)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in initializers.values()):
        return None
    transposed = {
        node.output[0]: node.input[0]
        for node in model.graph.node
        if node.op_type == "Transpose" and node.input and node.input[0] in initializers
    }
    layers = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in ("Conv", "Gemm", "MatMul", "BatchNormalization"):
            continue
        named = [(position, name) for position, name in enumerate(node.input) if name in initializers]
        named += [(position, transposed[name]) for position, name in enumerate(node.input) if name in transposed]
        if not named:
            continue
        arrays = []
        for position, name in sorted(named):
            array = numpy_helper.to_array(initializers[name])
            if name in transposed.values() and node.input[position] in transposed:
                array = array.T
            if node.op_type == "Conv" and position == 1 and array.ndim >= 3:
                array = np.moveaxis(array, (0, 1), (-1, -2))  # (out, in, *window) -> (*window, in, out)
            elif node.op_type == "Gemm" and position == 1 and _attribute(node, "transB"):
                array = array.T
            arrays.append(array)
        layers.append((node.name or f"{node.op_type}_{index}", arrays))
    return layers


def _attribute(node: Any, name: str) -> Any:
    import onnx

    return next((onnx.helper.get_attribute_value(each) for each in node.attribute if each.name == name), None)


# Screening (in the grading process) ------------------------------------------------------------------


def _operators_check(inspection: Inspection, allowed: frozenset[str]) -> Check:
    """Standard-domain operators from the assignment's list only; no custom domain, no function of its own."""
    fix = "export with the standard operators only (torch.onnx.export with a default opset)"
    if inspection.functions:
        return Check(
            "operators", FAIL, f"the graph defines its own functions: {', '.join(inspection.functions[:5])}", fix
        )
    custom = [op for op in inspection.operators if ":" in op]
    if custom:
        return Check("operators", FAIL, f"operators outside the standard domains: {', '.join(custom[:5])}", fix)
    unknown = sorted(set(inspection.operators) - allowed)
    if unknown:
        return Check("operators", FAIL, f"operators this assignment does not allow: {', '.join(unknown[:8])}", fix)
    extra = sorted(domain for domain in inspection.opsets if domain not in ("", "ai.onnx"))
    imported = f" (it also imports {', '.join(extra)}, which no node uses)" if extra else ""
    return Check("operators", PASS, f"{', '.join(inspection.operators)}{imported}")


def _external_data_check(inspection: Inspection, beside: Mapping[str, int] | None) -> Check:
    """Weights stored beside the graph: only plain file names of the same submission folder, each read
    within its size; any other location could name any file on the disk, and is refused."""
    if not inspection.external_data:
        return Check("external data", PASS, "none: every weight is inside the graph file")
    fix = "export again so that the weights sit in the .onnx file, or hand in the .onnx.data file beside it unchanged"
    files = beside or {}
    problems = []
    for entry in inspection.external_data:
        location, tensor = entry["location"], entry["tensor"]
        if not _plain_name(location):
            problems.append(f"{tensor} names {location!r}, which is not a file name beside the graph")
            continue
        if location not in files:
            problems.append(f"{tensor} names {location!r}, which is not in the submission")
            continue
        try:
            offset = int(entry["offset"] or 0)
            length = int(entry["length"]) if entry["length"] != "" else entry["bytes"]
        except ValueError:
            problems.append(f"{tensor} gives an offset or length that is not a number")
            continue
        if offset < 0 or length < 0 or offset + length > files[location]:
            problems.append(
                f"{tensor} reads bytes {offset:,} to {offset + length:,} of {location} ({files[location]:,} bytes)"
            )
        elif length != entry["bytes"]:
            problems.append(f"{tensor} declares {entry['bytes']:,} bytes but names {length:,} in {location}")
    if problems:
        return Check("external data", FAIL, "; ".join(problems[:3]), fix)
    names = sorted({entry["location"] for entry in inspection.external_data})
    return Check(
        "external data",
        PASS,
        f"{len(inspection.external_data)} tensors in {', '.join(names)}, beside the graph (staged and hashed with it)",
    )


def _plain_name(location: str) -> bool:
    """A file name with no folder in it: no separator, no '..', not absolute, no drive, not hidden."""
    return bool(location) and not (
        "/" in location
        or "\\" in location
        or ":" in location
        or "\x00" in location
        or location.startswith(".")
        or location in ("..", ".")
    )


class Onnx(ModelFormat):
    """`onnx`: an ONNX graph (torch.onnx.export, tf2onnx, jax2onnx), parsed with the onnx package, never run
    outside the worker, predicted there by onnxruntime."""

    name = "onnx"
    suffixes = (".onnx",)
    described = "an ONNX graph"
    short = "ONNX"
    how = "an ONNX export (PyTorch: torch.onnx.export(model, example_input, 'model.onnx'))"
    inspected_as = "onnx"
    save_again = "export the trained model again"
    has_companions = True

    def recognise(self, path: Path, head: bytes, hdf5: bool) -> bool:
        # ONNX's ModelProto begins with ir_version (field 1, varint: 0x08), as every exporter writes it; a
        # safetensors file (an 8-byte length, then JSON) is not one.
        safetensors = len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30)
        return len(head) > 1 and head[0] == 0x08 and 3 <= head[1] <= 20 and not safetensors

    def inspect(self, path: Path) -> Inspection:
        return inspect_onnx(path)

    def container_check(self, inspection: Inspection, screening: Screening) -> Check:
        if not inspection.readable:
            return Check("ONNX graph", FAIL, inspection.open_error, f"export the model again: {screening.advice()}")
        return Check("ONNX graph", PASS, f"a valid ONNX protobuf ({inspection.size:,} bytes)")

    def screen(self, inspection: Inspection, screening: Screening) -> list[Check]:
        """Operators, external data, parameters, outputs, producer, and the architecture."""
        checks = [
            _operators_check(inspection, screening.onnx_operators),
            _external_data_check(inspection, screening.beside),
        ]
        if inspection.checker_error:
            checks.append(
                Check(
                    "ONNX checker",
                    WARN,
                    f"onnx.checker finds the graph malformed: {inspection.checker_error}",
                    "export the model again with a current exporter",
                )
            )
        if inspection.unbacked_datasets:
            checks.append(
                Check(
                    "parameters",
                    FAIL,
                    f"tensors declaring more bytes than the file stores: {', '.join(inspection.unbacked_datasets[:3])}",
                    "export the trained model again",
                )
            )
        else:
            checks.append(screening.parameters(inspection))
        checks.append(screening.outputs(inspection))
        opsets = _opsets(inspection.opsets)
        batch = (
            "; no batch axis: predicted one image at a time"
            if not inspection.batch_axis
            else f"; a fixed batch of {inspection.fixed_batch}: predicted {inspection.fixed_batch} at a time"
            if inspection.fixed_batch
            else ""
        )
        checks.append(
            Check(
                "exporter", PASS, f"exported by {inspection.producer or 'an unnamed exporter'}, opset {opsets}{batch}"
            )
        )
        architecture = screening.architecture(inspection)
        return checks if architecture is None else [*checks, architecture]

    def companions(self, inspection: Inspection) -> tuple[str, ...]:
        return tuple(sorted({entry["location"] for entry in inspection.external_data}))

    def saved_with(self, inspection: Mapping[str, Any], *, brief: bool = False) -> str | None:
        # An ONNX graph states its exporter and operator sets, not a Keras release.
        producer = inspection.get("producer") or "an unnamed exporter"
        if brief:
            return f"{producer} (ONNX)"
        return f"{producer} (ONNX, opset {_opsets(inspection.get('opsets') or {})})"

    def graded_with(
        self, loader: str | None, versions: Mapping[str, Any], tensorflow: str, *, brief: bool = False
    ) -> str:
        return loader or "onnxruntime (not evaluated)"

    def evaluate(self, worker: Evaluator, request: dict[str, Any]) -> dict[str, Any]:
        path, name = request["model"], request.get("name", "model.onnx")
        answer: dict[str, Any] = {
            "id": request.get("id"),
            "versions": {**worker.versions, "onnxruntime": installed("onnxruntime"), "onnx": installed("onnx")},
            "loader": f"onnxruntime {installed('onnxruntime')}",
            "net_type": None,
        }
        x = worker.prepared_images(request)
        try:
            outputs, info = predict_onnx(path, x)
        except ModelLoadError as error:
            return {**answer, "ok": False, "stage": "load", "error": worker.one_line(error, path=path, name=name)}
        except BaseException as error:  # a graph that cannot be run on these images is a fact about the file
            return {**answer, "ok": False, "stage": "predict", "error": worker.one_line(error, path=path, name=name)}
        answer.update(info)
        answer["onnx_batches"] = answer.pop("batches")
        answer["summary"] = []
        return {**answer, **worker.encode(outputs, x.shape[0])}


def _opsets(opsets: Mapping[str, int]) -> str:
    return ", ".join(f"{domain or 'ai.onnx'} {version}" for domain, version in sorted(opsets.items()))


FORMAT = Onnx()
