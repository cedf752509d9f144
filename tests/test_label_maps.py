"""Every adapter's raw-label map: each code is in the ontology, and no raw column lands on two kinds (two ordered
scales, or a scale and a finding that is not a grade), the way Messidor-2's `adjudicated_dme` once mapped 0 to
a DME risk grade and 1 to the OCT diagnosis."""

from __future__ import annotations

from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.ingest.sources.label_columns import VALUE_COLUMN, mixed_columns, raw_column
from retinal_reason_data.ontology import default_ontology

ONTOLOGY = default_ontology()


def test_every_label_code_of_every_adapter_is_in_the_ontology() -> None:
    unknown = {
        f"{name}: {label!r} -> {code!r}"
        for name, adapter in ADAPTERS.items()
        for label, code in adapter.labels.items()
        if code not in ONTOLOGY.entries
    }
    assert not unknown, f"label codes missing from the ontology: {sorted(unknown)}"


def test_no_raw_column_of_any_adapter_maps_onto_two_kinds() -> None:
    problems = [
        f"{name}: {problem}"
        for name, adapter in ADAPTERS.items()
        for problem in mixed_columns(adapter.labels, ONTOLOGY)
    ]
    assert not problems, "raw columns mapped onto two kinds:\n" + "\n".join(problems)


def test_graded_columns_are_found_and_each_lands_on_one_scale() -> None:
    """The walk above sees the columns that matter: both graded columns of IDRiD and Messidor-2, APTOS's cells."""
    for name, columns in {"idrid": {"dr", "dme"}, "messidor2": {"dr", "dme"}, "aptos2019": {VALUE_COLUMN}}.items():
        labels = ADAPTERS[name].labels
        assert {raw_column(label) for label in labels} == columns, name
        for column in columns:
            scales = {ONTOLOGY.entry(code).scale for label, code in labels.items() if raw_column(label) == column}
            assert len(scales) == 1 and None not in scales, (name, column, scales)
    messidor = ADAPTERS["messidor2"].labels
    assert {ONTOLOGY.entry(messidor[f"dme:{v}"]).scale for v in (0, 1)} == {"dme_referable"}


def test_the_check_names_adapter_column_and_codes_of_a_mixed_column() -> None:
    old_messidor = {**ADAPTERS["messidor2"].labels, "dme:0": "dme.none", "dme:1": "oct.dme"}
    (problem,) = mixed_columns(old_messidor, ONTOLOGY)
    assert problem == "column 'dme': dme:0 -> dme.none (scale dme_risk), dme:1 -> oct.dme (not graded)"
    two_scales = {"0": "dr.none", "1": "dme.risk1"}
    (problem,) = mixed_columns(two_scales, ONTOLOGY)
    assert "scale icdr" in problem and "scale dme_risk" in problem and VALUE_COLUMN in problem
    assert mixed_columns({"1": "glaucoma", "0": "glaucoma.none"}, ONTOLOGY) == []


def test_named_classes_are_findings_of_their_own() -> None:
    """A JSIEC class folder ('0.3.DR1') or an ODIR keyword names its finding: a grade among other diagnoses is
    not a mixed column (each class is its own question, worded by its kind)."""
    assert raw_column("0.3.DR1") is None and raw_column("mild nonproliferative retinopathy") is None
    assert raw_column("dme:2") == "dme" and raw_column(" 3 ") == VALUE_COLUMN
    jsiec = ADAPTERS["jsiec"].labels
    assert ONTOLOGY.entry(jsiec["0.3.DR1"]).scale == "icdr" and ONTOLOGY.entry(jsiec["0.0.Normal"]).scale is None
    assert mixed_columns(jsiec, ONTOLOGY) == []
