"""The recipe: one YAML file that says what to build, validated by pydantic."""

from __future__ import annotations

import codecs
import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retinal_reason_data.release.formats import FORMAT_NAMES
from retinal_reason_data.schema import Modality, QuestionType
from retinal_reason_data.teacher.backends import BACKEND_NAMES, BACKENDS
from retinal_reason_data.text import bom_codec

TeacherKind = Literal[BACKEND_NAMES]  # the registered teacher backends (teacher/backends.py)


def _is_model(kind: object) -> bool:
    """Whether the teacher kind is a model (sends requests to endpoints), from the backend registry."""
    backend = BACKENDS.get(kind) if isinstance(kind, str) else None
    return backend is not None and backend.is_model


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, the key and what was expected."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhantomSpec(Section):
    """Write a phantom copy of the source's layout at `root` when it does not exist yet (demo, tests)."""

    cases: int = Field(default=40, ge=1)
    seed: int = 0


class SourceSpec(Section):
    adapter: str
    root: Path
    name: str | None = Field(default=None, description="Source name in the catalog; defaults to the adapter.")
    licence: str | None = Field(default=None, description="Overrides the adapter's licence note.")
    labels: dict[str, str] = Field(default_factory=dict, description="Raw label -> ontology code overrides.")
    limit: int | None = Field(default=None, ge=1, description="Read at most this many cases.")
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter-specific options (see `rrd sources`).")
    phantom: PhantomSpec | None = None
    encoding: str | None = Field(
        default=None,
        description="Encoding of the source's label files (e.g. cp1252); by default a byte-order mark, UTF-8, "
        "else detected, and the build log says which was used.",
    )
    allow_outside_root: bool = Field(
        default=False,
        description="Read image files that lie outside `root` (absolute paths or '..' in a manifest, a label table "
        "or an article); refused by default. Folders the source's options name are inside it anyway.",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, cp1252, latin-1, utf-16)") from None
        return value

    @property
    def source_name(self) -> str:
        return self.name or self.adapter


class BasicTasks(Section):
    enabled: bool = True
    types: list[QuestionType] = Field(default_factory=lambda: list(QuestionType))
    options: int = Field(default=4, ge=2, le=8)


class ComplexTasks(Section):
    enabled: bool = True
    types: list[Literal["open", "single_choice"]] = Field(default_factory=lambda: ["open", "single_choice"])
    options: int = Field(default=4, ge=2, le=8)
    judge: bool = Field(
        default=False,
        description="Ask the teacher whether a wrong open answer close to an accepted name means the same diagnosis.",
    )
    judge_min_similarity: float = Field(
        default=0.6, ge=0.0, le=1.0, description="How close (0-1) a wrong open answer must be to be judged."
    )
    second_reader: bool = Field(
        default=True,
        description="With a model as teacher, the build asks it to read each case report too (`rrd extract`) and "
        "exports a complex item only where its diagnosis agrees with the rules'; false: the rules alone decide.",
    )


class IngestSpec(Section):
    workers: int | None = Field(default=None, ge=1, description="Processes that fingerprint images; all cores.")


class TasksSpec(Section):
    basic: BasicTasks = Field(default_factory=BasicTasks)
    complex: ComplexTasks = Field(default_factory=ComplexTasks)


class PriceSpec(Section):
    """What a model costs per million tokens (in whatever currency you write; reports use it as is)."""

    prompt_per_mtok: float = Field(default=0.0, ge=0.0)
    completion_per_mtok: float = Field(default=0.0, ge=0.0)


class EndpointSpec(Section):
    """One OpenAI-compatible endpoint; what it does not set it takes from the teacher (key variable, model,
    concurrency, rpm, tpm, timeout, retries)."""

    name: str | None = Field(default=None, description="Label in reports and logs; defaults to host:port.")
    base_url: str
    api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable with the key; unset: the teacher's api_key_env; "
        "null or '': send no key.",
    )
    api_key_header: str | None = Field(
        default=None, description="Send the key in this header (e.g. 'api-key' for Azure) instead of Bearer."
    )
    query: dict[str, str] = Field(default_factory=dict, description="Query parameters, e.g. {api-version: ...}.")
    model: str | None = Field(default=None, description="The name this endpoint serves teacher.model under.")
    concurrency: int | None = Field(default=None, ge=1)
    weight: float = Field(
        default=1.0, gt=0.0, description="Share of the requests, also while every endpoint is at its concurrency."
    )
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens (prompt + completion) per minute.")
    timeout_s: float | None = Field(default=None, gt=0.0, description="Per call; unset: the teacher's timeout_s.")
    max_retries: int | None = Field(
        default=None, ge=0, description="Retries of a request whose last call failed here; unset: the teacher's."
    )


