"""Names written once at the bottom (`vo3rl.config.names`) agree with the code that implements them,
and the registry checks run before any work starts."""
from __future__ import annotations

from pathlib import Path

import pytest

from vo3rl.config import RecipeError
from vo3rl.config.names import CROP_STRATEGIES, DATA_TYPES, KNOWN_STAGES, PROTOCOLS, TASKS
from vo3rl.data.schema import DataType, Task
from vo3rl.orchestration.checks import load_checked_recipe
from vo3rl.orchestration.pipeline import STAGES
from vo3rl.video.budgets import PRESET_NAMES

TINY = Path(__file__).resolve().parents[1] / "recipes" / "tiny_cpu" / "rl.yaml"


def test_names_match_the_enums_presets_and_stage_registry():
    assert {t.value for t in Task} == set(TASKS)
    assert {d.value for d in DataType} == set(DATA_TYPES)
    assert set(CROP_STRATEGIES) <= set(PRESET_NAMES)
    assert set(STAGES) == set(KNOWN_STAGES)
    assert PROTOCOLS == ("video_o3", "open_o3")


@pytest.mark.parametrize("override, fragment", [
    ("rl.loss.name=ppo2", "rl.loss.name: 'ppo2' is not one of"),
    ("rl.advantage=rloo9", "rl.advantage: 'rloo9' is not one of"),
    ("data.format=csv", "data.format: 'csv' is not one of"),
    ("sft.stages.0.format=xml", "sft.stages.0.format: 'xml' is not one of"),
    ("video.presets={huge: {max_frames: 3}}", "video.presets: unknown preset"),
])
def test_registry_names_are_checked_before_work_starts(override, fragment):
    with pytest.raises(RecipeError) as err:
        load_checked_recipe(TINY, [override])
    assert fragment in str(err.value) and "\n" not in str(err.value)
