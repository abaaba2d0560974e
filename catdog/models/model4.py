"""model4's shape, which the Keras model (architectures) and the fast path (catdog.fast) both follow. No TensorFlow."""

# The head's shape and its layers' names: the names carry the fast path's head weights into model4.
HIDDEN = 64
DROPOUT = 0.2
MODEL_NAME, DROPOUT_NAME, NAMES = "head", "head_dropout", ("head_dense", "logits")


class WeightsUnavailable(RuntimeError):
    """The ImageNet weights are neither cached nor downloadable; the message says where to put them."""
