"""Teacher backends behind one contract (`teacher/backends.py`): every registered backend is a recipe value, has an
identity and a runner that resolve, and no stage asks which kind of teacher it has."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import retinal_reason_data
from retinal_reason_data.recipe import TeacherSpec
from retinal_reason_data.teacher.backends import BACKENDS, backend_of

PACKAGE = Path(retinal_reason_data.__file__).parent
_KINDS = "|".join(BACKENDS)
_ASKS_KIND = re.compile(r"""\.kind\s*[!=]=\s*["'](?:""" + _KINDS + r""")["']|get\(\s*["']kind["']\s*\)\s*[!=]=""")
SPEC = {"offline": {"kind": "offline"}, "openai": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}}


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_every_backend_is_a_recipe_value_with_an_identity_and_a_runner(kind: str) -> None:
    backend = BACKENDS[kind]
    assert kind in SPEC, f"add a teacher spec for the new backend {kind!r} to this test"
    spec = TeacherSpec.model_validate(SPEC[kind])
    model, params = backend.identity(spec, 7)
    assert isinstance(model, str) and model and isinstance(params, dict)
    assert backend.identity(spec, 7) == (model, params)  # fingerprints depend on it: deterministic
    module, function = backend.runner.split(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_a_kind_that_is_not_registered_is_refused_by_the_recipe() -> None:
    with pytest.raises(ValueError, match="kind"):
        TeacherSpec.model_validate({"kind": "telepathy"})


def test_the_offline_drafter_is_no_model_and_openai_is_one() -> None:
    assert not BACKENDS["offline"].is_model and BACKENDS["openai"].is_model


def test_no_module_asks_which_kind_of_teacher_it_has() -> None:
    asking = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "backends.py" and "phantoms" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if _ASKS_KIND.search(line)
    ]
    assert not asking, "ask the backend's traits (teacher.backends) instead:\n" + "\n".join(asking)


def test_backend_of_follows_the_recipe(tmp_path: Path) -> None:
    from retinal_reason_data.recipe import load_recipe
    from tests.conftest import write_recipe

    recipe = load_recipe(write_recipe(tmp_path, teacher={"kind": "offline"}))
    assert backend_of(recipe) is BACKENDS["offline"]
