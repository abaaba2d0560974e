"""catdog: train and understand image classifiers, first of all cats vs. dogs."""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) says nothing to a catdog user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
