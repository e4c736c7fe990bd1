"""TensorFlow's kernels against onnxruntime's, one thread each, on the bench's architectures (bench/bench.py).

    python bench/engines.py            # random weights and images: the arithmetic is what is timed

Would a faster engine behind the certificate bring `grade` to twice the arithmetic floor (issue: "onnxruntime
for Keras graphs")? Each architecture is translated to an ONNX graph by hand (Dense, Conv2D, pooling, flatten,
batch normalisation, ReLU and softmax: what the bench's networks hold), then 12,000 images are predicted in
batches of 1,024 by the network's compiled forward pass (as grade's worker runs it) and by an onnxruntime
session, both on one thread. It prints each engine's seconds, the ratio, the largest output difference and
whether every class agrees. Not used by grade.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BENCH = Path(__file__).resolve().parent / "bench.py"


def architectures(keras):  # type: ignore[no-untyped-def]
    """bench.py's ARCHITECTURES (they live in the build script it runs in a child, so they are read from it)."""
    source = BENCH.read_text()
    found = re.search(r"\ndef functional_cnn\(\):.*?\n}\n", source, re.S)
    if found is None:
        raise SystemExit(f"{BENCH} no longer holds functional_cnn and ARCHITECTURES as this script expects")
    names = {"keras": keras, "layers": keras.layers, "sys": sys}
    exec(found.group(0), names)  # the bench's own code, from this repository
    return names["ARCHITECTURES"]


def to_onnx(net) -> bytes:  # type: ignore[no-untyped-def]
    """The network as an ONNX graph: NHWC images in (transposed once before the first convolution, and back
    before flattening, so the dense weights read Keras's order)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights, current, nchw = [], [], "x", False

    def add(op: str, *inputs: str, **attributes) -> None:  # type: ignore[no-untyped-def]
        nonlocal current
        name = f"{op.lower()}{len(nodes)}"
        nodes.append(helper.make_node(op, [current, *inputs], [name], **attributes))
        current = name

    def constant(array: np.ndarray) -> str:
        name = f"w{len(weights)}"
        weights.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    for layer in net.layers:
        kind, config = type(layer).__name__, layer.get_config()
        if kind in ("InputLayer", "Dropout"):
            continue
        if kind == "Conv2D":
            if not nchw:
                add("Transpose", perm=[0, 3, 1, 2])
                nchw = True
            kernel, bias = layer.get_weights()
            rows, cols = config["kernel_size"]
            same = config["padding"] == "same"
            pads = [rows // 2, cols // 2, (rows - 1) // 2, (cols - 1) // 2] if same else [0, 0, 0, 0]
            add("Conv", constant(kernel.transpose(3, 2, 0, 1)), constant(bias), kernel_shape=[rows, cols],
                strides=list(config["strides"]), pads=pads)  # fmt: skip
        elif kind == "MaxPooling2D":
            add("MaxPool", kernel_shape=list(config["pool_size"]), strides=list(config["strides"]))
        elif kind == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            scale = gamma / np.sqrt(variance + config["epsilon"])
            shape = (-1, 1, 1) if nchw else (-1,)
            add("Mul", constant(scale.reshape(shape)))
            add("Add", constant((beta - mean * scale).reshape(shape)))
        elif kind == "Flatten":
            if nchw:
                add("Transpose", perm=[0, 2, 3, 1])
                nchw = False
            add("Flatten", axis=1)
        elif kind == "Dense":
            kernel, bias = layer.get_weights()
            add("Gemm", constant(kernel), constant(bias))
        else:
            raise SystemExit(f"{kind} is not translated here")
        activation = config.get("activation", "linear")
        if activation == "relu":
            add("Relu")
        elif activation == "softmax":
            add("Softmax", axis=-1)
        elif activation != "linear":
            raise SystemExit(f"activation {activation} is not translated here")
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *net.input_shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def compiled(tf, net, shape: tuple[int, ...]):  # type: ignore[no-untyped-def]
    """net(x, training=False) traced once with the batch axis open, as grade's worker runs it (Direct)."""
    return tf.function(lambda batch: net(batch, training=False)).get_concrete_function(
        tf.TensorSpec([None, *shape], tf.float32)
    )


def timed(predict, x: np.ndarray, batch: int = 1024) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    predict(x[:batch])  # warm: traced, sessions' first run
    started = time.perf_counter()
    outputs = np.concatenate([predict(x[start : start + batch]) for start in range(0, x.shape[0], batch)])
    return time.perf_counter() - started, outputs


def main() -> None:
    import keras
    import onnxruntime
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    images = np.random.default_rng(0).random((12_000, 28, 28, 1), np.float32)
    print(f"{'network':20} {'TensorFlow s':>12} {'onnxruntime s':>13} {'ratio':>6} {'max diff':>9}  classes agree")
    for name, build in architectures(keras).items():
        net = build()
        x = images.reshape(images.shape[0], *net.input_shape[1:])
        forward = compiled(tf, net, x.shape[1:])
        session = onnxruntime.InferenceSession(to_onnx(net), options, providers=["CPUExecutionProvider"])
        tf_seconds, tf_out = timed(lambda batch, forward=forward: forward(batch).numpy(), x)
        ort_seconds, ort_out = timed(lambda batch, session=session: session.run(None, {"x": batch})[0], x)
        agree = bool(np.array_equal(tf_out.argmax(1), ort_out.argmax(1)))
        print(
            f"{name:20} {tf_seconds:12.3f} {ort_seconds:13.3f} {tf_seconds / ort_seconds:6.2f} "
            f"{np.abs(tf_out - ort_out).max():9.1e}  {agree}"
        )


if __name__ == "__main__":
    main()
