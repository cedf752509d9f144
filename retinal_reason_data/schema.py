"""The pydantic models every stage speaks; `schemas/` is generated from them (`rrd schemas`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Modality(StrEnum):
    """Imaging modality of one picture."""

    CFP = "CFP"
    OCT = "OCT"
    FFA = "FFA"
    OTHER = "other"
    ICGA = "ICGA"  # indocyanine green angiography
    OCTA = "OCTA"  # OCT angiography
    FAF = "FAF"  # fundus autofluorescence
    SLIT_LAMP = "slit_lamp"  # slit-lamp (anterior segment) photograph
    VISUAL_FIELD = "visual_field"  # perimetry printout


class Eye(StrEnum):
    RIGHT = "right"
    LEFT = "left"
    UNKNOWN = "unknown"


class Sex(StrEnum):
    FEMALE = "F"
    MALE = "M"
    UNKNOWN = "unknown"


class QuestionType(StrEnum):
    TRUE_FALSE = "true_false"
    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"
    OPEN = "open"


class TaskKind(StrEnum):
    BASIC = "basic"
    COMPLEX = "complex"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class ImageQuality(Strict):
    """Quality measures computed at intake on a reduced decode: exposure and layout on the 256 px luma (grey levels
    0-1), gradability measures on the field canvas (see image_quality.py)."""

    brightness: float = Field(description="Mean grey level inside the field of view.")
    contrast: float = Field(description="Standard deviation of grey levels inside the field of view.")
    sharpness: float = Field(description="Variance of the Laplacian inside the field of view (blur is low).")
    fov_fraction: float = Field(description="Share of the frame that is lit (a fundus field is about 0.5-0.8).")
    # gradability measures (image_quality.py): on the green channel of the field resampled to a fixed diameter and
    # rank-equalised, so that they mean the same at 256 px and at 4000 px; None where there is no field to measure
    detail_fine: float | None = Field(
        default=None, description="log energy of detail 1/64 of the field's diameter across (share of grey range^2)."
    )
    detail_vessel: float | None = Field(default=None, description="The same for detail 1/32 of the diameter.")
    detail_mid: float | None = Field(default=None, description="The same for detail 1/16 of the diameter.")
    detail_coarse: float | None = Field(default=None, description="The same for detail 1/8 of the diameter.")
    detail_fine_median: float | None = Field(
        default=None, description="detail_fine of the median block (1/16 of the diameter square) of the field."
    )
    detail_fine_low: float | None = Field(
        default=None, description="detail_fine of the field's least detailed tenth (blur or haze in part of it)."
    )
    vessel_contrast: float | None = Field(
        default=None, description="Mean black top-hat (dark lines up to 1/32 of the diameter) / the grey range."
    )
    vessel_contrast_low: float | None = Field(
        default=None, description="vessel_contrast of the quarter of the field where vessels are faintest."
    )
    vesselless_share: float | None = Field(default=None, description="Share of the field showing no vessel at all.")
    shadow_share: float | None = Field(default=None, description="Share of the field in a dark patch (shadow).")
    centre_to_rim: float | None = Field(
        default=None, description="Mean grey of the centre minus that of the rim, in grey ranges (uneven light)."
    )
    colour_mottle: float | None = Field(
        default=None,
        description="log energy of blue-minus-green detail 1/32 to 1/16 of the diameter across (blotchy colour: "
        "flare, patchy haze, colour noise); None for a grey-level image.",
    )


class ImageRef(Strict):
    """One image file as read from a collection, with its fingerprints."""

    path: str = Field(description="Absolute path of the file as the user keeps it.")
    sha256: str = Field(description="SHA-256 of the file bytes.")
    phash: str = Field(description="256-bit perceptual hash (DCT, hex).")
    width: int
    height: int
    modality: Modality
    caption: str | None = Field(default=None, description="Caption shown with the image, if any.")
    quality: ImageQuality | None = None
    near_hash: str | None = Field(
        default=None,
        description="256-bit hash of the field of view for near-duplicate search (fieldhash.py; flips and quarter "
        "turns are bit permutations of it); None in catalogs written before it existed.",
    )
    detail_hash: str | None = Field(
        default=None, description="256-bit mid-frequency companion of near_hash that verifies a near-duplicate match."
    )
    copy_hash: str | None = Field(
        default=None,
        description="128-bit copy signature (copy_signature.py), two 64-bit halves (whole rings, inner rings): "
        "invariant to turns by any angle, mirrors, crops into the field and re-framing, searched by Hamming "
        "distance per half for copy candidates; None in catalogs "
        "written before it existed.",
    )


class Finding(Strict):
    """One labelled finding or diagnosis, mapped into the ontology."""

    code: str = Field(description="Ontology code, e.g. 'dr.moderate'.")
    raw_label: str = Field(description="The label exactly as the source wrote it.")
    grade: int | None = Field(default=None, description="Position on the code's ordered scale, if graded.")


class ClinicalContext(Strict):
    """What a clinician knew besides the images (case reports)."""

    chief_complaint: str | None = None
    history: str | None = None
    past_history: str | None = Field(default=None, description="Past medical, ocular, drug and family history.")
    exam: str | None = None
    diagnosis: str | None = None
    diagnosis_aliases: list[str] = Field(default_factory=list)
    report: str | None = Field(default=None, description="Free-text reading report (never shown as a hint).")
    case_text: str | None = Field(
        default=None, description="The case section as published (for extraction checks; never shown as a hint)."
    )
    title: str | None = None
    pmcid: str | None = None
    question: str | None = Field(default=None, description="An imported release's question (e.g. MM-Retinal-Reason).")
    answer: str | None = Field(default=None, description="That release's answer, as released.")
    reference_trace: str | None = Field(default=None, description="That release's reasoning, kept for comparison.")


class Provenance(Strict):
    """Where a case came from, so that any row can be traced to its input."""

    file: str
    row: int | str | None = None
    licence: str


class Case(Strict):
    """One patient eye (or one case report) with its images and labels."""

    case_id: str = Field(description="Content-derived, stable id: '<source>:<source-local id>'.")
    source: str
    patient_id: str = Field(description="Keyed pseudonym of the source's patient identifier.")
    eye: Eye = Eye.UNKNOWN
    age: int | None = None
    sex: Sex = Sex.UNKNOWN
    images: list[ImageRef]
    findings: list[Finding] = Field(default_factory=list)
    gradable: bool | None = Field(
        default=None, description="The collection's own gradability label (EyeQ, Messidor-2, DDR); None if it has none."
    )
    context: ClinicalContext = Field(default_factory=ClinicalContext)
    provenance: Provenance


class Quarantine(Strict):
    """An input that was refused, with a reason a person can act on."""

    source: str
    file: str
    row: int | str | None = None
    reason: str = Field(description="Short machine-readable reason, e.g. 'image_unreadable'.")
    detail: str = Field(description="What was wrong, in words.")


class Answer(Strict):
    """A verifiable answer: canonical text plus what else counts as correct."""

    text: str = Field(description="Canonical answer: 'B', 'A,C', 'True', or an ontology name.")
    aliases: list[str] = Field(default_factory=list, description="Other accepted forms (open answers).")
    code: str | None = Field(default=None, description="Ontology code of the answer, if any.")


class Item(Strict):
    """A question with a known, machine-checkable answer."""

    item_id: str
    case_id: str
    task: TaskKind
    question_type: QuestionType
    modality: Modality
    question: str
    options: list[str] = Field(default_factory=list, description="Option texts in letter order A, B, ...")
    answer: Answer
    image_shas: list[str] = Field(description="SHA-256 of each image shown, in order.")
    captions: list[str] = Field(default_factory=list, description="Captions shown with the images.")


class Generation(Strict):
    """One teacher attempt at one item."""

    fingerprint: str = Field(description="Hash of model, parameters, prompt version, messages, image hashes.")
    item_id: str
    attempt: int
    model: str
    prompt_version: str
    response: str | None = None
    extracted_answer: str | None = None
    verified: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = Field(
        default=None, description="Transport failure class when no reply came back (the request is asked again)."
    )
    failure: str | None = Field(
        default=None,
        description="Why a reply does not count: empty, refusal, missing_tags, truncated, malformed_tags, "
        "wrong_answer, reveals_guidance.",
    )
    guided: bool = Field(default=False, description="The teacher was told the answer (guided fallback).")
    finish_reason: str | None = None
    endpoint: str | None = Field(default=None, description="Name of the endpoint that answered.")
    tries: int = Field(default=1, description="HTTP calls made for this request (1 + retries).")
    cost: float = Field(default=0.0, description="From the recipe's per-model prices, in their currency.")
    judge: str | None = Field(
        default=None,
        description="Verdict of a judge call on a near-miss open answer: 'equivalent' (counted as verified) or "
        "'different'; None when no judge was asked.",
    )
    review: str | None = Field(
        default=None,
        description="Set only on the copy an export uses: 'accepted' when an annotator accepted this trace, 'edited' "
        "when `response` is an annotator's correction of it (see Verdict); None when nobody reviewed it.",
    )


class Decision(StrEnum):
    """An annotator's decision on one teacher trace."""

    ACCEPT = "accept"
    REJECT = "reject"
    EDIT = "edit"


