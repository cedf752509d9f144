"""Splits: groups are unions of patients and duplicate clusters, dealt by seed within strata, ratios kept."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from retinal_reason_data.curation.splits import OOD_SPLIT, SPLIT_ORDER, assign_splits, case_groups, stratum_key
from retinal_reason_data.recipe import RecipeError, SplitsSpec, load_recipe
from tests.conftest import write_recipe


def test_groups_join_patients_and_duplicate_clusters() -> None:
    patients = [
        ("a:1", "a", "p1"),
        ("a:2", "a", "p1"),  # same patient as a:1
        ("a:3", "a", "p2"),
        ("b:1", "b", "p1"),  # pseudonyms are keyed by patient namespace: an equal one is the same person
        ("b:2", "b", "p9"),
        ("b:3", "b", "p8"),
    ]
    groups = case_groups(patients, [["a:3", "b:2"]])  # a:3 and b:2 show one photograph
    assert groups["a:1"] == groups["a:2"] == groups["b:1"]
    assert groups["a:3"] == groups["b:2"]
    assert len({groups["a:1"], groups["a:3"], groups["b:3"]}) == 3
    assert case_groups(reversed(patients), [["b:2", "a:3"]]) == groups  # ids do not depend on order


def _groups(count: int, strata: tuple[str, ...], seed: int = 0) -> dict[str, Counter[str]]:
    return {f"g{k}": Counter({strata[k % len(strata)]: 1 + (k * 7 + seed) % 3}) for k in range(count)}


def test_each_stratum_is_dealt_in_the_recipe_ratios() -> None:
    spec = SplitsSpec(seed=3)
    groups = _groups(600, ("task=basic|label=dr.none", "task=basic|label=dr.severe", "task=complex|label=rp"))
    splits = assign_splits(groups, [], spec)
    assert set(splits.values()) <= set(SPLIT_ORDER)
    for stratum in {next(iter(c)) for c in groups.values()}:
        items: Counter[str] = Counter()
        for group, counts in groups.items():
            items[splits[group]] += counts[stratum]
        total = sum(items.values())
        for name in SPLIT_ORDER:
            # within one group (at most 3 items) of the exact share
            assert abs(items[name] - getattr(spec, name) * total) <= 3, (stratum, items)


def test_small_strata_are_not_all_sent_to_train() -> None:
    groups = {f"g{k}": Counter({f"label={k}": 1}) for k in range(400)}  # 400 strata of one group each
    counts = Counter(assign_splits(groups, [], SplitsSpec()).values())
    assert 0.5 * 400 < counts["train"] < 0.7 * 400 and counts["rl"] > 40 and counts["test"] > 15


def test_seeded_and_deterministic() -> None:
    groups = _groups(200, ("a", "b"))
    first = assign_splits(groups, [], SplitsSpec(seed=1))
    assert assign_splits(dict(reversed(list(groups.items()))), [], SplitsSpec(seed=1)) == first
    assert assign_splits(groups, [], SplitsSpec(seed=2)) != first


def test_held_out_groups_go_to_the_ood_split_whole() -> None:
    groups = _groups(50, ("a",))
    splits = assign_splits(groups, ["g3", "g4", "missing"], SplitsSpec())
    assert splits["g3"] == splits["g4"] == OOD_SPLIT
    assert "missing" not in splits
    assert sum(1 for s in splits.values() if s == OOD_SPLIT) == 2


def test_stratum_key_follows_the_recipe() -> None:
    assert stratum_key(SplitsSpec(), "basic", "CFP", "dr.mild") == "task=basic|modality=CFP|label=dr.mild"
    assert stratum_key(SplitsSpec(stratify=["modality"]), "basic", "CFP", "dr.mild") == "modality=CFP"
    assert stratum_key(SplitsSpec(stratify=[]), "basic", "CFP", "dr.mild") == "all"


def test_recipe_checks_held_out_source_names(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, splits={"holdout_sources": ["nope"]})
    with pytest.raises(RecipeError, match="holdout_sources"):
        load_recipe(path)
    path = write_recipe(tmp_path, splits={"holdout_sources": ["ffa_ir"], "train": 0.5, "rl": 0.3})
    assert load_recipe(path).splits.holdout_sources == ["ffa_ir"]


def test_a_small_collection_leaves_no_split_empty() -> None:
    groups = {f"g{k}": Counter({"label=x": 1 + k % 2}) for k in range(6)}
    for seed in range(20):
        splits = assign_splits(groups, [], SplitsSpec(seed=seed))
        assert set(splits.values()) == set(SPLIT_ORDER), (seed, splits)
    one = assign_splits({"g": Counter({"a": 3})}, [], SplitsSpec())
    assert list(one.values())[0] in SPLIT_ORDER
