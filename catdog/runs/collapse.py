"""A run that did not learn: its loss at ln K and its accuracy at chance, epochs after the start.

A network whose ReLUs all died (the posts' model2 sees raw 0..255 pixels, and one big first step
of Adam can push every unit negative) outputs the same logits for every photo: its loss is then
the cross-entropy of a constant guess, ln K for K balanced classes, and its accuracy the share of
the largest class. Such a run is no evidence about the setting it was meant to test. One
definition here serves training's status, the runs table and the lessons; no TensorFlow.
"""

import math

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
        return f"its training loss is {last['loss']} after {len(epochs)} epochs: the training diverged"
    accuracies = [last.get(key) for key in ("accuracy", "val_accuracy") if last.get(key) is not None]
    at_chance = all(accuracy <= chance + CHANCE_MARGIN for accuracy in accuracies)
    if last["loss"] >= uniform_loss - LOSS_MARGIN and at_chance:
        return (
            f"after {len(epochs)} epochs its training loss is {last['loss']:.3f} (ln {num_classes} = "
            f"{uniform_loss:.3f}, a constant guess) and its accuracy {max(accuracies, default=chance):.0%} "
            f"(chance: {chance:.0%}): it did not learn"
        )
    return None