class RejectReason(StrEnum):
    """Why a trace was rejected. The last three concern the item itself (its images, question or reference
    answer): the item then leaves the release altogether, `rl` included."""

    WRONG_REASONING = "wrong_reasoning"
    HALLUCINATED_FINDING = "hallucinated_finding"
    MISSED_FINDING = "missed_finding"
    UNSAFE = "unsafe"
    POOR_TEXT = "poor_text"
    OTHER = "other"
    REFERENCE_WRONG = "reference_wrong"
    IMAGE_UNUSABLE = "image_unusable"
    QUESTION_FLAWED = "question_flawed"


class Verdict(Strict):
    """One annotator's verdict on one teacher trace: a line of `annotations/<recipe>/<annotator>.jsonl`.

    Files are append-only; an annotator's latest verdict on a trace is the one that counts."""

    item_id: str
    generation_id: str = Field(description="Fingerprint of the reviewed teacher attempt (generations.fingerprint).")
    annotator: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Also the file name.")
    decision: Decision
    reason: RejectReason | None = Field(default=None, description="Why rejected (decision 'reject' only).")
    note: str | None = Field(default=None, max_length=4000, description="Free text: the reason in words, a comment.")
    edited_think: str | None = Field(
        default=None, max_length=40000, description="Decision 'edit': the corrected reasoning, replacing the teacher's."
    )
    edited_answer: str | None = Field(
        default=None, max_length=2000, description="Decision 'edit': the corrected final answer."
    )
    adjudication: bool = Field(
        default=False,
        strict=True,
        description="Given to settle a disagreement: it overrides every other verdict on the trace, if its annotator "
        "gave no verdict of their own on it (an adjudication by one who did is ignored, and counted).",
    )
    time: datetime = Field(description="When the verdict was given (ISO 8601 with time zone).")
    session: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{16}$",
        description="The review page's session that gave it (a public id, not the browser's cookie); absent in "
        "verdicts written before sessions, or imported.",
    )

    @model_validator(mode="after")
    def _fields_fit_the_decision(self) -> Verdict:
        if self.decision is Decision.REJECT and self.reason is None:
            raise ValueError("a 'reject' verdict needs a reason")
        if self.decision is not Decision.REJECT and self.reason is not None:
            raise ValueError(f"a '{self.decision}' verdict takes no reason (reasons are for 'reject')")
        edited = self.edited_think is not None or self.edited_answer is not None
        if self.decision is Decision.EDIT and not edited:
            raise ValueError("an 'edit' verdict needs edited_think or edited_answer")
        if self.decision is not Decision.EDIT and edited:
            raise ValueError(f"a '{self.decision}' verdict carries no edited text")
        if self.time.tzinfo is None:
            raise ValueError("time needs a time zone, e.g. 2025-01-31T09:00:00Z")
        return self


