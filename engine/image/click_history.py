"""The click history of one image: what ``ImagePredictor.undo`` takes back.

Each step holds every click and stroke made so far and the result they gave (its
low-resolution logits are what the next click starts from), so ``undo`` is a pop and never
re-runs the network.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .click_pipeline import ClickResult, Stroke

Click = tuple[float, float, bool]
"""(x, y, positive): original pixels, x = column."""


@dataclass
class Step:
    """The interaction after one click or stroke: all of them so far, and the result."""

    clicks: list[Click] = field(default_factory=list)
    strokes: list[Stroke] = field(default_factory=list)
    result: ClickResult | None = None


class ClickHistory:
    """An undo stack of ``Step``s (empty: no click yet)."""

    def __init__(self) -> None:
        self._steps: list[Step] = []

    @property
    def result(self) -> ClickResult | None:
        """The latest step's result (None when empty)."""
        return self._steps[-1].result if self._steps else None

    def extend(self, *, click: Click | None = None, stroke: Stroke | None = None) -> Step:
        """A new step: the latest one's clicks and strokes plus ``click`` / ``stroke``, its
        ``result`` still the previous result (not yet pushed)."""
        prev = self._steps[-1] if self._steps else Step()
        step = Step(list(prev.clicks), list(prev.strokes), prev.result)
        if click is not None:
            step.clicks.append(click)
        if stroke is not None:
            step.strokes.append(stroke)
        return step

    def push(self, step: Step) -> None:
        self._steps.append(step)

    def undo(self) -> ClickResult | None:
        """Drops the latest step; returns the result before it (None when none is left)."""
        if self._steps:
            self._steps.pop()
        return self.result

    def clear(self) -> None:
        self._steps = []
