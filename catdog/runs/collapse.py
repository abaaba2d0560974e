"""A run that did not learn: its loss at ln K and its accuracy at chance, epochs after the start.

A network whose ReLUs all died (the posts' model2 sees raw 0..255 pixels, and one big first step
of Adam can push every unit negative) outputs the same logits for every photo: its loss is then
the cross-entropy of a constant guess, ln K for K balanced classes, and its accuracy the share of
the largest class. Such a run is no evidence about the setting it was meant to test. One
definition here serves training's status, the runs table and the lessons; no TensorFlow.
"""

import math

from catdog.messages import Message

# The first epochs may sit at chance while a network finds its way; judged only from this epoch on.
GRACE_EPOCHS = 3
# A constant guess on balanced classes scores ln K exactly; a network that learned anything has
# moved its training loss below it by more than this (on cats_and_dogs_filtered model2 is at
# 0.66 or lower after 3 epochs when it learns, at 0.693 +- 0.001 when it has died).
LOSS_MARGIN = 0.02
# Accuracy within this of chance (1 / K) is chance: a dead network on slightly unbalanced batches
# wanders a point or two around it, one that learned is 5 or more points above by epoch 3.
CHANCE_MARGIN = 0.04


def collapse_reason(history: list[dict], num_classes: int) -> str | None:
    """Why a run counts as not learning, in one sentence; None when it learned or it is too early to say.

    Judged on its last epoch: a run that recovers is not flagged, one that dies late is.
    """
    epochs = [record for record in history if record.get("loss") is not None]
    if len(epochs) < GRACE_EPOCHS or num_classes < 2:
        return None
    last = epochs[-1]
    chance, uniform_loss = 1 / num_classes, math.log(num_classes)
    if not math.isfinite(last["loss"]):
        return Message(
            "its training loss is {loss} after {epochs} epochs: the training diverged",
            loss=str(last["loss"]),
            epochs=len(epochs),
        )
    accuracies = [last.get(key) for key in ("accuracy", "val_accuracy") if last.get(key) is not None]
    at_chance = all(accuracy <= chance + CHANCE_MARGIN for accuracy in accuracies)
    if last["loss"] >= uniform_loss - LOSS_MARGIN and at_chance:
        return Message(
            "after {epochs} epochs its training loss is {loss} (ln {classes} = {uniform}, a constant guess) and its "
            "accuracy {accuracy} (chance: {chance}): it did not learn",
            epochs=len(epochs),
            loss=f"{last['loss']:.3f}",
            classes=num_classes,
            uniform=f"{uniform_loss:.3f}",
            accuracy=f"{max(accuracies, default=chance):.0%}",
            chance=f"{chance:.0%}",
        )
    return None
