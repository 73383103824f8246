"""Label Studio's brush masks: the run-length bit stream of its ``<BrushLabels>`` results, to and from
a 2-D mask.

A brush region's value is ``{"format": "rle", "rle": [bytes...], "brushlabels": [...]}``: the bytes of
a bit stream (thi.ng's ``rle-pack``, which Label Studio's editor decodes) over the region's RGBA image
of ``original_height`` x ``original_width`` pixels, row by row, four values a pixel. A painted pixel
has a nonzero alpha (the fourth value); Label Studio's own exports read the alpha channel so.

The stream, most significant bit first: the number of values (32 bits), the word size minus 1 (5
bits), four run-length field sizes minus 1 (4 bits each), then blocks up to the number of values.
A block is a flag bit, a 2-bit index into the field sizes and a length ``n - 1`` in that many bits;
flag 1 repeats the one word that follows ``n`` times, flag 0 is followed by ``n`` words as they are.

Shoal writes what label-studio-converter's ``brush.py`` writes (``mask2rle``: 8-bit words, field
sizes 3, 4, 8 and 16, every run as one repeat block, or several of at most 65,536 values, and zero
bits to the next byte, a whole zero byte when already there), byte for byte, and reads any stream of
this format: the editor's own encoder chooses other field sizes and literal blocks. It is written
here with numpy rather than taken from ``label-studio-sdk``, whose dependency tree is Label Studio's
and is kept out of Shoal's install.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["BrushError", "decode", "encode"]

#: what Shoal writes: 8-bit words, the field sizes label-studio-converter uses
_WORD = 8
_FIELDS = (3, 4, 8, 16)
#: the longest run one block of the largest field holds
_LONGEST = 1 << _FIELDS[-1]
#: the value of a painted pixel's channels
_PAINTED = 255
#: the number of values, the word size and the four field sizes: 53 bits
_HEADER_BYTES = 7


class BrushError(ValueError):
    """A brush stream that cannot be read; the message says where it breaks."""


def encode(mask: np.ndarray) -> list[int]:
    """The brush stream (a list of byte values) of a 2-D (height, width) mask; any nonzero pixel is
    painted (255 in each of its four channels)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D (height, width), got shape {m.shape}")
    flat = m.ravel(order="C") != 0
    n = flat.size
    if n == 0:
        runs, values = np.zeros(0, np.int64), np.zeros(0, np.int64)
    else:
        starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
        runs = np.diff(np.append(starts, n)) * 4  # four channels a pixel
        values = np.where(flat[starts], _PAINTED, 0)
    # a run longer than the largest field is written as blocks of _LONGEST values and the rest
    full = (runs - 1) // _LONGEST
    blocks = np.repeat(runs, full + 1)
    first = np.cumsum(full + 1) - (full + 1)  # the first block of each run
    blocks[:] = _LONGEST
    blocks[first + full] = runs - full * _LONGEST
    block_values = np.repeat(values, full + 1)
    # a block of one value is a literal of one word (flag 0), any other a repeat (flag 1)
    field = np.searchsorted(np.array([1 << s for s in _FIELDS]), blocks)  # the smallest field the length fits
    sizes = np.array(_FIELDS)[field]
    flags = (blocks > 1).astype(np.int64)
    header = [(4 * n, 32), (_WORD - 1, 5), *((s - 1, 4) for s in _FIELDS)]
    head_values = np.array([v for v, _ in header], np.int64)
    head_bits = np.array([b for _, b in header], np.int64)
    # each block: flag (1 bit), field index (2), length - 1 (its field's size), the word (8)
    body_values = np.stack((flags, field, blocks - 1, block_values), axis=1).ravel()
    body_bits = np.stack(
        (np.ones_like(sizes), np.full_like(sizes, 2), sizes, np.full_like(sizes, _WORD)), axis=1
    ).ravel()
    bits = _bits(np.concatenate((head_values, body_values)), np.concatenate((head_bits, body_bits)))
    pad = 8 - bits.size % 8  # as label-studio-converter pads: 1 to 8 zero bits
    return np.packbits(np.concatenate((bits, np.zeros(pad, np.uint8)))).tolist()


def _bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The bits of each value in its width, most significant first, one after the other."""
    total = int(widths.sum())
    owner = np.repeat(np.arange(values.size), widths)
    starts = np.cumsum(widths) - widths
    shift = widths[owner] - 1 - (np.arange(total) - starts[owner])
    return ((values[owner] >> shift) & 1).astype(np.uint8)


def decode(rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """The (height, width) bool mask of a brush stream: the pixels whose alpha is nonzero.

    Raises:
        BrushError: the values are not bytes, the stream holds another number of values than
            height x width x 4, or it ends or overruns before its last value.
    """
    data = np.asarray(rle)
    if data.ndim != 1 or data.size < _HEADER_BYTES or data.dtype.kind not in "iu" or data.min() < 0 or data.max() > 255:
        raise BrushError("the rle is not a list of byte values (0 to 255) holding at least the stream's header")
    # one character a bit: int(text, 2) reads a field fast
    text = (np.unpackbits(data.astype(np.uint8)) + ord("0")).tobytes().decode("ascii")
    pos = 0

    def read(size: int) -> int:
        nonlocal pos
        if pos + size > len(text):
            raise BrushError(f"the stream ends at bit {len(text)}, in the middle of a block")
        value = int(text[pos : pos + size], 2)
        pos += size
        return value

    num = read(32)
    if num != height * width * 4:
        raise BrushError(f"the stream holds {num} values, not {height * width * 4} ({height}x{width} pixels x 4)")
    word = read(5) + 1
    fields = [read(4) + 1 for _ in range(4)]
    painted = np.zeros(num, dtype=bool)
    i = 0
    while i < num:
        repeat = read(1)
        j = i + 1 + read(fields[read(2)])
        if j > num:
            raise BrushError(f"a block runs to value {j}, past the stream's {num}")
        if repeat:
            painted[i:j] = read(word) != 0
        else:
            painted[i:j] = [read(word) != 0 for _ in range(j - i)]
        i = j
    return painted.reshape(height, width, 4)[:, :, 3]
