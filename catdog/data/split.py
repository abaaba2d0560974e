"""Splitting a data set's files: seeded, stratified, at file level, so the same seed always gives the same files."""

import itertools
import random

from catdog import config


def _held_out(count: int, fraction: float) -> int:
    return round(count * fraction)


def min_photos_per_class() -> int:
    """The fewest photos of a class from which a validation photo is held out: the least a class
    needs to be trained on (the class builder asks for it too)."""
    return next(n for n in itertools.count(1) if _held_out(n, config.VALIDATION_FRACTION))


def split_shares() -> tuple[float, float, float]:
    """The train, validation and test shares of a folder of class folders only, as assign_splits holds them out."""
    held_out, test = config.VALIDATION_FRACTION, config.TEST_FRACTION
    return 1 - held_out, held_out * (1 - test), held_out * test


def assign_splits(
    layout: dict[str, dict[str, list[str]]], classes: list[str], seed: int
) -> dict[str, list[tuple[str, int]]]:
    """Seeded, stratified, file-level splits: the same seed always gives the same files."""

    def holdout(files: list[str], fraction: float, name: str) -> tuple[list[str], list[str]]:
        shuffled = sorted(files)
        random.Random(f"{seed}:{name}").shuffle(shuffled)
        count = _held_out(len(shuffled), fraction)
        return sorted(shuffled[count:]), sorted(shuffled[:count])

    splits: dict[str, list[tuple[str, int]]] = {split: [] for split in config.SPLITS}
    for label, name in enumerate(classes):
        per_split = {split: layout.get(split, {}).get(name, []) for split in ("", *config.SPLITS)}
        train, validation, test = per_split["train"], per_split["validation"], per_split["test"]
        if per_split[""]:
            train, validation = holdout(per_split[""], config.VALIDATION_FRACTION, f"all:{name}")
        elif not validation:
            train, validation = holdout(train, config.VALIDATION_FRACTION, f"train:{name}")
        if not test:
            validation, test = holdout(validation, config.TEST_FRACTION, f"validation:{name}")
        for split, files in zip(config.SPLITS, (train, validation, test)):
            splits[split].extend((file, label) for file in files)
    return splits
