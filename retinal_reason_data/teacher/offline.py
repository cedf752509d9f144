"""The offline drafter: a deterministic, rule-based writer of reasoning traces. It is not a model.

It reads the case's labels and the ontology and writes a step-by-step trace in the
<think>...</think><answer>...</answer> form, so that the demo and the tests exercise every later stage
without a network. A configurable share of attempts is deliberately wrong, so verification has work.
"""

from __future__ import annotations

import random

from retinal_reason_data.ontology import Ontology
from retinal_reason_data.schema import Case, Item, QuestionType, TaskKind
from retinal_reason_data.tasks.basic import MODALITY_NOUN
from retinal_reason_data.tasks.options import LETTERS, seeded_rng

MODEL_NAME = "offline-drafter"

FEATURES = {
    "dr.none": "no microaneurysms, haemorrhages, exudates or new vessels are seen",
    "dr.mild": "only a few microaneurysms are present, without haemorrhages or exudates",
    "dr.moderate": "microaneurysms, dot and blot haemorrhages and some hard exudates are present, "
    "more than microaneurysms alone but short of the 4-2-1 rule",
    "dr.severe": "there are many intraretinal haemorrhages in all four quadrants with cotton wool spots, "
    "meeting the 4-2-1 rule, but no neovascularisation",
    "dr.proliferative": "there is neovascularisation at the disc with haemorrhages, "
    "which defines proliferative disease",
    "oct.normal": "the foveal contour is preserved and the retinal layers are intact without fluid",
    "oct.cnv": "a hyperreflective subretinal lesion with fluid and elevation of the RPE is seen",
    "oct.dme": "the retina is thickened with hyporeflective intraretinal cystoid spaces",
    "oct.drusen": "there are small dome-shaped elevations of the RPE without fluid",
    "ffa.leakage": "hyperfluorescence increases in size and intensity into the late phase",
    "ffa.non_perfusion": "there are dark areas where the capillary bed does not fill",
    "ffa.microaneurysm": "pinpoint hyperfluorescent dots appear early and persist",
    "ffa.neovascularisation": "fine vascular tufts leak profusely as the angiogram progresses",
    "ffa.staining": "a well-defined area becomes bright late without spreading",
    "ffa.pooling": "dye collects in a well-defined space in the late frames",
    "ffa.window_defect": "an early hyperfluorescence fades with the choroidal flush and does not enlarge",
    "ffa.blocked_fluorescence": "a dark patch masks the underlying choroidal and retinal fluorescence",
    "ffa.normal": "filling is timely and complete without leakage, staining or non-perfusion",
    "dme.none": "no hard exudates are seen at the posterior pole",
    "dme.risk1": "hard exudates are present, but all more than one disc diameter from the macular centre",
    "dme.risk2": "hard exudates lie within one disc diameter of the macular centre",
    "dme.not_referable": "no hard exudates are seen close to the fovea",
    "dme.referable": "hard exudates lie close to the fovea, within about one disc diameter",
    "amd.early": "there are medium-sized drusen without pigmentary abnormalities",
    "amd.intermediate": "there are large drusen and pigmentary abnormalities at the macula",
    "amd.late": "there is geographic atrophy or a neovascular lesion at the macula",
}


def draft(item: Item, case: Case, ontology: Ontology, attempt: int, error_rate: float, seed: int) -> str:
    """A reasoning trace for `item`; wrong on purpose for about `error_rate` of attempts."""
    rng = seeded_rng(seed, item.item_id, attempt, "offline")
    wrong = rng.random() < error_rate
    answer = _wrong_answer(item, ontology, rng) if wrong else item.answer.text
    steps = [_modality_step(item, case), _observation_step(case, item, ontology)]
    if item.task is TaskKind.COMPLEX:
        steps.append(
            f"The history matters: {case.context.chief_complaint} Combined with the imaging, the "
            "picture points to one diagnosis."
        )
    steps.append(_option_step(item, answer))
    steps.append(f"Therefore the answer is {answer}.")
    think = "\n".join(f"Step {i}: {text}" for i, text in enumerate(steps, start=1))
    return f"<think>\n{think}\n</think>\n<answer>{answer}</answer>"


def _modality_step(item: Item, case: Case) -> str:
    if len(case.images) == 1:
        noun = MODALITY_NOUN[item.modality]
        article = "an" if noun[0] in "aeiouAEIOU" or noun.startswith(("OCT", "FAF")) else "a"
        return f"This is {article} {noun}."
    kinds = ", ".join(MODALITY_NOUN[image.modality] for image in case.images)
    return f"There are {len(case.images)} images: {kinds}."


def _observation_step(case: Case, item: Item, ontology: Ontology) -> str:
    """What the image shows, for the item's facet only: a question about one scale looks at that scale's grade,
    any other question at the findings that are not grades (see tasks/basic.py)."""
    scale = _answer_scale(item, ontology)
    seen = []
    for finding in case.findings:
        entry = ontology.entry(finding.code)
        if entry.scale != scale and item.task is TaskKind.BASIC:
            continue
        seen.append(FEATURES.get(entry.code, f"the features are typical of {entry.name.lower()}"))
    if not seen:
        return "The images show the features described in the captions."
    return "Looking at the image, " + "; ".join(seen) + "."


def _option_step(item: Item, answer: str) -> str:
    if item.question_type is QuestionType.TRUE_FALSE:
        verdict = "supported" if answer == "True" else "not supported"
        return f"The statement in the question is {verdict} by these findings."
    if not item.options:
        return f"The finding that best explains this appearance is {answer}."
    chosen = set(answer.split(","))
    lines = []
    for index, option in enumerate(item.options):
        letter = LETTERS[index]
        verdict = "consistent with the findings" if letter in chosen else "not consistent with the findings"
        lines.append(f"{letter} ({option}) is {verdict}")
    return "Weighing the options: " + "; ".join(lines) + "."


def _wrong_answer(item: Item, ontology: Ontology, rng: random.Random) -> str:
    if item.question_type is QuestionType.TRUE_FALSE:
        return "False" if item.answer.text == "True" else "True"
    if item.options:
        letters = [LETTERS[i] for i in range(len(item.options))]
        choices = [letter for letter in letters if letter != item.answer.text]
        return rng.choice(choices)
    scale = _answer_scale(item, ontology)
    if scale is not None:  # a wrong grade of the same scale, as a grader would give
        candidates = [ontology.entry(code).name for code in ontology.scales[scale].grades if code != item.answer.code]
    else:
        candidates = [
            e.name for e in ontology.candidates(item.modality) if e.code != item.answer.code and e.scale is None
        ]
    return rng.choice(candidates) if candidates else "uncertain"


def _answer_scale(item: Item, ontology: Ontology) -> str | None:
    """The scale of the item's answer (a graded question), or None."""
    code = item.answer.code
    return ontology.entry(code).scale if code and code in ontology.entries else None
