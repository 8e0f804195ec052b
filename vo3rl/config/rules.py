"""The one way a section's `validate` reports a value that makes no sense."""
from __future__ import annotations

Rule = tuple[bool, str, object, str]  # (holds, key within the section, its value, the rule in words)


def raise_first_broken(section: str, rules: list[Rule]) -> None:
    """Raise ValueError("<section>.<key> = <value>: must be <rule>") for the first rule that does not hold."""
    for ok, key, value, rule in rules:
        if not ok:
            raise ValueError(f"{section}.{key} = {value!r}: must be {rule}")
