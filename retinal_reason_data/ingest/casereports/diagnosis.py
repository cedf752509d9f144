"""The final diagnosis of a case report, read only from explicit diagnostic statements.

A diagnosis is the RL ground truth, so the rules would rather give none than a wrong one:

- Only statements that say what the patient *has* count: "a diagnosis of X was made", "was diagnosed with X",
  "the final diagnosis was X", "findings were consistent with X" (strong), and "a case of X" (weak: it needs
  support from elsewhere in the article, or to name an ontology disease), in the case section, the abstract and
  the conclusion; the discussion (which also talks of other patients) only when nothing else states one. With
  several cases in one article, only the case's own section counts. A title ("Endoscopic versus surgical
  intervention for ...", "Management of ...") and the keywords only *support* a statement; they are never the
  answer on their own.
- A statement that is negated or tentative is not one ("did not meet the criteria for X", "X was excluded",
  "negative for X", "suspected X", "differential diagnosis of X"), and neither is an earlier diagnosis ("initially
  diagnosed as X", "misdiagnosed as X", "previously treated for X", "referred with a diagnosis of X", "diagnosed
  with X at a community hospital", "mimicking X"); what the article rules out or calls a misdiagnosis anywhere is
  never the answer. A symptom is not a diagnosis ("diagnosed with floaters", "a case of sudden visual loss").
- A bare abbreviation is expanded from the article's own definition ("pulmonary hypertension syndrome (PHS)");
  one the article does not define (and the ontology does not know) is refused.
- Several diagnoses in one statement ("X and Y", "X combined with Y") are refused: one answer cannot be checked
  against two; equally supported statements of different conditions are refused too.

Each refusal carries a reason a person can act on (`DiagnosisReading.refusal`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from retinal_reason_data.ingest.casereports.jats import Article, Section
from retinal_reason_data.ingest.casereports.sentences import abbreviation_definitions, is_short_form, split_sentences
from retinal_reason_data.ontology import Entry, Ontology
from retinal_reason_data.text import normalise_term

# Where a statement was read, most trusted first (the case itself, then the abstract's own 'Diagnosis' heading).
SOURCES = ("case", "abstract_heading", "abstract", "conclusion", "discussion")

# The phrase after a cue ends at punctuation or at a word that starts another clause.
_DX_END = re.compile(
    r"\s*(?:[.;:,)(\[]|\s-\s|\bwas\b|\bwere\b|\bis\b|\bare\b|\bhas\b|\bhad\b|\bbased\b|\bafter\b|\bfollowing\b|"
    r"\bsecondary\s+to\b|\bdue\s+to\b|\bcaused\s+by\b|\bassociated\s+with\b|"
    r"(?<!combined)(?<!together)(?<!along)(?<!coexisting)(?<!concurrent)\s+with\b|\bwhich\b|\bthat\b|\bwho\b|"
    r"\bwhose\b|\bwhere\b|\bin\s+which\b|"
    r"\bin\s+(?:the|both|his|her|this|our|a|an|view|light|addition|keeping|accordance|association|conjunction|"
    r"combination|[12]\d{3})\b|\bof\s+the\s+(?:right|left|both)\b|\bin\s+(?:OD|OS|OU)\b|\b(?:OD|OS|OU)\b|"
    r"\bon\s+the\s+basis\b|\bon\s+(?:day|admission)\b|\band\s+(?:the|he|she|they|treatment|was|were|a|an|his|her|"
    r"then|therefore|thus|subsequently|started|treated|underwent|received)\b|\bby\b|\bfor\b|\bthrough\b|\bvia\b|"
    r"\bwithout\b|\bbecause\b|\bsince\b|\bas\s+(?:the|a|an|well)\b|\bat\b|\bdespite\b|\bwhile\b|\bwhen\b|"
    r"\bso\b|\bthus\b|\bhence\b|\bfrom\b|\bmimick?\w*|\bmasquerad\w*|\bsimulat\w*|\bresembl\w*|\bpresenting\b|"
    r"\band\s+(?:was\s+|were\s+|is\s+)?(?:\w+ed|began|underwent|given|sent)\b)"
)
_LEADING = re.compile(
    r"^(?:an?\s+|the\s+|this\s+|probable\s+|possible\s+|presumed\s+|suspected\s+|likely\s+|definite\s+|"
    r"confirmed\s+|rare\s+|unusual\s+|atypical\s+presentation\s+of\s+|case\s+of\s+|diagnosis\s+of\s+|"
    r"(?:very\s+)?rare\s+case\s+of\s+)+",
    re.I,
)
_NOT_A_DIAGNOSIS = re.compile(
    r"^(?:case|report|patient|review|literature|novel|new|challenging|diagnostic|clinical|image|images|exclusion|"
    r"criteria|differential|it|this|these|those|he|she|they|them|his|her|our|we|one|both|all|each|either|"
    r"neither|none|other|another|such|same|following|above|latter|former|condition|disease|disorder|syndrome|"
    r"entity|pathology|lesion|lesions|symptoms?|signs?|findings?|features?|treatment|management|surgery|"
    r"endoscopic|surgical|intervention|approach|outcome|follow-up|history)\b",
    re.I,
)
_EDGE_WORDS = re.compile(
    r"^(?:(?:and|or|but|nor|of|with|in|the|a|an)\s+)+|(?:\s+(?:and|or|but|nor|of|with|in|on|at|to|for|by|from|the|a|an|"
    r"as|than))+$",
    re.I,
)
_BRACKETED = re.compile(r"\s*\([^()]{0,80}\)")  # '(cT2bN3M1c)', '(CSC)', '(Figure 2)': asides within a phrase
# A new clause inside a list of what was ruled out ('Having excluded X and Y, and given Z, the diagnosis of ...').
_CLAUSE = re.compile(
    r",\s*(?:and\s+|but\s+)?(?=(?:the|a|an|this|that|these|we|he|she|they|it|his|her|given|which|who|while|although|"
    r"so|then|after|before|because|since|as|there|based|considering)\b)|\s+(?:and|but)\s+(?=(?:the|we|he|she|they|it|"
    r"given|then|there|a\s+diagnosis)\b)",
    re.I,
)
_TIME_OR_HISTORY = re.compile(r"\b(?:history|years?|months?|weeks?|days?|ago|old|age|aged|childhood|infancy)\b", re.I)
# What may stand before a cue in its clause and makes the statement something other than a final diagnosis.
_NEGATED_BEFORE = re.compile(
    r"\b(?:no|not|never|without|neither|nor|unlikely|excluded?|excluding|exclusion|ruled?\s+out|ruling\s+out|"
    r"rather\s+than|instead\s+of|against|negative|differential|differentials|doubt\w*|question\w*|"
    r"(?:did|does|do|could|can|cannot|would)\s*n[o']t|unable)\b",
    re.I,
)
_EARLIER_BEFORE = re.compile(
    r"\b(?:initial(?:ly)?|original(?:ly)?|previous(?:ly)?|prior|earlier|formerly|mistaken(?:ly)?|"
    r"erroneous(?:ly)?|wrong(?:ly)?|incorrect(?:ly)?|false(?:ly)?|misdiagnos\w*|referral|referring|outside|"
    r"elsewhere|another\s+(?:hospital|clinic|centre|center|institution)|had\s+been|has\s+been\s+treated|known|"
    r"history|treated\s+(?:as|for)|other\s+(?:authors|reports?|studies|patients?|cases?)|et\s+al|(?<!\bwe\s)reported|"
    r"previous\s+reports?)\b",
    re.I,
)
# Hedges count only just before the cue ('a suspected diagnosis of', 'we considered the diagnosis of').
_TENTATIVE_BEFORE = re.compile(
    r"\b(?:suspect\w*|suspicion|possib\w*|probab\w*|presumptive|provisional|working|tentative|preliminary|"
    r"consider\w*|think|thought|impression|may|might|could|would|should|raised|raising|suggest\w*|favou?r\w*|"
    r"rule|whether|if|differential)\b",
    re.I,
)
# What may follow the phrase and undo the statement ("diagnosis of X could not be made").
_UNDONE_AFTER = re.compile(
    r"^\s*(?:,\s*)?(?:was|were|is|are|could|can|had|has|have|did|does|might|may|would|should|must)?\s*"
    r"(?:been\s+|be\s+)?"
    r"(?:not|never|no\s+longer|unlikely|excluded|ruled\s+out|less\s+likely|doubtful|questioned|questionable|"
    r"considered|suspected|suggested|raised|entertained|discarded|revised|abandoned|refuted|withdrawn|"
    r"made\s+\w*\s*(?:years?|months?)\s+(?:ago|earlier|before))\b",
    re.I,
)
# After the phrase: a diagnosis made elsewhere or long ago ('"floaters" at a community hospital').
_PAST_AFTER = re.compile(
    r"^[\"'\s]*(?:at|in|by|from)\s+(?:an?\s+|the\s+|his\s+|her\s+|their\s+)?(?:another|other|outside|community|local|"
    r"district|regional|private|previous|referring|primary|general|family)\b|^[\"'\s]*elsewhere\b|"
    r"^[^.;]{0,60}?\b(?:years?|months?)\s+(?:ago|earlier|before|prior)\b|^\s*(?:at\s+(?:the\s+)?age|in\s+(?:19|20)\d\d)\b"
)
# A presenting symptom is not a diagnosis ('diagnosed with "floaters"', 'a case of sudden visual loss').
_SYMPTOM = re.compile(
    r"\b(?:loss|pain|blur\w*|vision|scotomas?|floaters|photopsias?|flashes|diplopia|headaches?|fever|redness|"
    r"swelling|discomfort|tearing|itching|symptoms?|complaints?|distortion|metamorphopsia|dimness|nausea|vomiting|"
    r"cough|fatigue|weakness|dizziness|presentation|manifestations?)$",
    re.I,
)

# Explicit statements, strongest first: (pattern, strength). The phrase is the named group `dx`.
_STATEMENTS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"\b(?:final|definitive|definite|established|confirmed|ultimate)\s+diagnos[ie]s\s*(?:of|was|is|:|"
                r"was\s+made\s+as|was\s+confirmed\s+as|was\s+established\s+as)\s+(?P<dx>.+)", re.I), 3),
    (re.compile(r"\b(?:confirm(?:ed|ing|s)?|establish(?:ed|ing|es)?|secur(?:ed|ing)|reach(?:ed|ing)|"
                r"support(?:ed|ing)|clinch(?:ed|ing)?|led\s+(?:us\s+)?to|lead(?:ing)?\s+to|allow(?:ed|ing)|"
                r"made|make|making|gave|giving|yield(?:ed|ing))\s+(?:a\s+|the\s+|our\s+)?(?:final\s+|definitive\s+|"
                r"clinical\s+|histological\s+|histopathological\s+|pathological\s+|molecular\s+|genetic\s+|"
                r"correct\s+)?diagnos[ie]s\s+of\s+(?P<dx>.+)", re.I), 3),
    (re.compile(r"\bdiagnos[ie]s\s+(?:was|is)\s+(?:\w+ly\s+)?(?:made|given|established|confirmed|reached)\s+as\s+"
                r"(?P<dx>.+)", re.I), 3),
    (re.compile(r"\bdiagnos[ie]s\s+of\s+(?P<dx>.+?)\s+was\s+(?:then\s+|thus\s+|therefore\s+|finally\s+|"
                r"subsequently\s+|eventually\s+|ultimately\s+)?(?:made|established|confirmed|reached|"
                r"secured|proven|verified)\b", re.I), 3),
    (re.compile(r"\b(?:was|were|is|being)\s+(?:\w+ly\s+|then\s+|thus\s+|therefore\s+|hence\s+|later\s+)?"
                r"diagnosed\s+(?:with|as(?:\s+having)?|to\s+have)\s+(?P<dx>.+)", re.I), 2),
    (re.compile(r"\bwe\s+(?:\w+\s+)?diagnosed\s+(?:the\s+patient|him|her|them|this\s+case|it)?\s*"
                r"(?:with|as(?:\s+having)?)?\s*(?P<dx>.+)", re.I), 2),
    (re.compile(r"\b(?:clinical|histological|histopathological|pathological|molecular|genetic)\s+diagnos[ie]s\s+"
                r"(?:of|was)\s+(?P<dx>.+)", re.I), 2),
    (re.compile(r"\bdiagnos[ie]s\s*:\s*(?P<dx>.+)", re.I), 2),
    (re.compile(r"\b(?:findings|features|picture|presentation|appearance|results?|imaging|histology|"
                r"histopathology|biopsy)\s+(?:were|was|are|is)\s+(?:most\s+|highly\s+|entirely\s+|fully\s+)?"
                r"(?:consistent|compatible)\s+with\s+(?:a\s+diagnosis\s+of\s+|the\s+diagnosis\s+of\s+)?(?P<dx>.+)",
                re.I), 2),
    (re.compile(r"\bdiagnos[ie]s\s+of\s+(?P<dx>.+)", re.I), 1),
    (re.compile(r"\b(?:a|an|the|this)\s+(?:[\w-]+\s+){0,3}?case\s+of\s+(?:an?\s+)?(?P<dx>.+)", re.I), 1),
]  # fmt: skip

# Conditions an article rules out, and earlier diagnoses it corrects; these are never the answer.
_RULED_OUT = [
    re.compile(r"\b(?:did|does|do|could|would)\s*n[o']t\s+(?:meet|fulfil+|satisfy|fit)\s+(?:the\s+|all\s+)?"
               r"(?:\w+\s+){0,3}?(?:criteria|definition)\s+(?:for|of)\s+(?:a\s+|the\s+)?(?P<dx>.+)", re.I),
    re.compile(r"\b(?:exclud(?:ed|ing|es)?|exclusion\s+of|ruled?\s+out|ruling\s+out|negative\s+for|"
               r"no\s+(?:evidence|signs?|features?|findings?|suggestion)\s+of|not\s+(?:consistent|compatible)\s+with|"
               r"inconsistent\s+with|argu\w+\s+against|unlikely\s+to\s+be|rather\s+than|instead\s+of)\s+"
               r"(?:a\s+|an\s+|the\s+)?(?:diagnosis\s+of\s+)?(?P<dx>.+)", re.I),
    re.compile(r"\b(?:initial(?:ly)?|original(?:ly)?|previous(?:ly)?|first|mistaken(?:ly)?|erroneous(?:ly)?|"
               r"wrong(?:ly)?|incorrect(?:ly)?|false(?:ly)?|inappropriately)\s+(?:been\s+)?(?:diagnosed|treated|"
               r"managed|labell?ed|considered|misdiagnosed)\s+(?:with|as|for)\s+(?:having\s+)?(?:a\s+|an\s+)?"
               r"(?P<dx>.+)", re.I),
    re.compile(r"\bmisdiagnos\w*\s+(?:with|as|of)\s+(?:a\s+|an\s+)?(?P<dx>.+)", re.I),
    re.compile(r"\bdiagnosed\s+(?:with|as)\s+[\"']?(?P<dx>[^\"',.;]+?)[\"']?\s+(?:at|in|by)\s+(?:an?\s+|the\s+|his\s+|her\s+)?"
               r"(?:another|other|outside|community|local|district|regional|private|previous|referring)\b", re.I),
    re.compile(r"\b(?:initial|previous|prior|original|referral|referring|erroneous|incorrect|wrong|mistaken|"
               r"first)\s+diagnos[ie]s\s+(?:of|was|:)\s+"
               r"(?:a\s+|an\s+)?(?P<dx>.+)", re.I),
    re.compile(r"\b(?:had\s+been|was\s+being|were\s+being|previously)\s+(?:\w+\s+)?treated\s+(?:for|as)\s+"
               r"(?:a\s+|an\s+)?(?P<dx>.+)", re.I),
    re.compile(r"\breferred\s+(?:to\s+(?:\w+\s+){1,4})?(?:with|for|under)\s+(?:a\s+|the\s+)?(?:diagnosis|"
               r"suspicion|impression)\s+of\s+(?P<dx>.+)", re.I),
    re.compile(r"\b(?:mimick?(?:ing|ed|s)?|masquerad(?:ing|ed|es)\s+as|simulat(?:ing|ed|es)|mistaken\s+for|"
               r"confused\s+with|misinterpreted\s+as|mimic\s+of)\s+(?:a\s+|an\s+)?(?P<dx>.+)", re.I),
]  # fmt: skip
# 'X was excluded': the phrase stands before the verb.
_RULED_OUT_BEFORE = re.compile(
    r"(?P<dx>[^,;:()]+?)\s+(?:was|were|had\s+been|has\s+been|could\s+be|is|are)\s+(?:\w+\s+)?(?:excluded|"
    r"ruled\s+out|unlikely|not\s+(?:supported|confirmed|likely)|discarded|eliminated)\b",
    re.I,
)
# Two conditions in one statement: 'X and Y', 'X combined with Y' (a plain 'with' ends the phrase instead).
_SEVERAL = re.compile(
    r"\s+(?:and|or|plus|(?:combined|together|along|coexisting|concurrent)\s+with|as\s+well\s+as)\s+|\s*/\s*|\s*&\s*",
    re.I,
)
_QUALIFIERS = re.compile(
    r"^(?:bilateral|unilateral|right|left|atypical|typical|classic|severe|mild|moderate|early|late|"
    r"advanced|idiopathic|isolated|primary|secondary|recurrent|unusual|acute|chronic)\s+",
    re.I,
)


class Candidate(BaseModel):
    """One explicit statement of a diagnosis."""

    model_config = ConfigDict(extra="forbid")

    phrase: str
    where: str
    strength: int = Field(description="3 'final diagnosis' / 'diagnosis was made', 2 'diagnosed with', 1 weaker.")
    position: int = Field(description="Sentence number within its source.")
    support: int = 0


class DiagnosisReading(BaseModel):
    """The diagnosis the rules read, or why they read none."""

    model_config = ConfigDict(extra="forbid")

    phrase: str | None = None
    where: str | None = None
    aliases: list[str] = Field(default_factory=list, description="Short forms the article defines for it.")
    refusal: str | None = Field(default=None, description="Why no diagnosis is trusted (None when one is).")
    ruled_out: list[str] = Field(default_factory=list, description="What the article excludes or calls a mistake.")


def map_diagnosis(phrase: str, ontology: Ontology) -> tuple[str, Entry | None]:
    """The phrase, or a shorter form of it without qualifiers, mapped to an ontology entry where a name,
    synonym or abbreviation matches; (cleaned phrase, None) when none does."""
    cleaned = " ".join(phrase.split()).strip(" .")
    variants = [cleaned]
    stripped = cleaned
    while True:
        shorter = _QUALIFIERS.sub("", stripped)
        if shorter == stripped:
            break
        variants.append(shorter)
        stripped = shorter
    for variant in variants:
        entry = ontology.lookup(variant)
        if entry is not None:
            return cleaned, entry
    return cleaned, None


def trim_phrase(phrase: str) -> str | None:
    """The diagnosis phrase at the start of `phrase`: cut where another clause begins, articles and hedges
    dropped; None for what is not a diagnosis ('the patient', 'a 3-year history')."""
    phrase = _BRACKETED.sub("", phrase)
    end = _DX_END.search(phrase)
    phrase = phrase[: end.start()] if end else phrase
    phrase = _LEADING.sub("", phrase.strip(" \"'"))
    phrase = _EDGE_WORDS.sub("", " ".join(phrase.split())).strip(" -")
    if not phrase or len(phrase) > 90 or len(phrase.split()) > 9 or _NOT_A_DIAGNOSIS.match(phrase):
        return None
    if _TIME_OR_HISTORY.search(phrase) or not re.search(r"[A-Za-z]{2}", phrase):
        return None
    return phrase


def expand(phrase: str, definitions: dict[str, str]) -> tuple[str, list[str]]:
    """The phrase with each short form the article defines written out ('PHS' -> 'pulmonary hypertension
    syndrome', 'VKH disease' -> 'Vogt-Koyanagi-Harada disease'), and those short forms."""
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in definitions:
            used.append(token)
            return definitions[token]
        return token

    expanded = re.sub(r"[A-Za-z][A-Za-z0-9&-]*", replace, phrase)
    return expanded, used


def ruled_out_phrases(texts: Iterable[str]) -> list[str]:
    """Every condition the texts exclude or call an earlier (mis)diagnosis, trimmed, in order, each once."""
    found: list[str] = []
    for text in texts:
        for sentence in split_sentences(text):
            for pattern in _RULED_OUT:
                for match in pattern.finditer(sentence):
                    found += _listed(match.group("dx"))
            for match in _RULED_OUT_BEFORE.finditer(sentence):
                found += _listed(re.sub(r"^.*\b(?:diagnos[ie]s\s+of|and|but|while|although)\s+", "", match.group("dx")))
    return list(dict.fromkeys(found))


def _listed(text: str) -> list[str]:
    """Each phrase of a list ('X, Y or Z'), trimmed; the list ends where a new clause begins."""
    head = re.split(r"[.;:()]", _BRACKETED.sub("", text), maxsplit=1)[0]
    head = _CLAUSE.split(head, maxsplit=1)[0]
    parts = re.split(r",\s*|\s+(?:and|or|nor)\s+", head)
    return [phrase for part in parts if (phrase := trim_phrase(part))]


def _candidates(source: str, text: str) -> list[Candidate]:
    found: list[Candidate] = []
    for position, sentence in enumerate(split_sentences(text)):
        for pattern, strength in _STATEMENTS:
            for match in pattern.finditer(sentence):
                if _qualified(sentence, match):
                    continue
                phrase = trim_phrase(match.group("dx"))
                if phrase:
                    found.append(Candidate(phrase=phrase, where=source, strength=strength, position=position))
                    break
            else:
                continue
            break
    return found


def _qualified(sentence: str, match: re.Match[str]) -> bool:
    """Whether the statement is negated, tentative or about an earlier diagnosis: its clause before the cue
    says so, or what follows the phrase undoes it."""
    clause = re.split(r"[;,]|\b(?:but|however|although|whereas|and|then|where|whereupon)\b", sentence[: match.start()])[
        -1
    ]
    cue = sentence[match.start() : match.start("dx")]
    before = f"{clause} {cue}"
    window = " ".join([*clause.split()[-4:], cue])
    if _NEGATED_BEFORE.search(before) or _EARLIER_BEFORE.search(before) or _TENTATIVE_BEFORE.search(window):
        return True
    after = match.group("dx")
    end = _DX_END.search(after)
    rest = after[end.start() :] if end else ""
    return bool(_UNDONE_AFTER.match(rest) or _PAST_AFTER.match(rest))


def _sections_named(sections: Iterable[Section], pattern: str) -> list[Section]:
    wanted = re.compile(pattern, re.I)
    return [s for top in sections for s in top.walk() if wanted.search(s.title or "")]


def _same(a: str, b: str, ontology: Ontology, definitions: dict[str, str]) -> bool:
    """Whether two phrases name the same condition: equal once normalised (short forms written out), or the
    same ontology entry."""
    first, second = expand(a, definitions)[0], expand(b, definitions)[0]
    if normalise_term(first) == normalise_term(second):
        return True
    entry_a, entry_b = map_diagnosis(first, ontology)[1], map_diagnosis(second, ontology)[1]
    return entry_a is not None and entry_b is not None and ontology.same_concept(entry_a.code, entry_b.code)


def mentioned(text: str, phrase: str, aliases: Iterable[str]) -> bool:
    """Whether `text` names the phrase (whole words, normalised) or one of its short forms (with their case)."""
    padded = f" {normalise_term(text)} "
    if (normal := normalise_term(phrase)) and f" {normal} " in padded:
        return True
    return any(re.search(rf"(?<![A-Za-z0-9]){re.escape(alias)}(?![A-Za-z0-9])", text) for alias in aliases if alias)


def read_diagnosis(
    article: Article, case: Section | None, ontology: Ontology, several_cases: bool = False
) -> DiagnosisReading:
    """The final diagnosis of one case of an article, from explicit statements only (see the module's rules).
    With `several_cases`, statements outside the case's own section are not used (they may be another case's)."""
    sources: list[tuple[str, str]] = []
    if case is not None:
        sources.append(("case", case.text()))
    if not several_cases:
        heading = _sections_named(article.abstract, r"^\s*(?:final\s+)?diagnos[ie]s\s*:?\s*$")
        sources.append(("abstract_heading", "\n".join(f"Diagnosis: {s.text()}" for s in heading)))
        sources.append(("abstract", "\n".join(s.text() for s in article.abstract if s not in heading)))
        for name, pattern in (("conclusion", r"conclusion"), ("discussion", r"discussion")):
            sections = _sections_named([*article.body, *article.back], pattern)
            sources.append((name, "\n".join(s.text() for s in sections)))
    everything = "\n".join([article.title, article.abstract_text(), *(s.text() for s in article.body)])
    definitions = abbreviation_definitions(everything)
    ruled_out = ruled_out_phrases([article.title, article.abstract_text(), *(s.text() for s in article.body)])
    candidates = [candidate for name, text in sources for candidate in _candidates(name, text)]
    if not candidates:
        return DiagnosisReading(
            refusal="no explicit diagnostic statement ('a diagnosis of X was made', 'was diagnosed with X', "
            f"'final diagnosis') in the case, abstract, conclusion or discussion (title {article.title[:80]!r} "
            "is not used alone)",
            ruled_out=ruled_out,
        )
    supports = {
        "title": article.title,
        "keywords": " ; ".join(article.keywords),
        **{name: text for name, text in sources},
    }
    refused: list[str] = []
    usable: list[Candidate] = []
    for candidate in candidates:
        phrase, short_forms = expand(candidate.phrase, definitions)
        problem = _problem(phrase, short_forms, candidate, ruled_out, ontology, definitions)
        if problem:
            refused.append(f"'{candidate.phrase}' ({candidate.where}): {problem}")
            continue
        aliases = [*short_forms, *_short_forms_of(phrase, definitions)]
        candidate.support = sum(
            mentioned(text, phrase, aliases) for name, text in supports.items() if name != candidate.where and text
        )
        usable.append(candidate.model_copy(update={"phrase": phrase}))
    trusted = [c for c in usable if c.strength >= 2 or c.support >= 1 or _names_a_disease(c.phrase, ontology)]
    if not trusted:
        detail = "; ".join(refused[:3]) or "; ".join(f"'{c.phrase}' ({c.where}): weak and unsupported" for c in usable)
        return DiagnosisReading(refusal=f"no trustworthy diagnostic statement: {detail}", ruled_out=ruled_out)
    order = {name: index for index, name in enumerate(SOURCES)}
    # the discussion also talks of other patients and other reports: it is read only when nothing else states one
    trusted = [c for c in trusted if c.where != "discussion"] or [c for c in trusted if c.support >= 1]
    if not trusted:
        return DiagnosisReading(
            refusal="only the discussion states a diagnosis, and nothing else in the article supports it",
            ruled_out=ruled_out,
        )
    best = max(
        trusted,
        key=lambda c: (c.strength, c.support, -order[c.where], c.position if c.where == "case" else -c.position),
    )
    rivals = [
        c
        for c in trusted
        if (c.strength, c.support) == (best.strength, best.support)
        and not _same(c.phrase, best.phrase, ontology, definitions)
    ]
    if rivals and best.strength < 3:
        return DiagnosisReading(
            refusal=f"statements disagree: '{best.phrase}' ({best.where}) and '{rivals[0].phrase}' "
            f"({rivals[0].where}), equally supported",
            ruled_out=ruled_out,
        )
    aliases = list(dict.fromkeys([*expand(best.phrase, definitions)[1], *_short_forms_of(best.phrase, definitions)]))
    return DiagnosisReading(phrase=best.phrase, where=best.where, aliases=aliases, ruled_out=ruled_out)


def _problem(
    phrase: str,
    short_forms: list[str],
    candidate: Candidate,
    ruled_out: list[str],
    ontology: Ontology,
    definitions: dict[str, str],
) -> str | None:
    """Why a stated diagnosis cannot be the answer, or None."""
    if _SYMPTOM.search(phrase):
        return "a symptom or presentation, not a diagnosis"
    undefined = [t for t in phrase.split() if is_short_form(t) and t not in short_forms and not ontology.lookup(t)]
    if undefined and len(phrase.split()) == 1:
        return f"abbreviation {undefined[0]!r} is not defined in the article"
    if ontology.lookup(phrase) is None and len(_SEVERAL.split(phrase)) > 1:
        return "names several diagnoses"
    excluded = next((r for r in ruled_out if _same(r, phrase, ontology, definitions)), None)
    if excluded is not None:
        return f"the article rules it out or calls it an earlier diagnosis ('{excluded}')"
    return None


# Ontology categories of findings rather than diagnoses: a weak statement naming one is not trusted on that basis.
_FINDING_CATEGORIES = {"normal", "dr_grade", "dme_grade", "dr_lesion", "oct_biomarker", "ffa_pattern", "media"}


def _names_a_disease(phrase: str, ontology: Ontology) -> bool:
    entry = map_diagnosis(phrase, ontology)[1]
    return entry is not None and entry.category not in _FINDING_CATEGORIES and not entry.code.startswith("lesion.")


def _short_forms_of(phrase: str, definitions: dict[str, str]) -> list[str]:
    """Short forms the article defines for exactly this long form."""
    normal = normalise_term(phrase)
    return [short for short, long_form in definitions.items() if normalise_term(long_form) == normal]