class TeacherSpec(Section):
    kind: TeacherKind = "offline"
    base_url: str | None = None
    model: str = "offline-drafter"
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable with the key (endpoints inherit it)."
    )
    concurrency: int = Field(default=8, ge=1)
    endpoints: list[EndpointSpec] = Field(
        default_factory=list,
        description="Several endpoints instead of base_url; each inherits the teacher's key variable, model and "
        "limits unless it sets its own.",
    )
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute (per endpoint).")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute (per endpoint).")
    transport: Literal["openai", "aiohttp"] = Field(
        default="aiohttp",
        description="'aiohttp' (default): a lean client of the chat-completions protocol, about 4x less CPU per "
        "request; 'openai': the official client.",
    )
    prices: dict[str, PriceSpec] = Field(default_factory=dict, description="Model name -> price per 1M tokens.")
    max_retries: int = Field(default=6, ge=0, description="Retries of one request after a transient failure.")
    backoff_s: float = Field(default=1.0, gt=0.0, description="First retry delay; doubles per retry, with jitter.")
    backoff_max_s: float = Field(default=60.0, gt=0.0)
    max_consecutive_failures: int = Field(
        default=10, ge=1, description="Failures in a row (5xx, timeouts, dropped connections) that rest an endpoint."
    )
    endpoint_rest_s: float = Field(default=30.0, gt=0.0, description="Rest of an endpoint taken out before a probe.")
    stall_warning_s: float | None = Field(
        default=30.0,
        gt=0.0,
        description="Warn after this long without a reply, naming each endpoint and its last error; an endpoint "
        "whose calls got no reply this long and that does not answer GET /models either is rested and its calls "
        "sent elsewhere (null: off).",
    )
    image_tokens: int | None = Field(
        default=None, ge=1, description="Prompt tokens one image costs, for estimates; default from image_max_side."
    )
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=16)
    seed: int | None = None
    timeout_s: float = Field(default=120.0, gt=0.0)
    attempts: int = Field(default=1, ge=1, le=16, description="Blind attempts per item (k of pass@k).")
    guided_attempts: int = Field(
        default=0, ge=0, le=8, description="Attempts that are told the answer, for items no blind attempt solved."
    )
    image_max_side: int = Field(default=768, ge=64)
    offline_error_rate: float = Field(default=0.1, ge=0.0, le=1.0, description="Offline drafter only.")

    @field_validator("attempts", "guided_attempts")
    @classmethod
    def _several_attempts_need_sampling(cls, value: int, info: Any) -> int:  # a ValidationInfo
        """k attempts at temperature 0 are k paid copies of one greedy reply (a seed does not change greedy
        decoding), so a model teacher refuses them; the offline drafter has no temperature."""
        if value > 1 and _is_model(info.data.get("kind")) and info.data.get("temperature") == 0:
            raise ValueError(
                f"{value} {info.field_name} at temperature 0 would be {value} paid copies of one greedy reply "
                "(a seed does not change greedy decoding): set teacher.temperature (e.g. 0.7) or "
                f"{info.field_name}: 1"
            )
        return value

    @model_validator(mode="after")
    def _openai_needs_endpoint(self) -> TeacherSpec:
        if _is_model(self.kind) and not self.base_url and not self.endpoints:
            raise ValueError(f"kind {self.kind!r} needs base_url or endpoints (OpenAI-compatible endpoints)")
        if self.base_url and self.endpoints:
            raise ValueError("give either base_url (one endpoint) or endpoints (several), not both")
        return self

    def endpoint_specs(self) -> list[EndpointSpec]:
        """Every endpoint with what it does not set taken from the teacher: the key variable (an endpoint's
        `api_key_env: null` or '' sends no key), model, concurrency, rpm, tpm, timeout and retries. The
        single-endpoint form becomes a list of one."""
        listed = self.endpoints or ([EndpointSpec(base_url=self.base_url)] if self.base_url else [])
        return [
            endpoint.model_copy(
                update={
                    "api_key_env": (
                        endpoint.api_key_env if "api_key_env" in endpoint.model_fields_set else self.api_key_env
                    )
                    or None,
                    "concurrency": endpoint.concurrency or self.concurrency,
                    "rpm": endpoint.rpm or self.rpm,
                    "tpm": endpoint.tpm or self.tpm,
                    "model": endpoint.model or self.model,
                    "timeout_s": endpoint.timeout_s or self.timeout_s,
                    "max_retries": self.max_retries if endpoint.max_retries is None else endpoint.max_retries,
                }
            )
            for endpoint in listed
        ]


