"""ONNX graphs and .keras zips for the format tests, built with the onnx helper API and zipfile (no
TensorFlow, no PyTorch): ordinary ones (an MLP, logits, a fixed batch of 1, CNNs taking NCHW and NHWC, weights
in a file beside the graph) and hostile ones (external data naming /etc/passwd or '../', a custom-domain
operator, a function of its own, a tensor declaring 10^12 elements in a tiny file, a .keras zip bomb, a
.keras member climbing out with '../')."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _model(nodes, inputs, outputs, initializers, name="graph", **kwargs):  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=kwargs.pop("opsets", OPSET), producer_name="grader-tests", **kwargs)
    model.ir_version = 8
    return model


def linear_weights(
    x: np.ndarray, y: np.ndarray, mean: float = 0.1307, std: float = 0.3081
) -> tuple[np.ndarray, np.ndarray]:
    """A least-squares linear classifier of the flattened images, normalised as Oxford's practical does
    (about 85% on MNIST): real predictions."""
    normalised = (x.reshape(len(x), -1).astype(np.float64) / 255 - mean) / std
    flat = np.concatenate([normalised, np.ones((len(x), 1))], axis=1)
    onehot = np.eye(10)[y]
    solution, *_ = np.linalg.lstsq(flat, onehot, rcond=None)
    return solution[:-1].astype(np.float32), solution[-1].astype(np.float32)


def mlp(weight: np.ndarray, bias: np.ndarray, *, batch: int | str = "N", softmax: bool = False) -> onnx.ModelProto:
    """784 inputs, one Gemm (logits, or probabilities with softmax)."""
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["logits"])]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 784])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, 10])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )


def cnn(layout: str, seed: int = 0) -> onnx.ModelProto:
    """Conv(4, 3x3) + ReLU + MaxPool(2) + Flatten + Gemm(10), taking (N, 1, 28, 28) or, with a Transpose
    first as tf2onnx writes it, (N, 28, 28, 1)."""
    rng = np.random.default_rng(seed)
    conv = rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32)
    dense = rng.normal(0, 0.05, (4 * 13 * 13, 10)).astype(np.float32)
    nodes = []
    first = "x"
    shape: list[int | str] = ["N", 1, 28, 28]
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]))
        first, shape = "x_nchw", ["N", 28, 28, 1]
    nodes += [
        helper.make_node("Conv", [first, "K", "KB"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "D", "DB"], ["logits"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [
            numpy_helper.from_array(conv, "K"),
            numpy_helper.from_array(np.zeros(4, np.float32), "KB"),
            numpy_helper.from_array(dense, "D"),
            numpy_helper.from_array(np.zeros(10, np.float32), "DB"),
        ],
    )


def oxford_from_keras(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Oxford's network as PyTorch exports it (NCHW, Conv/Relu/MaxPool/Flatten/Gemm, no Dropout), with the
    weights of a trained Keras copy: kernels moved to ONNX's (out, in, h, w), and the features put back in
    Keras's (height, width, channels) order before flattening, so the two predict the same."""
    conv1 = weights["conv1"].transpose(3, 2, 0, 1)
    conv2 = weights["conv2"].transpose(3, 2, 0, 1)
    nodes = [
        helper.make_node("Conv", ["x", "K1", "B1"], ["c1"], kernel_shape=[12, 12], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "K2", "B2"], ["c2"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["p"], ["p_nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Flatten", ["p_nhwc"], ["f"]),
        helper.make_node("Gemm", ["f", "W1", "D1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "W2", "D2"], ["logits"]),
    ]
    tensors = {
        "K1": conv1,
        "B1": weights["bias1"],
        "K2": conv2,
        "B2": weights["bias2"],
        "W1": weights["dense1"],
        "D1": weights["dbias1"],
        "W2": weights["dense2"],
        "D2": weights["dbias2"],
    }
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name) for name, array in tensors.items()],
    )


def keras_weights(h5_path: Path) -> dict[str, np.ndarray]:
    """The trained Oxford network's weights, read from its .h5 with h5py (layer order: conv, conv, dense, dense)."""
    import h5py

    arrays: list[np.ndarray] = []
    with h5py.File(h5_path, "r") as handle:
        group = handle["model_weights"]
        for layer in [name.decode() if isinstance(name, bytes) else name for name in group.attrs["layer_names"]]:
            names = group[layer].attrs.get("weight_names", [])
            arrays += [np.asarray(group[layer][n.decode() if isinstance(n, bytes) else n]) for n in names]
    keys = ("conv1", "bias1", "conv2", "bias2", "dense1", "dbias1", "dense2", "dbias2")
    return dict(zip(keys, arrays, strict=True))


def with_external(model: onnx.ModelProto, folder: Path, name: str, location: str) -> Path:
    """Save with every initializer in the file `location` beside the graph."""
    path = folder / name
    onnx.save_model(
        model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=location, size_threshold=0
    )
    return path


def pointing_at(model: onnx.ModelProto, location: str, length: int = 64) -> onnx.ModelProto:
    """The graph with its first initializer's bytes said to live in `location` (any path)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    tensor = copy.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return copy


def custom_domain(model: onnx.ModelProto) -> onnx.ModelProto:
    """A node of a custom domain ('com.evil'), as a graph that asks the runtime to run code would have."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    node = helper.make_node("Exec", ["logits"], ["owned"], domain="com.evil")
    copy.graph.node.append(node)
    copy.opset_import.append(helper.make_opsetid("com.evil", 1))
    return copy


def own_function(model: onnx.ModelProto) -> onnx.ModelProto:
    """A model-local function (a custom operator defined in the file)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    function = helper.make_function(
        "local.fns", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])], [helper.make_opsetid("", 17)]
    )
    copy.functions.append(function)
    copy.opset_import.append(helper.make_opsetid("local.fns", 1))
    return copy


def declared_giant() -> onnx.ModelProto:
    """A tensor declaring 10^12 float32 elements (4 TB) while the file stores four bytes."""
    giant = TensorProto()
    giant.name, giant.data_type = "W", TensorProto.FLOAT
    giant.dims.extend([1_000_000, 1_000_000])
    giant.raw_data = b"\0\0\0\0"
    return _model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1_000_000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1_000_000])],
        [giant],
    )


def keras_zip(path: Path, members: dict[str, bytes], *, links: tuple[str, ...] = ()) -> Path:
    """A zip laid out as a .keras file, with the given members (and symbolic-link members)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in links:
                info.external_attr = 0o120777 << 16
            archive.writestr(info, data)
    return path


def zip_bomb(path: Path) -> Path:
    """A .keras whose weights member expands 50 MB of zeros from about 50 KB."""
    return keras_zip(
        path,
        {
            "metadata.json": b'{"keras_version": "3.15.1"}',
            "config.json": b"{}",
            "model.weights.h5": bytes(50 * 1024**2),
        },
    )


def climbing(path: Path) -> Path:
    """A .keras with a member named '../../escape.txt' beside the usual three."""
    return keras_zip(
        path,
        {
            "metadata.json": b'{"keras_version": "3.15.1"}',
            "config.json": b"{}",
            "model.weights.h5": b"",
            "../../escape.txt": b"written outside",
        },
    )


def torch_checkpoint(path: Path) -> Path:
    """A zip laid out as torch.save writes it (archive/data.pkl), named .keras."""
    buffer = io.BytesIO()
    buffer.write(b"\x80\x02}q\x00.")
    return keras_zip(path, {"archive/data.pkl": buffer.getvalue(), "archive/version": b"3\n"})
