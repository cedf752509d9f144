"""The exported configs' Features derive from the row models: a field added to a model is a column."""

from __future__ import annotations

import pytest
from datasets import Image, List, Value
from pydantic import Field

from retinal_reason_data.release.row_features import feature_of, row_features
from retinal_reason_data.schema import RlRow, SftRow


def test_a_model_field_becomes_a_column_in_model_order_with_images_after_the_id() -> None:
    class Wider(RlRow):
        second_opinion: str | None = None
        grades: list[int] = Field(default_factory=list)

    features = row_features(Wider)
    rest = [name for name in RlRow.model_fields if name != "id"]
    assert list(features) == ["id", "images", *rest, "second_opinion", "grades"]
    assert features["images"] == List(Image())
    assert features["second_opinion"] == Value("string")
    assert features["grades"] == List(Value("int64"))


def test_types_map_to_features() -> None:
    assert row_features(SftRow)["guided"] == Value("bool")
    assert row_features(SftRow)["pass_at_k"] == Value("float32")
    assert row_features(RlRow)["pass_at_k"] == Value("float32")  # optional: every feature is nullable
    assert row_features(SftRow)["answer_aliases"] == List(Value("string"))


@pytest.mark.parametrize("annotation", [dict[str, str], str | int, bytes])
def test_a_type_without_a_feature_is_refused(annotation: object) -> None:
    with pytest.raises(TypeError, match="no feature"):
        feature_of(annotation)