MAX_COPY_THRESHOLD = 12  # of a copy signature's 64-bit half (copy_candidates.py)
KeepCriterion = Literal["source_priority", "resolution", "quality"]


class DedupSpec(Section):
    enabled: bool = True
    near_threshold: int = Field(
        default=18, ge=0, le=40, description="Max Hamming distance of two near_hash values (256 bits) for a match."
    )
    detail_threshold: int = Field(
        default=20, ge=0, le=256, description="Max Hamming distance of detail_hash for a match (256: no check)."
    )
    orientations: bool = Field(default=True, description="Also match flipped and quarter-turned copies.")
    copy_threshold: int = Field(
        default=7,
        ge=0,
        description="Max Hamming distance of either 64-bit half of two copy_hash values for a copy candidate: crops "
        "into the field, turns by any angle, mirrors and re-framing (copy_candidates.py); each candidate is then "
        f"verified. 0-{MAX_COPY_THRESHOLD}: each bit above 7 multiplies the search's time (1M images: 3 s a half "
        "at 7, 16 s at 8).",
    )
    verify_copies: bool = Field(
        default=True,
        description="Confirm copy candidates (crops, turns, re-framing) by local features and pixel checks after "
        "alignment (curation/copy_verification.py); the other eye and a re-take of one eye are refused.",
    )
    copy_min_inliers: int = Field(
        default=12, ge=3, description="RANSAC inliers of the affine fit a copy needs (the pixel checks then decide)."
    )
    copy_min_agreement: float = Field(
        default=0.88,
        ge=0.0,
        le=1.0,
        description="Band-passed correlation a copy needs over the fields' common interior after alignment "
        "(copies 0.95+; the other eye aligned on the camera's dust spots: up to 0.82).",
    )
    copy_min_rim_agreement: float = Field(
        default=0.75,
        ge=0.0,
        le=1.0,
        description="The same along the edges of the fields, where one is in view (copies 0.85+; a re-take of one "
        "eye, which moved while the camera's field did not: up to 0.65).",
    )
    copy_min_illumination_agreement: float = Field(
        default=0.99,
        ge=0.0,
        le=1.0,
        description="Low-passed correlation (shading) a copy needs where no field edge is in view, e.g. crops "
        "inside the field, OCT (copies 0.998+, re-takes of one eye up to 0.981).",
    )
    copy_min_overlap: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share of the smaller field the other image must cover."
    )
    source_priority: list[str] = Field(default_factory=list, description="Sources whose copy is kept first.")
    keep: list[KeepCriterion] = Field(
        default_factory=lambda: ["source_priority", "resolution", "quality"],
        description="Order of the criteria that choose the copy kept in a cluster (case id breaks ties).",
    )
    on_label_conflict: Literal["keep", "drop"] = Field(
        default="keep", description="Duplicates whose labels disagree: keep the chosen copy, or drop the cluster."
    )

    @field_validator("copy_threshold")
    @classmethod
    def _copy_threshold_of_a_half(cls, value: int) -> int:
        if value > MAX_COPY_THRESHOLD:
            raise ValueError(
                f"copy_threshold {value} is more than {MAX_COPY_THRESHOLD}: it counts the bits of one 64-bit half of "
                "copy_hash (default 7); 15 was the default when it counted all 128 bits (fingerprint version 8)"
            )
        return value


class ImageFilters(Section):
    """Ungradable photographs, measured at intake (ImageQuality). Hard refusals by exposure and layout (grey levels
    0-1), then the quality gate: a model fitted on EyeQ graders' labels (quality_gate.py)."""

    enabled: bool = True
    modalities: list[Modality] = Field(default_factory=lambda: [Modality.CFP])
    min_brightness: float = Field(
        default=0.13, ge=0.0, le=1.0, description="Mean grey of the field darker than this: too dark."
    )
    max_brightness: float = Field(default=0.65, ge=0.0, le=1.0, description="Brighter than this: overexposed.")
    min_sharpness: float = Field(
        default=0.0,
        ge=0.0,
        description="Legacy: Laplacian variance / contrast^2 below this is blurred (0: off; the gate judges blur). "
        "It depends on resolution and field size: 0.06 refused 11 of CHASE_DB1's 28 gradable photographs.",
    )
    min_contrast: float = Field(default=0.01, ge=0.0, description="Below this the picture is blank.")
    min_field_fraction: float = Field(default=0.2, ge=0.0, le=1.0, description="Lit share below this: no field.")
    trust_source_labels: bool = Field(
        default=True, description="A collection's own gradable label (EyeQ, Messidor-2, DDR) overrides the measures."
    )
    gate: bool = Field(default=True, description="Refuse photographs that the fitted quality gate finds ungradable.")
    gate_threshold: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Probability of rejection above which the gate refuses (None: the model's own threshold; "
        "higher refuses fewer).",
    )
    gate_model: Path | None = Field(
        default=None, description="A refitted gate file (benchmarks/quality_gate_fit.py); None: the shipped one."
    )
    warn_refused_share: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Warn when the image filters refuse more than this share of a source's photographs.",
    )


