"""Point clouds read as lidar datasets ship them: PCD in its three encodings, written by the
reference PCD library, and raw float32 .bin records; points inside cuboids counted as a brute-force
rotation into each box's frame counts them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pypcd4 import Encoding, PointCloud

from shoal.common.pointclouds import PointCloudError, points_in_cuboids, read


def _cloud(n: int, seed: int = 0) -> np.ndarray:
    """Points on a coarse grid (as a quantising sensor gives them), so LZF finds repeats to compress."""
    rng = np.random.default_rng(seed)
    xyz = np.round(rng.normal(0, 20, size=(n, 3)) * 4) / 4
    intensity = rng.integers(0, 8, size=(n, 1))
    return np.hstack([xyz, intensity]).astype(np.float32)


def _pcd_bytes(points: np.ndarray, encoding: str) -> bytes:
    pc = PointCloud.from_xyzi_points(points)
    buf = io.BytesIO()
    pc.save(buf, encoding=Encoding(encoding))
    out = buf.getvalue()
    assert f"DATA {encoding}\n".encode() in out  # the library writes binary when compressing would not pay
    return out


@pytest.mark.parametrize("encoding", ["ascii", "binary", "binary_compressed"])
def test_pcd_read_as_the_reference_library_wrote_it(encoding: str) -> None:
    points = _cloud(5_000)
    got = read(_pcd_bytes(points, encoding), "cloud.pcd")
    assert got.shape == (5_000, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, points, rtol=1e-6, atol=1e-3 if encoding == "ascii" else 0)


def test_pcd_with_repeated_values_compresses_and_reads_back() -> None:
    # long runs make LZF write back references, overlapping ones included
    points = np.zeros((3_000, 4), dtype=np.float32)
    points[::7, 0] = 1.5
    points[:, 3] = np.arange(3_000) % 3
    np.testing.assert_array_equal(read(_pcd_bytes(points, "binary_compressed"), "c.pcd"), points)


def test_bin_records_of_kitti_and_nuscenes() -> None:
    points = _cloud(100)
    kitti = read(points.tobytes(), "000001.bin")
    np.testing.assert_array_equal(kitti, points)
    ring = np.hstack([points, np.arange(100, dtype=np.float32)[:, None]])
    np.testing.assert_array_equal(read(ring.tobytes(), "LIDAR_TOP__1.pcd.bin"), points)


def test_points_without_coordinates_are_dropped() -> None:
    points = _cloud(10)
    points[3, 1] = np.nan
    assert read(points.tobytes(), "a.bin").shape == (9, 4)


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (b"\x00" * 17, "a.bin", "whole number"),
        (b"VERSION 0.7\nFIELDS a b\nSIZE 4 4\nTYPE F F\nCOUNT 1 1\nPOINTS 1\nDATA binary\n", "a.pcd", "x, y and z"),
        (
            b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 2\nDATA binary\n" + b"\0" * 12,
            "a.pcd",
            "shorter",
        ),
        (b"VERSION 0.7\nFIELDS x y z\n", "a.pcd", "DATA"),
        (b"hello", "a.ply", "neither"),
    ],
)
def test_unreadable_clouds_say_why(data: bytes, name: str, says: str) -> None:
    with pytest.raises(PointCloudError, match=says):
        read(data, name)


def test_corrupt_compressed_data_is_refused() -> None:
    good = _pcd_bytes(_cloud(500), "binary_compressed")
    head = good.index(b"DATA binary_compressed\n") + len("DATA binary_compressed\n")
    bad = good[: head + 8] + bytes([0xFF]) * (len(good) - head - 8)
    with pytest.raises(PointCloudError, match="corrupt"):
        read(bad, "c.pcd")


def test_points_in_cuboids_match_a_rotation_into_each_box() -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform(-10, 10, size=(20_000, 3))
    boxes = np.column_stack([rng.uniform(-5, 5, (30, 3)), rng.uniform(0.5, 6, (30, 3)), rng.uniform(-np.pi, np.pi, 30)])
    want = []
    for x, y, z, w, length, h, yaw in boxes:
        d = points - [x, y, z]
        along = d[:, 0] * np.cos(yaw) + d[:, 1] * np.sin(yaw)
        across = -d[:, 0] * np.sin(yaw) + d[:, 1] * np.cos(yaw)
        want.append(int(((abs(along) <= length / 2) & (abs(across) <= w / 2) & (abs(d[:, 2]) <= h / 2)).sum()))
    got = points_in_cuboids(points, boxes)
    assert got.tolist() == want and sum(want) > 1_000
    assert points_in_cuboids(points, np.zeros((0, 7))).tolist() == []
