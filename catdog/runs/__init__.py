"""Training runs as records: folders on disk, their store and queue, the Ray backend, lessons. No TensorFlow.

`python -m catdog.runs RUNS_DIR` is the local queue process the store starts."""