class FiltersSpec(Section):
    min_think_chars: int = Field(default=40, ge=0)
    max_think_chars: int = Field(default=12000, ge=1)
    max_answer_chars: int = Field(default=400, ge=1)
    max_repeated_line_ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    max_repeated_ngram_ratio: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Share of repeated word 6-grams above which a trace loops."
    )
    min_english_ratio: float = Field(
        default=0.85, ge=0.0, le=1.0, description="Share of letters that are Latin, and of words that are English."
    )
    refusals: bool = Field(default=True, description="Drop traces that refuse or defer to a clinician.")
    max_hedges: int = Field(default=1, ge=0, description="Explicit non-committal phrases allowed in a trace.")
    answer_in_question: bool = Field(default=True, description="Drop open items whose question states the answer.")
    given_answer: bool = Field(default=True, description="Drop traces that say they were told the answer.")
    images: ImageFilters = Field(default_factory=ImageFilters)


class SplitsSpec(Section):
    seed: int = 0
    train: float = Field(default=0.6, ge=0.0, le=1.0, description="SFT train groups.")
    rl: float = Field(default=0.2, ge=0.0, le=1.0, description="RL train groups, disjoint from SFT train.")
    validation: float = Field(default=0.1, ge=0.0, le=1.0)
    test: float = Field(default=0.1, ge=0.0, le=1.0)
    stratify: list[Literal["task", "modality", "label"]] = Field(
        default_factory=lambda: ["task", "modality", "label"],
        description="Group properties whose mix each split keeps (groups are dealt within each stratum).",
    )
    holdout_sources: list[str] = Field(
        default_factory=list, description="Sources held out whole as the out-of-domain test split 'test_ood'."
    )

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> SplitsSpec:
        total = self.train + self.rl + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + rl + validation + test must sum to 1, got {total:g}")
        return self


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


ExportFormat = Literal[FORMAT_NAMES]  # the registered release formats (release/formats.py)


class CardSpec(Section):
    """What the dataset card says besides the counts it measures."""

    licence: str = Field(default="other", description="The card's `license` id (the sources keep their own).")
    citation: str | None = Field(default=None, description="How to cite this release (e.g. BibTeX).")
    citations: dict[str, str] = Field(
        default_factory=dict, description="Source name -> citation; adds to or overrides the built-in ones."
    )
    teacher_terms: str | None = Field(
        default=None, description="The teacher provider's terms of use that apply to the traces (text or URL)."
    )


