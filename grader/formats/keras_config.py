"""What the two Keras formats share: the checks a Keras model config gets (its HDF5 storage, that it is a
model, its layer classes, the modules and code it names) and the Keras path of the evaluation worker.

A Keras file names the classes to build, and a class can run code chosen by the file (a Lambda's bytecode) or
read files from disk (a vocabulary): screening refuses those before anything loads the file, unless the
instructor allows code (--allow-lambda, and then only inside the sandbox).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from grader.formats.base import FAIL, PASS, WARN, Check, Evaluator, Inspection, ModelFormat, Screening
from grader.formats.keras_versions import saved_with

# Classes that run code the file chooses, and what they run: never built outside a sandbox, and only
# when the instructor allows it (--allow-lambda).
CODE_LAYER_KINDS = {
    "Lambda": "runs Python code stored in the file",
    "TFOpLambda": "calls a TensorFlow function the file names (tf.keras writes one for a TensorFlow op applied "
    "to a tensor in a functional model, such as inputs / 255 or tf.reshape)",
    "SlicingOpLambda": "calls a TensorFlow function the file names (tf.keras writes one for a tensor slice, "
    "such as x[:, 0])",
}
CODE_LAYERS = frozenset(CODE_LAYER_KINDS)
# Classes refused whatever the allow-list says, and why, in words a TA can pass on.
DANGEROUS_LAYERS = {
    "TFSMLayer": "loads a TensorFlow SavedModel from a path on disk",
    "StringLookup": "can read a vocabulary file from disk",
    "IntegerLookup": "can read a vocabulary file from disk",
    "TextVectorization": "can read vocabulary and IDF files from disk",
    "TorchModuleWrapper": "runs a pickled PyTorch module",
    "JaxLayer": "runs a JAX function",
    "FlaxLayer": "runs a Flax module",
}
# Python modules a Keras config may name for a class: the public Keras modules that hold layers,
# models and their parts (and the internal paths some versions wrote for them). Anything else, even
# inside Keras (keras.utils.get_file, keras.src.saving...), is how the module-path advisories worked.
KERAS_MODULES = (
    "keras",
    "keras.layers",
    "keras.models",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.activations",
    "keras.dtype_policies",
    "keras.mixed_precision",
    "keras.optimizers.schedules",
)
KERAS_INTERNAL_MODULES = (
    "keras.src.layers.",
    "keras.src.models.",
    "keras.src.initializers.",
    "keras.src.regularizers.",
    "keras.src.constraints.",
    "keras.src.activations.",
    "keras.src.dtype_policies.",
    "keras.src.engine.",
    "keras.engine.",
    "keras.src.layers",
    "keras.src.models",
    "keras.src.initializers",
    "keras.src.regularizers",
    "keras.src.constraints",
    "keras.src.activations",
    "keras.src.dtype_policies",
)


def _storage_check(inspection: Inspection) -> Check:
    """The HDF5 structure: nothing may point outside the file or declare bytes it does not store."""
    advice = "save the model with model.save('name.h5') and upload that file unchanged"
    found = [
        (inspection.links, "links that leave the file or point elsewhere in it"),
        (inspection.external_datasets, "datasets stored in other files (external storage)"),
        (inspection.virtual_datasets, "virtual datasets mapped from other files"),
        (inspection.unbacked_datasets, "datasets declaring far more bytes than the file stores"),
    ]
    for items, what in found:
        if items:
            return Check("HDF5 structure", FAIL, f"{what}: {', '.join(items[:3])}; Keras never writes these", advice)
    if inspection.truncated_walk:
        return Check(
            "HDF5 structure",
            FAIL,
            f"more than {inspection.objects - 1:,} HDF5 objects; a Keras model file holds far fewer",
            advice,
        )
    return Check("HDF5 structure", PASS, f"{inspection.objects:,} objects, all inside the file")


def _model_check(inspection: Inspection) -> Check:
    if inspection.weights_only:
        return Check(
            "model",
            FAIL,
            "the file holds weights only (save_weights), not a model",
            "save the whole model with model.save('name.h5'), not model.save_weights()",
        )
    if not inspection.has_model_config:
        return Check(
            "model",
            FAIL,
            "the file holds no Keras model (no model_config)",
            "save the model with model.save('name.h5')",
        )
    if inspection.config_error:
        return Check("model", FAIL, inspection.config_error, "save the model again with model.save('name.h5')")
    saved = f", saved by Keras {inspection.keras_version}" if inspection.keras_version else ""
    return Check("model", PASS, f"{inspection.model_class} with {len(inspection.layers)} layers{saved}")


def _layers_check(inspection: Inspection, allowed: frozenset[str], allow_lambda: bool) -> Check:
    classes = {layer.class_name for layer in inspection.layers}
    dangerous = sorted(classes & set(DANGEROUS_LAYERS))
    if dangerous:
        why = "; ".join(f"{name} {DANGEROUS_LAYERS[name]}" for name in dangerous)
        return Check("layers", FAIL, f"{why}: never loaded for marking", "use Keras's built-in computing layers only")
    unknown = sorted(classes - allowed - CODE_LAYERS)
    if unknown:
        return Check(
            "layers",
            FAIL,
            f"uses layer classes this assignment does not allow: {', '.join(unknown)}",
            "use Keras's built-in layers only (custom layer classes cannot be loaded for marking)",
        )
    custom = sorted(
        {
            f"{layer.class_name} ({layer.registered_name})"
            for layer in inspection.layers
            if layer.registered_name and layer.registered_name != layer.class_name
        }
    )
    if custom:
        return Check(
            "layers", FAIL, f"registered as custom objects: {', '.join(custom)}", "use Keras's built-in layers only"
        )
    readers = [f"{layer.name}: {', '.join(layer.reads_files)}" for layer in inspection.layers if layer.reads_files]
    if readers:
        return Check(
            "layers",
            FAIL,
            f"layers that read files from disk: {'; '.join(readers)}",
            "remove the file paths from the model",
        )
    code = sorted(classes & CODE_LAYERS)
    what = "; ".join(f"{name}, which {CODE_LAYER_KINDS[name]}" for name in code)
    if code and not allow_lambda:
        return Check(
            "layers",
            FAIL,
            f"uses {what}: code chosen by the file is never run on the marking "
            "machine unless the instructor allows it (--allow-lambda)",
            "replace the Lambda layer or "
            "the TensorFlow ops on tensors with built-in layers (e.g. Rescaling(1/255), Reshape, "
            "Activation, Add) and save again",
        )
    if code:
        return Check("layers", WARN, f"uses {what}; allowed by the instructor and run inside the sandbox only")
    return Check("layers", PASS, ", ".join(inspection.layer_classes) or "no layers")


def _code_check(inspection: Inspection, allow_lambda: bool) -> Check:
    """Module paths and embedded code anywhere in the config (activations, initializers, nested objects)."""
    foreign = sorted(m for m in inspection.modules if not _keras_module(m))
    if foreign:
        return Check(
            "config",
            FAIL,
            f"names Python modules outside Keras's layers and their parts: {', '.join(foreign)}",
            "use Keras's built-in layers, activations and initializers only",
        )
    if inspection.code_objects and not allow_lambda:
        return Check(
            "config",
            FAIL,
            f"embeds Python code at {', '.join(inspection.code_objects[:3])}",
            "replace lambdas and custom functions with Keras's built-in layers and activations",
        )
    if inspection.code_objects:
        return Check(
            "config",
            WARN,
            f"embeds Python code at {', '.join(inspection.code_objects[:3])}, allowed "
            "by the instructor and run inside the sandbox only",
        )
    return Check("config", PASS, "Keras classes only, no embedded code")


def _keras_module(module: str) -> bool:
    return module in KERAS_MODULES or module.startswith(KERAS_INTERNAL_MODULES)


class KerasFormat(ModelFormat):
    """A Keras model file (either container): screened by its config, loaded by Keras in the worker."""

    compile_check: ClassVar[bool] = False
    "Whether the worker also checks that the file's saved training setup compiles (load_model(file) does)."

    def screen(self, inspection: Inspection, screening: Screening) -> list[Check]:
        checks = [_storage_check(inspection)]
        model = _model_check(inspection)
        checks.append(model)
        if model.outcome == FAIL:
            return checks
        checks.append(_layers_check(inspection, screening.allowed_layers, screening.allow_lambda))
        checks.append(_code_check(inspection, screening.allow_lambda))
        checks.append(screening.parameters(inspection))
        checks.append(screening.outputs(inspection))
        checks.append(screening.version(inspection))
        architecture = screening.architecture(inspection)
        return checks if architecture is None else [*checks, architecture]

    def runs_code(self, inspection: Inspection) -> bool:
        return bool(inspection.code_objects or set(inspection.layer_classes) & CODE_LAYERS)

    def request(self, inspection: Inspection | None, *, allow_lambda: bool) -> dict[str, Any]:
        """The loaders to try. A Keras 2 file that Keras 3 cannot use is tried with tf_keras, TF 2.18's Keras 2
        loader. That loader runs Lambda bytecode whatever safe_mode says, so screening must have found no
        code in the file, or the instructor must have allowed it."""
        keras2 = inspection is not None and saved_with(inspection.keras_version).keras_major != 3
        carries_code = inspection is not None and self.runs_code(inspection)
        loaders = ["keras3", "tf_keras"] if keras2 and (allow_lambda or not carries_code) else ["keras3"]
        return {"loaders": loaders}

    def saved_with(self, inspection: Mapping[str, Any], *, brief: bool = False) -> str | None:
        return saved_with(inspection.get("keras_version"), inspection.get("backend")).description

    def graded_with(
        self, loader: str | None, versions: Mapping[str, Any], tensorflow: str, *, brief: bool = False
    ) -> str:
        if brief:
            return f"TensorFlow {versions.get('tensorflow', tensorflow)}"
        if versions.get("tensorflow") and loader:
            return f"TensorFlow {versions['tensorflow']} with {loader}"
        return f"TensorFlow {tensorflow} (not evaluated)"

    def evaluate(self, worker: Evaluator, request: dict[str, Any]) -> dict[str, Any]:
        return worker.with_keras(request, compile_check=self.compile_check)
