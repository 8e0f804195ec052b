"""Names a recipe may use whose meaning lives in higher packages: the output protocols, the crop
strategies, Video-o3's data types, the answer tasks and the stages of `vo3rl run`.

They are written here, at the bottom, so the recipe schema can check them without importing the code
that implements them; `vo3rl.data.schema`'s enums and `vo3rl.video.budgets` use these same tuples
(a test keeps the enums and the pipeline's stage registry equal to them).
"""
from __future__ import annotations

PROTOCOLS: tuple[str, ...] = ("video_o3", "open_o3")
CROP_STRATEGIES: tuple[str, ...] = ("coarse", "medium", "fine")
DATA_TYPES: tuple[str, ...] = ("single_clue_tool", "multi_clue_tool", "single_clue_no_tool", "multi_clue_no_tool",
                               "temporal_grounding")
TASKS: tuple[str, ...] = ("mcq", "free_form", "temporal_grounding", "tg_mcq", "spatial_grounding")
# The stages `vo3rl run` knows (`vo3rl.orchestration.pipeline.STAGES`), in the order a pipeline runs them.
KNOWN_STAGES: tuple[str, ...] = ("data", "tiny_model", "sft", "rl", "eval")
