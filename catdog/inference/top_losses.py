"""The training photos the model disputes: ranked by the loss on their labels, so that
mislabeled photos rise to the top."""

import logging
from dataclasses import dataclass, replace

import numpy as np

from catdog.data.scan import Scan
from catdog.fast import backbone, head
from catdog.fast.features import FeatureCache
from catdog.inference.answers import class_names, input_size, probabilities, softmax
from catdog.inference.lineage import as_trained
from catdog.inference.loading import at_current_version, head_at, model_at
from catdog.inference.once import OncePerKey
from catdog.messages import Message
from catdog.runs.record import Run
from catdog.runs.states import RunError
from catdog.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)
# Per model version, each photo's class probabilities by its content; and the ranked training split.
_photo_scores = OncePerKey(size=4)
_rankings = OncePerKey(size=16)


@dataclass(frozen=True)
class Suspect:
    """A training photo and how strongly the model disagrees with its label."""

    file: str
    label: str
    predicted: str
    confidence: float  # the model's probability for `predicted`
    loss: float  # the label's cross-entropy: high when the model is sure of another class


def top_losses(run: Run, data: Scan, count: int) -> list[Suspect]:
    """The run's training photos still in `data` (its data folder as scanned now) ranked by the
    model's loss on their labels, highest first: mislabeled photos rise to the top (the model
    learned their class from all the others). A fast-path run's photos are scored out of fold
    (see `_out_of_fold`); any other run's by its own model, which has seen them.

    Ranked once per model version and training-split content, for every session. Each photo's
    probabilities are kept per model version and photo content, in memory and beside the model,
    so after a photo is moved or removed only photos new to the split are scored again.
    """
    classes = class_names(run)
    if data.classes != classes:
        raise RunError(
            Message(
                "run {id} knows the classes {known}; this data set has {classes}",
                id=run.id,
                known=", ".join(classes),
                classes=", ".join(data.classes),
            )
        )
    data, _ = as_trained(run, data)
    key = (str(run.photo_scores_path.resolve()), data.content_key("train"))
    ranked = at_current_version(run, lambda version: _rankings.get((*key, version), lambda: _rank(run, version, data)))
    return ranked[:count]


def _rank(run: Run, version: int, data: Scan) -> list[Suspect]:
    classes, scores = list(data.classes), _scores_at(run, version)
    train = data.files["train"]
    missing = [i for i, (name, _) in enumerate(train) if data.digests[name] not in scores]
    if missing:
        if head_at(run, version) is not None and backbone.available():
            missing, answered = range(len(train)), _out_of_fold(run, data)
        else:
            model = model_at(run, version)
            answered = probabilities(model, data.arrays("train", missing, size=input_size(model))[0])
        for i, probs in zip(missing, answered):
            scores[data.digests[train[i][0]]] = [float(p) for p in probs]
        write_json_atomic(run.photo_scores_path, {"model_mtime_ns": version, "probabilities": dict(scores)})
        log.info("run %s: scored %d training photos for top losses", run.id, len(missing))
    suspects = []
    for name, label in train:
        probs = np.asarray(scores[data.digests[name]])
        guess = int(probs.argmax())
        loss = max(0.0, float(-np.log(max(probs[label], 1e-7))))  # never shown as -0.00
        suspects.append(Suspect(name, classes[label], classes[guess], float(probs[guess]), loss))
    return sorted(suspects, key=lambda suspect: -suspect.loss)


# Heads trained to score each training photo without it: 4/5 of the photos teach each one.
FOLDS = 5


def _out_of_fold(run: Run, data: Scan) -> np.ndarray:
    """Each training photo's probabilities from a head trained as the run's was, on the other
    folds only. The run's own head learns its training photos by heart (training accuracy 1.0),
    a planted dog in cats/ included, so its loss there says nothing; a head that never saw the
    photo answers from what the rest of the class looks like. Cheap on the cached features."""
    cfg = run.config
    cache = FeatureCache(data, cfg.input_size)
    (x, y), (x_val, y_val) = cache.features("train"), cache.features("validation")
    fold = np.random.default_rng(cfg.seed).permutation(len(y)) % FOLDS
    probs = np.zeros((len(y), len(data.classes)), np.float32)
    for k in range(FOLDS):
        held = fold == k
        if held.any():
            trained, _ = head.train(
                x[~held],
                y[~held],
                x_val,
                y_val,
                len(data.classes),
                replace(head.Schedule.of(cfg), seed=cfg.seed + k),
            )
            probs[held] = softmax(trained.logits(x[held]))
    return probs


def _scores_at(run: Run, version: int) -> dict[str, list[float]]:
    """Photo content digest → class probabilities for this model version (saved ones, if current)."""

    def saved() -> dict[str, list[float]]:
        recorded = read_json(run.photo_scores_path)
        current = isinstance(recorded, dict) and recorded.get("model_mtime_ns") == version
        return dict(recorded.get("probabilities") or {}) if current else {}

    return _photo_scores.get((str(run.photo_scores_path.resolve()), version), saved)
