"""Answer correctness: option letters, ROUGE F1 for free-form text, box IoU, interval IoU, TG-MCQ."""
from __future__ import annotations

import functools
import math
import re

from vo3rl.agent.parse import MAX_ITEMS, as_text, parse_box, parse_choice, parse_claims, parse_interval

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
MAX_ROUGE_TOKENS = 512  # ROUGE-L's table is quadratic; answers are short, garbage is cut here
_TOKEN = re.compile(r"[a-z0-9]+")  # what rouge-score keeps as a token: used only to find the cut


def choice_reward(answer: str | None, key: str) -> float:
    """1.0 when the answer names the key letter (`X`, `X.…`, `(X)…`, `[X]…`), else 0.0."""
    if answer is None:
        return 0.0
    letter = parse_choice(answer)
    return 1.0 if letter is not None and letter == parse_choice(key) else 0.0


@functools.lru_cache(maxsize=1)
def _scorer():
    """The reference scorer (rouge-score, Porter stemming), built on first use: importing it loads nltk (~1 s).
    Its own tokenizer, with each word's stem computed once and remembered: nltk's Porter is most of
    the cost and an answer vocabulary is small, so the scores are the package's, about twice as fast."""
    from rouge_score import tokenize, tokenizers
    from rouge_score.rouge_scorer import RougeScorer
    from nltk.stem import porter

    class RememberingStemmer:
        stem = staticmethod(functools.lru_cache(maxsize=1 << 16)(porter.PorterStemmer().stem))

    class StemOnceTokenizer(tokenizers.Tokenizer):
        def tokenize(self, text):
            return tokenize.tokenize(text, RememberingStemmer)

    return RougeScorer(list(ROUGE_TYPES), tokenizer=StemOnceTokenizer())


def _cut(text: str) -> str:
    """`text` lowercased and cut after its first MAX_ROUGE_TOKENS tokens (rouge-score's tokens: runs of
    a-z0-9 after lowercasing), so a runaway output costs at most a 512 x 512 LCS table."""
    lowered = as_text(text)[: 16 * MAX_ROUGE_TOKENS].lower()
    for count, match in enumerate(_TOKEN.finditer(lowered), start=1):
        if count == MAX_ROUGE_TOKENS:
            return lowered[: match.end()]
    return lowered


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of a prediction against one reference, as the reference
    rouge-score package computes them (lowercased a-z0-9 tokens, Porter-stemmed when longer than three)."""
    scores = _scorer().score(_cut(reference), _cut(prediction))  # rouge-score takes (target, prediction)
    return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}


def free_form_reward(prediction: str | None, reference: str) -> float:
    """Mean of ROUGE-1/2/L F1 (Open-o3's free-form accuracy); 0.0 without a prediction."""
    if prediction is None:
        return 0.0
    scores = rouge_scores(prediction, reference)
    return sum(scores.values()) / len(scores)


def interval_iou(a: tuple[float, float] | None, b: tuple[float, float] | None) -> float:
    """Intersection over union of two [start, end] intervals (seconds); 0.0 if either is missing,
    reversed, non-finite or both are empty."""
    if a is None or b is None or not all(math.isfinite(v) for v in (*a, *b)) or a[1] < a[0] or b[1] < b[0]:
        return 0.0
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def box_iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes in the same units; 0.0 for missing,
    non-finite, inverted or empty boxes."""
    if a is None or b is None or len(a) != 4 or len(b) != 4:
        return 0.0
    if not all(math.isfinite(v) for v in (*a, *b)) or a[2] < a[0] or a[3] < a[1] or b[2] < b[0] or b[3] < b[1]:
        return 0.0
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def normalise_box(box, frame_size: tuple[int, int] | None):
    """A box in pixels of a (width, height) frame as fractions of the frame; unchanged if no size."""
    if box is None or frame_size is None:
        return box
    width, height = frame_size
    if not (width > 0 and height > 0):
        return None
    return (box[0] / width, box[1] / height, box[2] / width, box[3] / height)


def answer_box(answer: str | None):
    """The box of a spatial-grounding answer: the first box of a grounded claim, else the first
    `[x1, y1, x2, y2]` written in the answer."""
    if answer is None:
        return None
    claims = parse_claims(answer).claims
    for claim in claims:
        if claim.boxes:
            return claim.boxes[0]
    for match in re.finditer(r"\[[^\[\]]{0,200}\]", answer[: 16 * MAX_ITEMS]):
        box = parse_box(match.group(0))
        if box is not None:
            return box
    return None


def spatial_answer_reward(answer: str | None, reference: str, frame_size: tuple[int, int] | None) -> float:
    """IoU of the answer box (pixels of the model's frame, `frame_size` = (width, height)) with the
    normalised reference box "[x1, y1, x2, y2]"."""
    return box_iou(normalise_box(answer_box(answer), frame_size), parse_box(reference))


def temporal_answer_reward(answer: str | None, reference: str) -> float:
    """tIoU of a temporal answer (`From <t>s</t>s to <t>e</t>s`, `{"temporal_segment": …}` or
    `[s, e]`) with the reference "[s, e]"."""
    if answer is None:
        return 0.0
    return interval_iou(parse_interval(answer).interval, parse_interval(reference).interval)


def tg_mcq_reward(answer: str | None, reference: str) -> tuple[float, float]:
    """(letter correct, tIoU) of a TG-MCQ answer against the reference "X\\n[s, e]"; summed as r_acc."""
    if answer is None:
        return 0.0, 0.0
    return choice_reward(answer, reference), temporal_answer_reward(answer, reference)