class ExportSpec(Section):
    out: Path = Path("export")
    max_shard_size: int = Field(default=256 * 10**6, description="Bytes, or a string such as '500MB'.")
    formats: list[ExportFormat] = Field(
        default_factory=lambda: ["hf"],
        description="Release formats; 'hf' is always written (the others derive from it).",
    )
    card: CardSpec = Field(default_factory=CardSpec)
    allow_empty: bool = Field(
        default=False,
        description="Write the export even when a config or split would have 0 rows (otherwise the export stops).",
    )

    @field_validator("formats")
    @classmethod
    def _hf_first_once(cls, value: list[str]) -> list[str]:
        return ["hf", *dict.fromkeys(name for name in value if name != "hf")]

    @field_validator("max_shard_size", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError("expected a size such as 500MB, 1GB or a number of bytes")
        return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


class HubSpec(Section):
    repo_id: str | None = None
    private: bool = True


class OntologyAdditions(Section):
    """Extra ontology entries (same fields as data/ontology.yaml); per-source label mappings go in
    each source's `labels`."""

    entries: list[dict[str, Any]] = Field(default_factory=list)


class Recipe(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = "0.1.0"
    seed: int = 0
    catalog: Path | None = Field(default=None, description="DuckDB file; defaults to '<name>.duckdb'.")
    pseudonym_key_env: str = "RRD_PSEUDONYM_KEY"
    ontology: OntologyAdditions = Field(default_factory=OntologyAdditions)
    sources: list[SourceSpec] = Field(min_length=1)
    ingest: IngestSpec = Field(default_factory=IngestSpec)
    tasks: TasksSpec = Field(default_factory=TasksSpec)
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)
    dedup: DedupSpec = Field(default_factory=DedupSpec)
    filters: FiltersSpec = Field(default_factory=FiltersSpec)
    splits: SplitsSpec = Field(default_factory=SplitsSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    hub: HubSpec = Field(default_factory=HubSpec)
    annotations: Path = Field(
        default=Path("annotations"),
        exclude=True,  # where verdicts live on this machine is not part of what the recipe asks for
        description="Folder of reviewers' verdicts; this recipe's are in <annotations>/<name>/<annotator>.jsonl.",
    )
    path: Path | None = Field(default=None, exclude=True, description="The recipe file itself.")

    @model_validator(mode="after")
    def _unique_source_names(self) -> Recipe:
        names = [source.source_name for source in self.sources]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"source names must be unique; give each a 'name': {duplicated}")
        unknown = sorted(set(self.splits.holdout_sources) - set(names))
        if unknown:
            raise ValueError(f"splits.holdout_sources names sources the recipe does not have: {unknown}")
        return self

    @property
    def catalog_path(self) -> Path:
        assert self.catalog is not None
        return self.catalog


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        return f"key '{location}': unknown key"
    if error["type"] == "missing":
        return f"key '{location}': required key is missing"
    return f"key '{location}': {message} (got {error.get('input')!r})"


def load_recipe(path: str | Path, out: Path | None = None, catalog: Path | None = None) -> Recipe:
    """Read and validate a recipe; relative paths resolve against the recipe's folder. The file is UTF-8, with or
    without a byte-order mark, or UTF-16/32 with one; the label mappings of each source must name codes of the
    ontology (with the recipe's own additions)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(recipe_text(path))
    except FileNotFoundError as exc:
        raise RecipeError(f"{path}: recipe file not found") from exc
    except IsADirectoryError as exc:
        raise RecipeError(f"{path}: is a folder, not a recipe file") from exc
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: expected a mapping of recipe keys at the top level")
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        details = "\n".join(f"  {_describe(error)}" for error in exc.errors())
        raise RecipeError(f"{path}: invalid recipe\n{details}") from exc
    _check_labels(recipe, path)
    base = path.resolve().parent
    recipe.path = path.resolve()
    for source in recipe.sources:
        source.root = (base / source.root).resolve()
    recipe.catalog = (catalog or base / (recipe.catalog or Path(f"{recipe.name}.duckdb"))).resolve()
    recipe.export.out = (out or base / recipe.export.out).resolve()
    recipe.annotations = (base / recipe.annotations).resolve()
    images = recipe.filters.images
    if images.gate_model is not None:
        images.gate_model = (base / images.gate_model).resolve()
    return recipe


def recipe_text(path: Path) -> str:
    """The text of a recipe file: UTF-8, or whatever its byte-order mark says (an editor's "Unicode" is UTF-16);
    RecipeError with the line and the bytes when it does not decode."""
    data = path.read_bytes()
    codec = bom_codec(data) or "utf-8"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        snippet = data[max(0, exc.start - 8) : exc.end + 8]
        saved = "UTF-8" if codec == "utf-8" else f"{codec} (its byte-order mark says so)"
        raise RecipeError(
            f"{path}: line {line}: bytes {snippet!r} do not decode as {saved}; save the recipe as UTF-8"
        ) from None


def _check_labels(recipe: Recipe, path: Path) -> None:
    """Every `labels` mapping of a source names a code of the ontology (the shipped one with the recipe's
    `ontology.entries`): a typo would otherwise refuse every row of that label at ingest."""
    from retinal_reason_data.ontology import Entry, default_ontology  # the ontology loads its data file

    try:
        ontology = default_ontology().extend(Entry(**entry) for entry in recipe.ontology.entries)
    except (ValidationError, TypeError) as exc:
        raise RecipeError(f"{path}: key 'ontology.entries': not a valid entry: {exc}") from None
    problems = []
    for index, source in enumerate(recipe.sources):
        for raw, code in source.labels.items():
            if code not in ontology.entries:
                close = difflib.get_close_matches(code, ontology.entries, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                problems.append(
                    f"  key 'sources.{index}.labels': source {source.source_name!r} maps label {raw!r} to {code!r}, "
                    f"which is not an ontology code{hint}; add it under ontology.entries or map to a known code"
                )
    if problems:
        raise RecipeError(f"{path}: invalid recipe\n" + "\n".join(problems))
