import pytest

from vloom.config import StepConfig
from vloom.curate import STEPS, CurateError, build_step
from vloom.curate.filters.gopher_quality import GopherQuality


def test_builtin_steps_are_registered():
    assert {"exact_dedup", "gopher_quality", "image_filter"} <= set(STEPS)


def test_build_step_passes_parameters():
    step = build_step(StepConfig(name="gopher_quality", min_doc_words=10, stop_words=["a"]))
    assert isinstance(step, GopherQuality)
    assert step.min_doc_words == 10 and step.stop_words == {"a"}


def test_unknown_step_lists_known_names():
    with pytest.raises(CurateError) as e:
        build_step(StepConfig(name="gopher_qualty"))
    msg = str(e.value)
    assert "'gopher_qualty'" in msg and "gopher_quality" in msg and "exact_dedup" in msg
    assert "\n" not in msg


def test_wrong_parameter_type_names_parameter_and_type():
    with pytest.raises(CurateError) as e:
        build_step(StepConfig(name="gopher_quality", min_doc_words="many"))
    msg = str(e.value)
    assert "min_doc_words" in msg and "'many'" in msg and "int" in msg
    assert "\n" not in msg


def test_numeric_string_is_not_silently_coerced():
    with pytest.raises(CurateError, match="min_side"):
        build_step(StepConfig(name="image_filter", min_side="8"))


def test_unknown_parameter_lists_accepted_ones():
    with pytest.raises(CurateError) as e:
        build_step(StepConfig(name="image_filter", min_size=8))
    assert "'min_size'" in str(e.value) and "min_side" in str(e.value)


def test_invalid_value_from_constructor_is_a_curate_error():
    with pytest.raises(CurateError, match="min_side must be >= 1"):
        build_step(StepConfig(name="image_filter", min_side=0))
    with pytest.raises(ValueError):  # CurateError is a ValueError for callers that catch those
        build_step(StepConfig(name="image_filter", decode="sometimes"))
