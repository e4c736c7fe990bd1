"""UvA Lab 1, Exercise three: low-level functions (questions 20-25). Hand this file in with your six functions.

Fill in each function below, keeping its name and its arguments: grader calls them with numpy arrays and
compares what they return with the answers it expects. Use numpy only (and Python's math). Try to use
whole-array operations: code that works through each element in turn loses a few marks. Nothing outside
these functions is run (training code and tests you add are left out), so keep what they need inside them
or in other functions and constants of this file.
"""

import numpy as np  # noqa: F401 (your functions use it)


def convolve(image, kernels):
    """Question 20 (5 points): convolve an image, or a stack of feature maps, with a set of filters.

    image: shape (height, width) for one map, or (height, width, channels) for a stack of maps.
    kernels: the filters as Keras stores them, shape (kh, kw, filters) for a (height, width) image or
        (kh, kw, channels, filters) for a stack, each filter as deep as the stack.
    Returns the feature maps stacked, shape (height - kh + 1, width - kw + 1, filters): each output value is
    the sum of a filter times the window of the input under it ('valid', as Keras's Conv2D). A flipped
    kernel (true convolution) and 'same' zero padding are accepted too.
    """
    raise NotImplementedError


def relu(feature_maps):
    """Question 21 (2 points): rectified linear activation, max(x, 0), over arrays of any shape."""
    raise NotImplementedError


def max_pool(feature_maps, size):
    """Question 22 (3 points): max pooling over non-overlapping size x size windows.

    feature_maps: shape (height, width) or (height, width, channels); size: an int, the spatial extent.
    Returns shape (height // size, width // size[, channels]): the largest value in each window of each
    map. Where height or width is not a multiple of size, the ragged edge may be dropped (as Keras's
    padding='valid') or pooled on its own (padding='same').
    """
    raise NotImplementedError


def normalise(feature_maps):
    """Question 23 (2 points): normalise each feature map to mean 0 and standard deviation 1.

    feature_maps: shape (height, width) for one map or (height, width, channels) for a stack, each
    channel's map normalised on its own. Returns the same shape.
    """
    raise NotImplementedError


def fully_connected(inputs, weights, biases):
    """Question 24 (5 points): a fully-connected layer linking every input node to every output node.

    inputs: a feature map or a stack of them, of any shape; flatten it first (in numpy's order, as
        Keras's Flatten does on (height, width, channels)).
    weights: shape (number of inputs, number of outputs); biases: shape (number of outputs,).
    Returns the outputs' activations (no activation function applied), shape (number of outputs,).
    """
    raise NotImplementedError


def softmax(activations):
    """Question 25 (2 points): the probabilities that each element is the classification.

    activations: shape (n,), or a batch of shape (rows, n), the softmax taken over the last axis.
    Returns the same shape; each row sums to 1. Large activations (1000 and more) must not give NaN.
    """
    raise NotImplementedError