class SftRow(Strict):
    """One exported reasoning row (config `sft`); images are stored with the `datasets` Image feature."""

    id: str
    case_id: str
    source: str
    patient_id: str
    task: str
    question_type: str
    modality: str
    question: str
    options: list[str]
    answer: str
    answer_aliases: list[str]
    think: str = Field(description="The verified step-by-step reasoning, without tags.")
    response: str = Field(description="The full teacher response in <think>..</think><answer>..</answer> form.")
    teacher_model: str
    prompt_version: str
    guided: bool = Field(default=False, description="The teacher was told the answer (guided fallback).")
    pass_at_k: float
    captions: list[str]
    title: str | None = None
    pmcid: str | None = None
    review: str | None = Field(
        default=None,
        description="'accepted', or 'edited' when think and response are an annotator's correction; null when the "
        "trace was not reviewed.",
    )


class RlRow(Strict):
    """One exported RL row (config `rl`): a question whose answer a reward function verifies."""

    id: str
    case_id: str
    source: str
    patient_id: str
    task: str
    question_type: str
    modality: str
    question: str
    options: list[str]
    answer: str
    answer_aliases: list[str]
    ground_truth: str = Field(description="JSON given to `rewards.compute_score` as ground_truth.")
    pass_at_k: float | None = Field(default=None, description="Teacher pass rate, a difficulty signal.")
    captions: list[str]
    title: str | None = None
    pmcid: str | None = None


PUBLIC_MODELS: dict[str, type[BaseModel]] = {
    "case": Case,
    "image_ref": ImageRef,
    "finding": Finding,
    "quarantine": Quarantine,
    "item": Item,
    "generation": Generation,
    "sft_row": SftRow,
    "rl_row": RlRow,
    "verdict": Verdict,
}
