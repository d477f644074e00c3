"""RGB numpy images <-> sensor_msgs/msg/Image fields, for rosbags and rclpy messages alike."""

from __future__ import annotations

import array

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from mil_sim.image_msgs import (
    ImageMsgError,
    fields_to_rgb,
    fill_msg,
    msg_to_rgb,
    rgb_to_fields,
)


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_color_round_trip(rgb: np.ndarray, encoding: str) -> None:
    f = rgb_to_fields(rgb, encoding)
    assert (f.height, f.width, f.encoding, f.is_bigendian, f.step) == (5, 7, encoding, 0, 21)
    assert f.data.dtype == np.uint8 and f.data.shape == (5 * 21,)
    back = fields_to_rgb(f.height, f.width, f.encoding, f.step, f.data)
    assert back.dtype == np.uint8 and np.array_equal(back, rgb)


def test_bgr8_swaps_channels_in_the_buffer(rgb: np.ndarray) -> None:
    f = rgb_to_fields(rgb, "bgr8")
    assert np.array_equal(f.data.reshape(5, 7, 3), rgb[:, :, ::-1])


def test_mono8_is_luma_replicated_on_decode() -> None:
    img = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    f = rgb_to_fields(img, "mono8")
    assert f.step == 4
    assert f.data.tolist() == [76, 150, 29, 255]  # BT.601 weights, as cv2.COLOR_RGB2GRAY
    back = fields_to_rgb(1, 4, "mono8", 4, f.data)
    assert back.shape == (1, 4, 3) and back[0, 1].tolist() == [150, 150, 150]


def test_row_padding_is_dropped(rgb: np.ndarray) -> None:
    padded = np.zeros((5, 24), dtype=np.uint8)
    padded[:, :21] = rgb.reshape(5, 21)
    back = fields_to_rgb(5, 7, "rgb8", 24, padded.tobytes())
    assert np.array_equal(back, rgb)


def test_decoded_image_does_not_alias_message_data(rgb: np.ndarray) -> None:
    f = rgb_to_fields(rgb)
    back = fields_to_rgb(f.height, f.width, f.encoding, f.step, f.data)
    back[:] = 0
    assert f.data.any()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((5, 7, "rgb16", 42, bytes(210)), "unsupported image encoding 'rgb16'"),
        ((5, 7, "rgb8", 20, bytes(100)), "step 20 is smaller"),
        ((5, 7, "rgb8", 21, bytes(104)), "104 bytes, expected height \\* step"),
        ((0, 7, "rgb8", 21, b""), "no pixels"),
        ((1, 2, "mono8", 2, np.zeros(2, dtype=np.float32)), "must be uint8"),
    ],
)
def test_bad_fields_raise(args: tuple, match: str) -> None:
    with pytest.raises(ImageMsgError, match=match):
        fields_to_rgb(*args)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((4, 4), dtype=np.uint8), "\\(H, W, 3\\)"),
        (np.zeros((4, 4, 4), dtype=np.uint8), "\\(H, W, 3\\)"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "no pixels"),
    ],
)
def test_bad_images_raise(image: np.ndarray, match: str) -> None:
    with pytest.raises(ImageMsgError, match=match):
        rgb_to_fields(image)


def test_bad_encoding_on_encode(rgb: np.ndarray) -> None:
    with pytest.raises(ImageMsgError, match="unsupported image encoding"):
        rgb_to_fields(rgb, "yuv422")
    assert issubclass(ImageMsgError, ValueError)


def test_list_and_array_b_data(rgb: np.ndarray) -> None:
    f = rgb_to_fields(rgb)
    as_list = fields_to_rgb(5, 7, "rgb8", 21, f.data.tolist())
    as_array_b = fields_to_rgb(5, 7, "rgb8", 21, array.array("B", f.data.tobytes()))
    assert np.array_equal(as_list, rgb) and np.array_equal(as_array_b, rgb)


def test_rosbags_message_round_trip_through_cdr(rgb: np.ndarray) -> None:
    ts = get_typestore(Stores.ROS2_KILTED)
    Image, Header, Time = (
        ts.types[t] for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time")
    )
    msg = Image(Header(Time(0, 0), "cam"), 0, 0, "", 0, 0, np.zeros(0, dtype=np.uint8))
    fill_msg(msg, rgb, "bgr8")
    raw = ts.serialize_cdr(msg, "sensor_msgs/msg/Image")
    decoded = ts.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    assert decoded.encoding == "bgr8" and np.array_equal(msg_to_rgb(decoded), rgb)


def test_rclpy_message(rgb: np.ndarray) -> None:
    msg_module = pytest.importorskip("sensor_msgs.msg", reason="ROS 2 sensor_msgs not importable")
    msg = fill_msg(msg_module.Image(), rgb, "rgb8", as_bytes=True)
    assert isinstance(msg.data, array.array)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (5, 7, 21, "rgb8")
    assert np.array_equal(msg_to_rgb(msg), rgb)
