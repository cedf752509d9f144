"""The canonical vocabulary of findings and diagnoses, and each source's raw-label mapping into it."""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from functools import cache, cached_property
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from retinal_reason_data.schema import Finding, Modality
from retinal_reason_data.text import normalise_term


class Entry(BaseModel):
    """One concept: a finding, a lesion pattern or a diagnosis."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    name: str
    synonyms: tuple[str, ...] = ()
    abbreviations: tuple[str, ...] = ()
    modalities: tuple[Modality, ...]
    category: str
    scale: str | None = None
    grade: int | None = None
    signs: tuple[str, ...] = Field(
        default=(),
        description="Findings that name this diagnosis by themselves ('smokestack leak', 'cherry-red spot'): kept "
        "out of a case report's captions and vignette. Not accepted as answers.",
    )

    @property
    def aliases(self) -> list[str]:
        """Every accepted name other than the preferred one."""
        return [*self.synonyms, *self.abbreviations]


SCALE_WORDING = {  # field -> the placeholders its template must use ({image}: the modality's noun)
    "question": ("image",),
    "open_question": ("image",),
    "true_false": ("image", "grade"),
    "statements": ("image",),
    "at_least": ("grade",),
}


class Scale(BaseModel):
    """An ordered scale (lowest grade first) and the wording of every question about it. `name` says what is
    graded ('diabetic retinopathy grade') and every stem names it, so a question never hides its scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grades: tuple[str, ...] = Field(min_length=2, description="Entry codes, lowest grade first.")
    name: str = Field(min_length=1, description="What is graded, as the stems name it.")
    question: str = Field(description="Single-choice stem; {image}.")
    open_question: str = Field(description="Open stem; {image}.")
    true_false: str = Field(description="True/false stem about one grade; {image}, {grade}.")
    statements: str = Field(description="Multiple-choice stem over statements about the grade; {image}.")
    at_least: str = Field(description="A statement that the grade is this one or higher; {grade}.")

    def index(self, code: str) -> int:
        return self.grades.index(code)

    @model_validator(mode="after")
    def _wording_names_the_scale(self) -> Scale:
        for field, wanted in SCALE_WORDING.items():
            template = getattr(self, field)
            used = set(_placeholders(template))
            if used != set(wanted):
                raise ValueError(f"{field} {template!r} must use exactly {{{'}, {'.join(wanted)}}}")
            if field != "at_least" and self.name.lower() not in template.lower():
                raise ValueError(f"{field} {template!r} does not name the scale ({self.name!r})")
        return self


def _placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


class UnmappedLabel(ValueError):
    """A raw label that the ontology and the recipe do not map."""


