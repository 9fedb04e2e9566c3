"""Dispatch of render_clicks to the native ops (placeholder until the C++ op lands)."""
from .clicks import render_clicks_numpy


def render(height, width, clicks, sigma, strokes, out, device):
    result = render_clicks_numpy(height, width, clicks, sigma, strokes)
    if out is None:
        return result
    out[...] = result
    return out
