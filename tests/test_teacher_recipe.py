"""The teacher's recipe keys: one endpoint or several, limits that fall back to the teacher's, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from retinal_reason_data.recipe import RecipeError, TeacherSpec, load_recipe
from retinal_reason_data.teacher.synthesize import teacher_identity
from retinal_reason_data.text import stable_hash
from tests.conftest import write_recipe


def test_the_single_endpoint_form_is_one_endpoint_with_the_teachers_limits() -> None:
    spec = TeacherSpec(kind="openai", base_url="http://127.0.0.1:8000/v1", model="m", api_key_env="K", concurrency=7)
    [endpoint] = spec.endpoint_specs()
    assert (endpoint.base_url, endpoint.api_key_env, endpoint.concurrency, endpoint.model) == (
        "http://127.0.0.1:8000/v1",
        "K",
        7,
        "m",
    )


def test_endpoints_inherit_what_they_do_not_set() -> None:
    spec = TeacherSpec(
        kind="openai",
        model="m",
        api_key_env="TEACHER_API_KEY",
        concurrency=5,
        rpm=100,
        timeout_s=40,
        max_retries=3,
        endpoints=[
            {"base_url": "http://a/v1", "concurrency": 64, "model": "served-name", "api_key_env": "OWN_KEY"},
            {"base_url": "http://b/v1"},
            {"base_url": "http://c/v1", "api_key_env": None, "timeout_s": 300, "max_retries": 0},
            {"base_url": "http://d/v1", "api_key_env": ""},
        ],
    )
    first, second, keyless, empty = spec.endpoint_specs()
    assert (first.concurrency, first.rpm, first.model, first.api_key_env) == (64, 100, "served-name", "OWN_KEY")
    assert (second.concurrency, second.rpm, second.model, second.weight) == (5, 100, "m", 1.0)
    assert (second.api_key_env, second.timeout_s, second.max_retries) == ("TEACHER_API_KEY", 40, 3)
    assert (keyless.api_key_env, keyless.timeout_s, keyless.max_retries) == (None, 300, 0)
    assert empty.api_key_env is None


def test_the_lean_transport_is_the_default_and_the_official_client_can_be_named() -> None:
    assert TeacherSpec(kind="openai", base_url="http://a/v1").transport == "aiohttp"
    assert TeacherSpec(kind="openai", base_url="http://a/v1", transport="openai").transport == "openai"


@pytest.mark.parametrize(
    "teacher",
    [
        {"attempts": 4},
        {"attempts": 4, "seed": 7},
        {"attempts": 1, "guided_attempts": 2, "temperature": 0},
    ],
)
def test_several_attempts_at_temperature_0_are_refused_at_load(tmp_path: Path, teacher: dict) -> None:
    """Greedy decoding gives one reply k times, whatever the seed: the recipe is refused, naming the key."""
    spec = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", **teacher}
    with pytest.raises(RecipeError) as raised:
        load_recipe(write_recipe(tmp_path, teacher=spec))
    message = str(raised.value)
    key = "guided_attempts" if "guided_attempts" in teacher else "attempts"
    assert f"key 'teacher.{key}'" in message and "at temperature 0 would be" in message
    assert "set teacher.temperature (e.g. 0.7)" in message


@pytest.mark.parametrize(
    "teacher", [{"kind": "openai", "temperature": 0.7, "attempts": 4}, {"kind": "offline", "attempts": 4}]
)
def test_several_attempts_with_sampling_or_offline_are_fine(tmp_path: Path, teacher: dict) -> None:
    spec = {"base_url": "http://127.0.0.1:9/v1"} if teacher["kind"] == "openai" else {}
    assert load_recipe(write_recipe(tmp_path, teacher={**spec, **teacher})).teacher.attempts == 4


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ({"kind": "openai", "model": "m"}, "needs base_url or endpoints"),
        (
            {"kind": "openai", "base_url": "http://a/v1", "endpoints": [{"base_url": "http://b/v1"}]},
            "not both",
        ),
        ({"kind": "openai", "base_url": "http://a/v1", "transport": "curl"}, "teacher.transport"),
        ({"kind": "openai", "endpoints": [{"base_url": "http://a/v1", "weight": 0}]}, "teacher.endpoints.0.weight"),
        ({"kind": "openai", "base_url": "http://a/v1", "prices": {"m": {"prompt": 1}}}, "teacher.prices.m.prompt"),
    ],
)
def test_a_wrong_teacher_names_the_key(tmp_path: Path, teacher: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(write_recipe(tmp_path, teacher=teacher))


def test_what_changes_the_request_changes_the_fingerprint_identity(tmp_path: Path) -> None:
    base = {"kind": "openai", "base_url": "http://a/v1", "model": "m", "temperature": 0.7}
    identity = teacher_identity(load_recipe(write_recipe(tmp_path / "a", teacher=base)))
    for change in ({"model": "n"}, {"temperature": 0.2}, {"max_tokens": 99}, {"image_max_side": 512}, {"seed": 3}):
        other = teacher_identity(load_recipe(write_recipe(tmp_path / "b", teacher={**base, **change})))
        assert other != identity, change
    # where it is sent and how fast is not part of it
    for change in ({"base_url": "http://b/v1"}, {"concurrency": 99}, {"rpm": 10}, {"transport": "aiohttp"}):
        other = teacher_identity(load_recipe(write_recipe(tmp_path / "c", teacher={**base, **change})))
        assert other == identity, change


def test_a_template_change_is_a_new_prompt_version() -> None:
    """The templates are files in the package; a change to one changes every fingerprint (so nothing stale
    is reused), and must come with a new version name, which the export carries in `prompt_version`."""
    from retinal_reason_data.teacher import prompts

    blind = stable_hash(prompts.SYSTEM_PROMPT, sorted((str(k), v) for k, v in prompts.ANSWER_INSTRUCTIONS.items()))
    assert {prompts.PROMPT_VERSION: blind} == {"v1": "ea9fdfbecc1e1a81"}, "templates changed: bump PROMPT_VERSION"
    guided = stable_hash(prompts.GUIDED_TEMPLATE)
    assert {prompts.GUIDED_PROMPT_VERSION: guided} == {"guided-v1": "0fb136faea2612ef"}, "bump GUIDED_PROMPT_VERSION"


def test_the_fingerprint_follows_the_rendered_template(monkeypatch: pytest.MonkeyPatch) -> None:
    from retinal_reason_data.teacher import prompts
    from tests.helpers.teacher import make_request

    item = make_request(1).item
    before = prompts.request_fingerprint("m", {}, item, 1)
    guided = prompts.guided_fingerprint("m", {}, item, 1)
    assert len({before, guided, prompts.request_fingerprint("m", {}, item, 2)}) == 3
    monkeypatch.setattr(prompts, "SYSTEM_PROMPT", prompts.SYSTEM_PROMPT + " Be brief.")
    assert prompts.request_fingerprint("m", {}, item, 1) != before
    assert prompts.guided_fingerprint("m", {}, item, 1) != guided