class Ontology(BaseModel):
    """Entries by code and ordered scales."""

    model_config = ConfigDict(extra="forbid")

    entries: dict[str, Entry]
    scales: dict[str, Scale] = Field(default_factory=dict)
    _term_index: dict[str, Entry] | None = PrivateAttr(default=None)

    @field_validator("scales", mode="before")
    @classmethod
    def _scales_have_wording(cls, value: object) -> object:
        if isinstance(value, Mapping):
            bare = sorted(key for key, scale in value.items() if not isinstance(scale, Mapping | Scale))
            if bare:
                raise ValueError(
                    f"scale(s) {', '.join(bare)} without wording: give grades, name, "
                    f"{', '.join(SCALE_WORDING)} (see data/ontology.yaml)"
                )
        return value

    @model_validator(mode="after")
    def _grades_agree_with_their_entries(self) -> Ontology:
        """Every graded entry sits on a defined scale at the position its grade says, and every grade of a scale
        is an entry that says so; two scales never share wording."""
        problems: list[str] = []
        for key, scale in self.scales.items():
            for index, code in enumerate(scale.grades):
                entry = self.entries.get(code)
                if entry is None:
                    problems.append(f"scale {key!r} lists {code!r}, which is not an entry")
                elif (entry.scale, entry.grade) != (key, index):
                    problems.append(
                        f"scale {key!r} lists {code!r} as grade {index}, the entry says "
                        f"scale {entry.scale!r} grade {entry.grade!r}"
                    )
            stems = {field: getattr(scale, field).lower() for field in SCALE_WORDING if field != "at_least"}
            for other_key, other in self.scales.items():
                for field, stem in stems.items():
                    if other_key != key and other.name.lower() in stem:
                        problems.append(f"scale {key!r}: {field} names scale {other_key!r} ({other.name!r})")
        for entry in self.entries.values():
            listed = entry.scale in self.scales and entry.code in self.scales[entry.scale].grades
            if entry.scale is not None and not listed:
                problems.append(f"entry {entry.code!r} names scale {entry.scale!r}, which does not list it")
            if entry.scale is None and entry.grade is not None:
                problems.append(f"entry {entry.code!r} has a grade but no scale")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def entry(self, code: str) -> Entry:
        return self.entries[code]

    def lookup(self, name: str) -> Entry | None:
        """The entry whose name, synonym or abbreviation matches `name` after normalisation."""
        return self._by_term().get(normalise_term(name))

    def map_label(self, raw: str, table: Mapping[str, str]) -> Finding:
        """Map a raw label through a source's table (exact, then case- and punctuation-folded keys), or
        through the ontology's own names and synonyms; raise UnmappedLabel rather than guess."""
        key = raw.strip()
        folded = {normalise_term(k): v for k, v in table.items()}
        code = table.get(key) or folded.get(normalise_term(key))
        if code is None:
            entry = self.lookup(key)
            code = entry.code if entry else None
        if code is None:
            raise UnmappedLabel(f"label {raw!r} has no ontology mapping")
        if code not in self.entries:
            raise UnmappedLabel(f"label {raw!r} maps to unknown ontology code {code!r}")
        return Finding(code=code, raw_label=raw, grade=self.entries[code].grade)

    def same_concept(self, a: str, b: str) -> bool:
        """True when two codes share any accepted name (so one cannot be a distractor for the other)."""
        names = self.names_by_code
        return a == b or bool(names[a] & names[b])

    def names(self, code: str) -> frozenset[str]:
        """The entry's accepted names, normalised."""
        return self.names_by_code[code]

    @cached_property
    def names_by_code(self) -> dict[str, frozenset[str]]:
        """Every entry's normalised names, computed once: the task builders compare them hundreds of times per
        distractor picked (folding them each time was 95 % of the items stage)."""
        return {
            code: frozenset(normalise_term(t) for t in [entry.name, *entry.aliases])
            for code, entry in self.entries.items()
        }

    def candidates(self, modality: Modality, category: str | None = None) -> list[Entry]:
        """Entries seen in `modality` (and of `category` when given), in file order."""
        return [
            entry
            for entry in self.entries.values()
            if modality in entry.modalities and (category is None or entry.category == category)
        ]

    def scale_of(self, code: str) -> Scale | None:
        """The ordered scale `code` is a grade of, or None for a finding that is not graded."""
        scale = self.entries[code].scale
        return self.scales[scale] if scale else None

    def extend(self, entries: Iterable[Entry]) -> Ontology:
        """A copy with extra (or replaced) entries, e.g. from a recipe."""
        return Ontology(entries={**self.entries, **{entry.code: entry for entry in entries}}, scales=self.scales)

    def _by_term(self) -> dict[str, Entry]:
        if self._term_index is None:
            index: dict[str, Entry] = {}
            for entry in self.entries.values():
                for term in [entry.name, *entry.aliases]:
                    index.setdefault(normalise_term(term), entry)
            self._term_index = index
        return self._term_index


@cache
def default_ontology() -> Ontology:
    """The ontology shipped with the package."""
    text = resources.files("retinal_reason_data").joinpath("data/ontology.yaml").read_text()
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # the C loader is 10x faster
    entries = {item["code"]: Entry(**item) for item in raw["entries"]}
    return Ontology(entries=entries, scales=raw.get("scales", {}))
