"""How many channels each group keeps when a FLOPs budget, not a uniform ratio, is the goal.

A uniform ratio halves every group alike, yet the groups differ twice over: a channel of the 56x56 stem costs 40x
the FLOPs of one in the 7x7 neck, and some groups lose far more of the embedding than others when halved. Both
are measured here (the sensitivity analysis of Li et al. 2017, "Pruning Filters for Efficient ConvNets"; NetAdapt
and AMC automate the same trade), then channels are taken greedily where they cost the least embedding per FLOP
saved, until the budget is met.
"""

from __future__ import annotations

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.training.compress.channels import by_importance, channel_flops, remove_channels, without_inputs
from edgeface.training.compress.finetune import FaceSet
from edgeface.training.tf_setup import keras

PROBE_FRACTIONS = (0.75, 0.5, 0.25)  # kept fractions each group is tried at, alone
UNIT = 8  # channels move in multiples of 8, as ``channels.kept_channels`` keeps them


def sensitivity(model: keras.Model, groups: list, faces: FaceSet, probe: int = 512) -> list[dict]:
    """Each group thinned alone to each of ``PROBE_FRACTIONS`` (no fine-tuning): the embedding damage it does and
    the FLOPs one channel of it costs. Groups under 16 channels are left out: they are never thinned. The damage
    is measured on one copy of the model whose consumer ignores the removed channels (``without_inputs``: the same
    embedding as the thinner model); the FLOPs come from the layers' shapes (``channel_flops``)."""
    masked = keras.Model.from_config(model.get_config())
    masked.set_weights(model.get_weights())
    rows = []
    for g in (g for g in groups if g.channels >= 16):
        row = {"group": g.producer, "channels": g.channels, "damage": {1.0: 0.0}}
        consumer, order = masked.get_layer(g.consumer), by_importance(model, g)
        original = consumer.get_weights()
        for fraction in PROBE_FRACTIONS:
            kept = max(UNIT, round(g.channels * fraction / UNIT) * UNIT)
            consumer.set_weights(without_inputs(original, g, order[kept:]))
            row["damage"][kept / g.channels] = 1 - faces.agreement(masked, probe)  # 0 = the original's embedding
        row["flops_per_channel"] = channel_flops(model, g)
        consumer.set_weights(original)
        rows.append(row)
    return rows


def _damage_at(row: dict, kept: int) -> float:
    """Damage of ``row``'s group at ``kept`` channels, interpolated between the measured fractions."""
    fractions = sorted(row["damage"])
    return float(np.interp(kept / row["channels"], fractions, [row["damage"][f] for f in fractions]))


def greedy_counts(rows: list[dict], flops_to_remove: float, floor: float = 0.25) -> dict[str, int]:
    """Remove ``UNIT`` channels at a time from the group whose next cut adds the least damage per FLOP saved,
    until ``flops_to_remove`` FLOPs are gone; no group goes under ``floor`` of its channels. Damages are assumed
    to add up across groups: the fine-tuning after pruning is what repairs the interactions."""
    counts = {r["group"]: r["channels"] for r in rows}
    floors = {r["group"]: max(UNIT, int(np.ceil(r["channels"] * floor / UNIT)) * UNIT) for r in rows}
    removed = 0.0
    while removed < flops_to_remove:
        def price(r: dict) -> float:
            now = counts[r["group"]]
            return (_damage_at(r, now - UNIT) - _damage_at(r, now)) / (UNIT * r["flops_per_channel"])

        open_rows = [r for r in rows if counts[r["group"]] - UNIT >= floors[r["group"]]]
        if not open_rows:
            raise EdgefaceError(f"cannot remove that many FLOPs with every group kept at {floor:.0%} or more")
        cheapest = min(open_rows, key=price)
        counts[cheapest["group"]] -= UNIT
        removed += UNIT * cheapest["flops_per_channel"]
    return counts


def allocate(model: keras.Model, groups: list, faces: FaceSet, flops_removed: float,
             probe: int = 512) -> tuple[dict[str, int], list[dict]]:
    """Channels each group keeps so that ``flops_removed`` of the model's FLOPs go, spent where the embedding
    suffers least. A group's per-channel cost is exact only alone (a conv between two thinned groups loses FLOPs
    in both), so the budget is re-checked on the built model and tightened until it holds."""
    from edgeface.training.models.registry import count_flops

    if not 0 < flops_removed < 1:
        raise EdgefaceError(f"--flops must be between 0 and 1, got {flops_removed}")
    rows = sensitivity(model, groups, faces, probe)
    if not rows:
        raise EdgefaceError("no channel group has 16 channels or more: nothing to allocate")
    base = count_flops(model)
    asked = flops_removed * base
    for _ in range(20):
        counts = {g.producer: g.channels for g in groups} | greedy_counts(rows, asked)
        actual = base - count_flops(remove_channels(model, groups, counts))
        if actual >= flops_removed * base:
            break
        asked += flops_removed * base - actual + UNIT * min(r["flops_per_channel"] for r in rows)
    else:  # each round asks for more, so greedy_counts runs out of channels long before this
        raise EdgefaceError(f"could not reach {flops_removed:.0%} fewer FLOPs")
    measured = {r["group"]: {"flops_per_channel": r["flops_per_channel"],
                             "damage": {f"{f:.2f}": round(d, 5) for f, d in sorted(r["damage"].items())}} for r in rows}
    report = [{"group": g.producer, "channels": g.channels, "kept": counts[g.producer], **measured.get(g.producer, {})}
              for g in groups]
    return counts, report
