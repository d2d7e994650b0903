"""The importer's report: one line per z2jh key, and the error for input it cannot read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["carried", "changed", "none"]
# How each status reads in the report, padded to one width.
LABELS: dict[Status, str] = {
    "carried": "carried ",
    "changed": "changed ",
    "none": "no counterpart",
}


class Z2JHError(ValueError):
    """Input that is not a z2jh values file podgate can read; every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Line:
    status: Status
    key: str  # the z2jh key, dotted ("singleuser.cpu.limit")
    text: str  # where it went, or why it did not

    def render(self) -> str:
        return f"{LABELS[self.status]:<15} {self.key}: {self.text}"


@dataclass
class Report:
    lines: list[Line] = field(default_factory=list)

    def carried(self, key: str, text: str) -> None:
        self.lines.append(Line("carried", key, text))

    def changed(self, key: str, text: str) -> None:
        self.lines.append(Line("changed", key, text))

    def none(self, key: str, text: str) -> None:
        self.lines.append(Line("none", key, text))

    def count(self, status: Status) -> int:
        return sum(line.status == status for line in self.lines)

    def render(self) -> str:
        summary = ", ".join(
            f"{self.count(s)} {word}"
            for s, word in (
                ("carried", "carried over"),
                ("changed", "changed"),
                ("none", "without a counterpart"),
            )
        )
        return "\n".join([*(line.render() for line in self.lines), summary]) + "\n"
