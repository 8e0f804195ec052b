"""Multiple-choice options and answer letters, normalised the same way for every reader."""
from __future__ import annotations

import re
from typing import Any

from vo3rl.data.schema import SampleError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTERED = re.compile(r"^\s*\(?([A-Z])\)?\s*[.:)]\s*(.*)$", re.S)
_ANSWER_LETTER = re.compile(r"^\s*[\(\[]?([A-Z])[\)\]]?(?:\s*[.:)]|\s|$)")
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\)?[.:)]\s+\S", re.M)


def format_options(texts: list[str]) -> list[str]:
    """["red", "blue"] -> ["A. red", "B. blue"]."""
    if len(texts) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} options, got {len(texts)}")
    return [f"{LETTERS[i]}. {text}" for i, text in enumerate(texts)]


def option_text(option: str) -> str:
    """"B. blue" -> "blue" (an unlettered option is returned stripped)."""
    match = _LETTERED.match(option)
    return (match.group(2) if match else option).strip()


def normalise_options(raw: Any, sample_id: str) -> list[str]:
    """Options as "A. text" strings from: a list already lettered ("A. x", "(A) x", "A) x"), a list
    of plain texts (lettered in order), or a dict {"A": text}. Raises SampleError otherwise."""
    if isinstance(raw, dict):
        items = sorted((str(k).strip().upper(), v) for k, v in raw.items())
        if not all(len(k) == 1 and k in LETTERS and isinstance(v, str) for k, v in items):
            raise SampleError(sample_id, f"bad_field: options dict must map letters to strings, got {raw!r}")
        return [f"{k}. {v.strip()}" for k, v in items]
    if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
        raise SampleError(sample_id, f"bad_field: options must be a list of strings or a letter dict, got {type(raw).__name__}")
    matches = [_LETTERED.match(o) for o in raw]
    if raw and all(matches):
        letters = [m.group(1) for m in matches]
        if letters == list(LETTERS[: len(raw)]):
            return [f"{m.group(1)}. {m.group(2).strip()}" for m in matches]
    try:
        return format_options([o.strip() for o in raw])
    except ValueError as exc:
        raise SampleError(sample_id, f"bad_field: {exc}") from None


def options_from_question(question: str) -> list[str]:
    """Lettered option lines inside a question text ("A. ...", one per line), if they run A, B, ..."""
    lines = [line.strip() for line in question.splitlines() if _OPTION_LINE.match(line)]
    opts = [f"{_LETTERED.match(line).group(1)}. {_LETTERED.match(line).group(2).strip()}" for line in lines]
    return opts if [o[0] for o in opts] == list(LETTERS[: len(opts)]) and len(opts) >= 2 else []


def question_without_options(question: str) -> str:
    """The question with its lettered option lines (and an "Options:" heading) removed: the templates
    render the options themselves, so they would otherwise appear twice."""
    kept = [line for line in question.splitlines()
            if not _OPTION_LINE.match(line) and line.strip().lower() not in ("options:", "options")]
    return "\n".join(kept).strip()


def answer_letter(answer: Any, options: list[str], sample_id: str) -> str:
    """The key letter of an MCQ answer given as "B", "(B)", "B. blue", or the option text "blue".
    Raises SampleError when it names no option."""
    if not isinstance(answer, str) or not answer.strip():
        raise SampleError(sample_id, f"bad_answer: answer must be a non-empty string, got {answer!r}")
    valid = [o[0] for o in options]
    match = _ANSWER_LETTER.match(answer)
    if match and match.group(1) in valid:
        return match.group(1)
    wanted = answer.strip().casefold()
    for option in options:
        if option_text(option).casefold() == wanted:
            return option[0]
    raise SampleError(sample_id, f"bad_answer: {answer!r} names none of the options {valid}")
