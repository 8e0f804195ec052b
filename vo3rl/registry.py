"""Name -> object registries (losses, advantage estimators, tools, dataset readers, pipeline stages).

    LOSSES = Registry("loss")

    @LOSSES.register("sft")
    def sft_loss(...): ...

    LOSSES.get("sft")        # the object; an unknown name raises UnknownName listing the known ones
    "sft" in LOSSES, LOSSES.names(), len(LOSSES), list(LOSSES)

A name is registered once: a second registration under the same name raises ValueError, so two
plug-ins cannot silently replace each other. Code that may run twice in one process checks
membership first.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no entry of the registry has. A KeyError (a failed lookup) and a ValueError (a bad
    configuration value), so callers that caught either before registries existed still do."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Objects of one `kind` ("loss", "tool", ...) by name; `kind` appears in every error message."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register `obj` as `name`; returns it. Raises ValueError when `name` is taken."""
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def decorate(obj: T) -> T:
            return self.add(name, obj)

        return decorate

    def get(self, name: str) -> T:
        """The object registered as `name`. Raises UnknownName naming the kind and the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {known}") from None

    __getitem__ = get

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
