"""numpy RGB images <-> sensor_msgs/msg/Image fields, without cv_bridge.

The PyPI ``cv-bridge`` does not work with NumPy 2, and the rosbags message classes are not the rclpy
ones anyway, so the conversion is written once here as pure functions over the plain Image fields
(height, width, encoding, is_bigendian, step, data). Both rosbags messages (``data`` is a numpy array)
and rclpy messages (``data`` is an ``array.array('B')``) work: anything exposing the buffer protocol
is accepted as ``data``. The project's canonical in-memory image is (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

ENCODINGS = ("rgb8", "bgr8", "mono8")
_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
# ITU-R BT.601 luma weights, the same cv2.cvtColor(..., COLOR_RGB2GRAY) uses.
_LUMA = np.array([0.299, 0.587, 0.114])


class ImageMsgError(ValueError):
    """An image or Image message field is inconsistent (wrong size, dtype, encoding, ...)."""


class ImageFields(NamedTuple):
    """The sensor_msgs/msg/Image fields other than the header, ready to copy onto any message type."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray  # (height * step,) uint8, C-contiguous


def channels(encoding: str) -> int:
    """Channels per pixel of a supported encoding; raises ImageMsgError for anything else."""
    try:
        return _CHANNELS[encoding]
    except KeyError:
        raise ImageMsgError(
            f"unsupported image encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}"
        ) from None


def check_rgb(image: np.ndarray) -> np.ndarray:
    """Return ``image`` if it is an (H, W, 3) uint8 array, else raise ImageMsgError saying what is wrong."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageMsgError(f"expected a uint8 RGB image, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageMsgError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageMsgError(f"image has no pixels: shape {image.shape}")
    return image


def rgb_to_fields(image: np.ndarray, encoding: str = "rgb8") -> ImageFields:
    """Encode an (H, W, 3) uint8 RGB image as Image fields in ``encoding`` (rows packed, no padding)."""
    image = check_rgb(image)
    ch = channels(encoding)
    if encoding == "rgb8":
        pixels = image
    elif encoding == "bgr8":
        pixels = image[:, :, ::-1]
    else:
        pixels = np.rint(image @ _LUMA).clip(0, 255).astype(np.uint8)
    height, width = image.shape[:2]
    data = np.ascontiguousarray(pixels).reshape(-1)
    return ImageFields(height, width, encoding, 0, width * ch, data)


def fields_to_rgb(height: int, width: int, encoding: str, step: int, data: Any, is_bigendian: int = 0) -> np.ndarray:
    """Decode Image fields to a new (H, W, 3) uint8 RGB array (row padding beyond width is dropped).

    ``is_bigendian`` is accepted for completeness; it does not matter for 8-bit encodings.
    """
    del is_bigendian  # one byte per channel: byte order is irrelevant
    ch = channels(encoding)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageMsgError(f"image has no pixels: height={height} width={width}")
    if step < width * ch:
        raise ImageMsgError(f"step {step} is smaller than width * channels = {width} * {ch} for {encoding}")
    buf = _as_bytes_array(data)
    if buf.size != height * step:
        raise ImageMsgError(
            f"image data has {buf.size} bytes, expected height * step = {height} * {step} = {height * step}"
        )
    pixels = buf.reshape(height, step)[:, : width * ch].reshape(height, width, ch)
    if encoding == "rgb8":
        return pixels.copy()
    if encoding == "bgr8":
        return pixels[:, :, ::-1].copy()
    return np.repeat(pixels, 3, axis=2)


def _as_bytes_array(data: Any) -> np.ndarray:
    """View Image ``data`` (numpy uint8 array, bytes, array.array('B'), list of ints) as flat uint8."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageMsgError(f"image data must be uint8, got dtype {data.dtype}")
        return data.reshape(-1)
    try:
        view = memoryview(data)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    if view.itemsize != 1:
        raise ImageMsgError(f"image data must be bytes, got items of {view.itemsize} bytes")
    return np.frombuffer(view, dtype=np.uint8)


def fill_msg(msg: Any, image: np.ndarray, encoding: str = "rgb8", *, as_bytes: bool = False) -> Any:
    """Set the Image fields of ``msg`` (rosbags or rclpy) from an RGB image and return ``msg``.

    rosbags needs ``data`` as a uint8 numpy array; rclpy messages take ``bytes`` quickly
    (``as_bytes=True``), whereas a numpy array would be checked element by element.
    """
    f = rgb_to_fields(image, encoding)
    msg.height, msg.width, msg.encoding = f.height, f.width, f.encoding
    msg.is_bigendian, msg.step = f.is_bigendian, f.step
    msg.data = f.data.tobytes() if as_bytes else f.data
    return msg


def msg_to_rgb(msg: Any) -> np.ndarray:
    """Decode any object with the Image fields (rosbags or rclpy message) to (H, W, 3) uint8 RGB."""
    return fields_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)
