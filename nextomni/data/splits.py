"""Which seeds train and which are held out. Held-out seeds are never drawn in training."""

TRAIN_SEEDS = range(0, 1_000_000)
HELDOUT_SEEDS = range(1_000_000, 1_100_000)


def heldout(n: int, offset: int = 0) -> range:
    """The first n held-out seeds (after `offset`), the same in every evaluation."""
    start = HELDOUT_SEEDS.start + offset
    if start + n > HELDOUT_SEEDS.stop:
        raise ValueError(f"only {len(HELDOUT_SEEDS)} held-out seeds exist")
    return range(start, start + n)
