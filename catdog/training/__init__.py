"""Training one run: the process the queue and Ray start, the Keras loop and its callbacks.

`python -m catdog.training RUN_DIR` trains the run in RUN_DIR and records it."""
