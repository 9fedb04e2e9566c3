"""Label Studio's brush RLE: how a ``brushlabels`` result carries a mask (``value.rle``).

The format (Label Studio's frontend packs it with @thi.ng/rle-pack; label-studio-sdk's
``converter.brush`` reads and writes the same bytes): the mask as RGBA, row-major, every
channel holding the mask value (0 or 255; readers take the alpha channel), run-length coded
into a bit stream, MSB first:

* header: 32 bits the number of values N (= H * W * 4), 5 bits the word size - 1 (7: bytes),
  four 4-bit fields the run-length widths - 1 (3, 4, 8, 16 bits: 2, 3, 7, 15);
* then runs: 1 bit "repeat", 2 bits which run-length width, that many bits (length - 1), and
  one 8-bit value for a repeat run (or ``length`` values for a literal run; we write literal
  runs of length 1 only, as the sdk does); runs longer than 65536 are split;
* zero bits up to a whole byte (the sdk always adds 1-8: we do the same, so our bytes are
  byte-identical to the sdk's, checked against it in the Label Studio tests).

Our own numpy code rather than label-studio-sdk: the sdk pins numpy < 2.3 and OpenCV 4.12 and
pulls ~40 packages (pandas, nltk, black ...) into the runtime. It is vectorised (a 480x854 mask
encodes in a few ms; the sdk builds a string of bits one character at a time).
"""
from __future__ import annotations

import numpy as np

from .._validate import describe
from ..errors import InvalidInput

RUN_WIDTHS = (3, 4, 8, 16)
"""Bits of (run length - 1) for each of the four run classes."""
MAX_RUN = 1 << RUN_WIDTHS[-1]
WORD_BITS = 8
HEADER_BITS = 32 + 5 + 4 * 4


def mask_to_brush_rle(mask: np.ndarray) -> list[int]:
    """(H, W) mask (nonzero = object) -> Label Studio brush RLE bytes (a list of ints 0..255)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InvalidInput(f"mask must be a 2-D (H, W) array, got {describe(mask)}")
    # runs over pixels: each pixel's 4 equal channel values only lengthen its run 4 times
    flat = (m != 0).ravel()
    n = flat.size * 4
    ends = np.append(np.flatnonzero(flat[1:] != flat[:-1]), flat.size - 1)
    lengths = np.diff(np.append(-1, ends)) * 4
    pieces = -(-lengths // MAX_RUN)  # runs longer than MAX_RUN are split
    values = np.repeat(np.where(flat[ends], 255, 0), pieces).astype(np.int64)
    runs = np.full(values.size, MAX_RUN, np.int64)
    runs[np.cumsum(pieces) - 1] = lengths - (pieces - 1) * MAX_RUN
    kind = np.searchsorted(np.array([1 << w for w in RUN_WIDTHS]), runs)  # smallest class that holds the run
    length_bits = np.array(RUN_WIDTHS)[kind]
    repeat = (runs > 1).astype(np.int64)
    width = 1 + 2 + length_bits + WORD_BITS
    field = (repeat << (width - 1)) | (kind << (length_bits + WORD_BITS)) | ((runs - 1) << WORD_BITS) | values
    header = (n << 21) | ((WORD_BITS - 1) << 16)
    for i, w in enumerate(RUN_WIDTHS):
        header |= (w - 1) << (12 - 4 * i)
    total = HEADER_BITS + int(width.sum())
    bits = np.zeros(total + 8 - total % 8, np.uint8)  # 1-8 zero bits of padding, as the sdk writes
    bits[:HEADER_BITS] = (header >> np.arange(HEADER_BITS - 1, -1, -1)) & 1
    starts = HEADER_BITS + np.concatenate(([0], np.cumsum(width)[:-1]))
    for w in np.unique(width):
        sel = width == w
        bits[(starts[sel, None] + np.arange(w)).ravel()] = ((field[sel, None] >> np.arange(w - 1, -1, -1)) & 1).ravel()
    return np.packbits(bits).tolist()


def brush_rle_to_mask(rle: list[int], height: int, width: int) -> np.ndarray:
    """Label Studio brush RLE bytes -> (height, width) uint8 {0, 1} mask (alpha > 0).
    ``InvalidInput`` when the bytes are not a brush RLE of that size."""
    try:
        data = np.unpackbits(np.asarray(rle, np.uint8))
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"brush rle must be a list of bytes (ints 0..255), got {describe(rle)}") from None
    pos = 0

    def read(k: int) -> int:
        nonlocal pos
        if pos + k > data.size:
            raise InvalidInput("brush rle ends before its last run")
        chunk = data[pos:pos + k]
        pos += k
        return int(chunk.dot(1 << np.arange(k - 1, -1, -1, dtype=np.int64))) if k else 0

    n = read(32)
    if n != height * width * 4:
        raise InvalidInput(f"brush rle holds {n} values, expected {height} x {width} x 4 = {height * width * 4}")
    word = read(5) + 1
    widths = [read(4) + 1 for _ in range(4)]
    out = np.empty(n, np.uint8)
    i = 0
    while i < n:
        repeat = read(1)
        j = i + 1 + read(widths[read(2)])
        if j > n:
            raise InvalidInput("brush rle has a run past the end of the image")
        if repeat:
            out[i:j] = read(word)
        else:
            for k in range(i, j):
                out[k] = read(word)
        i = j
    return (out.reshape(height, width, 4)[:, :, 3] > 0).astype(np.uint8)
