"""Label Studio's brush bit stream (shoal.labeling_bridge.brush), without a server. The byte values
written here are label-studio-converter's (``brush.mask2rle``), which
tests/integration/test_label_studio_adapter.py compares against on random masks."""

from __future__ import annotations

import numpy as np
import pytest

from shoal.labeling_bridge import brush


def _stream(fields: list[tuple[int, int]]) -> list[int]:
    """The bytes of (value, width) bit fields, most significant bit first, zero-padded."""
    bits = "".join(f"{value:0{width}b}" for value, width in fields)
    bits += "0" * (-len(bits) % 8)
    return [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]


def test_random_masks_round_trip() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        mask = rng.random((h, w)) < rng.random()
        rle = brush.encode(mask)
        assert all(0 <= b <= 255 for b in rle)
        np.testing.assert_array_equal(brush.decode(rle, h, w), mask)


def test_masks_of_blobs_and_long_runs_round_trip() -> None:
    """Runs longer than one block holds (65,536 values: 16,384 pixels) are split over several."""
    blob = np.zeros((300, 500), dtype=bool)
    blob[40:260, 100:420] = True
    full = np.ones((300, 500), dtype=bool)
    for mask in (blob, full, ~blob, np.zeros((300, 500), dtype=bool), np.ones((1, 1), dtype=bool)):
        np.testing.assert_array_equal(brush.decode(brush.encode(mask), *mask.shape), mask)


def test_the_bytes_are_label_studio_converters() -> None:
    assert brush.encode(np.array([[0, 255], [255, 255]])) == [0, 0, 0, 16, 57, 27, 252, 96, 22, 255, 192]
    assert brush.encode(np.array([[1]])) == [0, 0, 0, 4, 57, 27, 252, 127, 224]
    assert brush.encode(np.ones((200, 200))) == [0, 2, 113, 0, 57, 27, 255, 255, 255, 255, 255, 255, 255, 253,
                                                 195, 255, 252]  # fmt: skip


def test_streams_of_other_field_sizes_and_literal_blocks_are_read() -> None:
    """The editor's encoder picks its own field sizes and writes literal blocks; a painted pixel is
    one with a nonzero alpha, whatever its colour."""
    header = [(2 * 4, 32), (8 - 1, 5), (1, 4), (2, 4), (4, 4), (8, 4)]  # 8 values; fields of 2, 3, 5, 9 bits
    rle = _stream([*header, (1, 1), (1, 2), (3, 3), (0, 8),  # a repeat: 4 zeros
                   (0, 1), (1, 2), (3, 3), (10, 8), (20, 8), (30, 8), (200, 8)])  # fmt: skip
    np.testing.assert_array_equal(brush.decode(rle, 1, 2), [[False, True]])
    # 4-bit words; a pixel with colour but no alpha is not painted
    header = [(2 * 4, 32), (4 - 1, 5), (2, 4), (3, 4), (7, 4), (15, 4)]
    rle = _stream([*header, (0, 1), (0, 2), (3, 3), (9, 4), (9, 4), (9, 4), (0, 4), (1, 1), (0, 2), (3, 3), (15, 4)])
    np.testing.assert_array_equal(brush.decode(rle, 2, 1), [[False], [True]])


@pytest.mark.parametrize(
    ("rle", "size", "message"),
    [
        ([0, 0, 0, 16, 57, 27, 252, 96, 22, 255, 192], (3, 2), "holds 16 values, not 24"),
        ([0, 0, 0, 16, 57, 27, 252, 96], (2, 2), "ends at bit 64"),
        (
            _stream([(4, 32), (7, 5), (2, 4), (3, 4), (7, 4), (15, 4), (1, 1), (0, 2), (7, 3), (0, 8)]),
            (1, 1),
            "runs to value 8, past the stream's 4",
        ),
        ([0, 0, 0, 4, 57, 27, 252, 300], (1, 1), "byte values"),
        ([0, 0, 0], (1, 1), "header"),
        ([[0, 1]], (1, 1), "byte values"),
    ],
)
def test_broken_streams_say_where(rle: list[int], size: tuple[int, int], message: str) -> None:
    with pytest.raises(brush.BrushError, match=message):
        brush.decode(rle, *size)


def test_a_mask_must_be_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        brush.encode(np.zeros((2, 2, 4)))
