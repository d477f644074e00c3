"""The project's one on-disk demonstration format: one rosbag2 bag (MCAP, metadata v9) per Episode.

The sim demo generator and the VR-teleop recorder both write this layout, and the meta-learning data
loader reads it, so a demonstration recorded on the real robot and one produced by the scripted
expert are interchangeable. Bags are plain rosbag2 directories that ``ros2 bag play`` (Kilted) replays
onto the same topics the sim node and the PR2 bridge use; they are written and read with the pure-Python
``rosbags`` package, so no ROS installation is needed.

Layout of a bag (all per-step streams carry one message per control step, stamped with the step time;
``absolute ns = start_ns + round(episode time * 1e9)``):

=======================  ==================================  =========================================
topic                    type                                content
=======================  ==================================  =========================================
``/mil/task``            std_msgs/msg/String                 one JSON message at ``start_ns`` (task)
``/camera/image_raw``    sensor_msgs/msg/Image               ``rgb8`` camera frames at image times
``/ee_pose``             geometry_msgs/msg/PoseStamped       end-effector pose in ``base_link``
``/ee_cmd_vel``          geometry_msgs/msg/TwistStamped      action, ``action_kind == "ee_twist"``
``/joint_effort_cmd``    sensor_msgs/msg/JointState          action (effort), ``"joint_effort"``
``/joint_states``        sensor_msgs/msg/JointState          joint positions and velocities
``/gripper/open``        std_msgs/msg/Bool                   commanded gripper state
``/robot_state``         std_msgs/msg/Float32MultiArray      ``Episode.states`` (label = state names)
=======================  ==================================  =========================================

The task JSON is also stored in the bag's ``metadata.yaml`` custom_data under ``mil.task`` so an index
of thousands of demos can be built without opening the MCAP files (:func:`read_task_metadata`).

Episode times are float seconds but bags store integer nanoseconds. Times that lie on the control grid
(``k * (1 / control_rate_hz)``, what :func:`mil_sim.rollout.run_episode` produces) come back bit-for-bit;
any other time comes back rounded to the nanosecond.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from mil_sim.core import Episode, Task
from mil_sim.image_msgs import ImageMsgError, msg_to_rgb, rgb_to_fields

IMAGE_TOPIC = "/camera/image_raw"
EE_POSE_TOPIC = "/ee_pose"
EE_CMD_VEL_TOPIC = "/ee_cmd_vel"
JOINT_EFFORT_CMD_TOPIC = "/joint_effort_cmd"
JOINT_STATES_TOPIC = "/joint_states"
GRIPPER_OPEN_TOPIC = "/gripper/open"
ROBOT_STATE_TOPIC = "/robot_state"
TASK_TOPIC = "/mil/task"

ACTION_TOPICS: Mapping[str, str] = {"ee_twist": EE_CMD_VEL_TOPIC, "joint_effort": JOINT_EFFORT_CMD_TOPIC}
MSGTYPES: Mapping[str, str] = {
    TASK_TOPIC: "std_msgs/msg/String",
    IMAGE_TOPIC: "sensor_msgs/msg/Image",
    EE_POSE_TOPIC: "geometry_msgs/msg/PoseStamped",
    EE_CMD_VEL_TOPIC: "geometry_msgs/msg/TwistStamped",
    JOINT_EFFORT_CMD_TOPIC: "sensor_msgs/msg/JointState",
    JOINT_STATES_TOPIC: "sensor_msgs/msg/JointState",
    GRIPPER_OPEN_TOPIC: "std_msgs/msg/Bool",
    ROBOT_STATE_TOPIC: "std_msgs/msg/Float32MultiArray",
}
# Topics with one message per control step, besides the action topic of the episode's action kind.
STEP_TOPICS = (EE_POSE_TOPIC, JOINT_STATES_TOPIC, GRIPPER_OPEN_TOPIC, ROBOT_STATE_TOPIC)

CUSTOM_DATA_KEY = "mil.task"
BASE_FRAME = "base_link"
CAMERA_FRAME = "camera"
IMAGE_ENCODING = "rgb8"
BAG_VERSION = 9  # rosbag2 metadata version that ros2 bag (Jazzy, Kilted) reads
FORMAT_VERSION = 1  # of the task JSON / topic layout below; bump on incompatible changes
# A fixed default start time keeps generated bags byte-reproducible (2023-11-14T22:13:20Z).
DEFAULT_START_NS = 1_700_000_000 * 10**9
_NS = 1_000_000_000

# rclpy's default publisher QoS (reliable, volatile, keep last 10); 0/0 durations mean "default".
DEFAULT_QOS = Qos(
    history=QosHistory.KEEP_LAST,
    depth=10,
    reliability=QosReliability.RELIABLE,
    durability=QosDurability.VOLATILE,
    deadline=QosTime(0, 0),
    lifespan=QosTime(0, 0),
    liveliness=QosLiveliness.AUTOMATIC,
    liveliness_lease_duration=QosTime(0, 0),
    avoid_ros_namespace_conventions=False,
)


class DemoBagError(ValueError):
    """A demo bag is missing, unreadable or inconsistent, or an Episode cannot be written as one."""


@cache
def typestore() -> Typestore:
    """The message definitions bags are written with (ROS 2 Kilted, the distro the project targets)."""
    return get_typestore(Stores.ROS2_KILTED)


# ----------------------------------------------------------------------------------------------- writing


def write_episode(
    path: str | os.PathLike[str],
    episode: Episode,
    state_names: Sequence[str] | None = None,
    start_ns: int = DEFAULT_START_NS,
    *,
    source: str = "sim_expert",
    compress: bool = True,
) -> Path:
    """Write ``episode`` as a new bag directory at ``path`` and return the path.

    The bag is written into a temporary directory beside ``path`` and renamed into place only once
    complete, so a crash or Ctrl-C never leaves a half-written bag under the final name (the generator's
    resume logic relies on "exists" meaning "complete"). Refuses to overwrite: FileExistsError.
    ``state_names`` (the family's ``state_names``) labels the ``/robot_state`` array; ``source`` says
    where the demo came from (``sim_expert``, ``vr_teleop``, ...). ``compress`` zstd-compresses the
    MCAP chunks (about 10x smaller for rendered scenes; ``ros2 bag play`` reads them natively).
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"demo bag {path} exists already, not overwriting")
    _check_episode(episode, state_names)
    meta = episode_metadata(episode, state_names, start_ns, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        staged = tmpdir / path.name  # the MCAP file inside is named after this, hence the final name
        _write_bag(staged, episode, meta, start_ns, compress)
        _fsync_tree(staged)
        if path.exists():
            raise FileExistsError(f"demo bag {path} appeared while writing, not overwriting")
        staged.rename(path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return path


def episode_metadata(
    episode: Episode, state_names: Sequence[str] | None, start_ns: int, source: str
) -> dict[str, Any]:
    """The task JSON of a bag: everything needed to rebuild the Episode besides the streams."""
    meta: dict[str, Any] = json.loads(episode.task.to_json())
    cam_h, cam_w = episode.images.shape[1:3]
    meta.update(
        format_version=FORMAT_VERSION,
        trial_seed=int(episode.trial_seed),
        control_rate_hz=float(episode.control_rate_hz),
        action_kind=episode.action_kind,
        success=bool(episode.success),
        source=source,
        start_ns=int(start_ns),
        n_steps=len(episode.times),
        n_images=len(episode.image_times),
        state_dim=int(episode.states.shape[1]),
        action_dim=int(episode.actions.shape[1]),
        state_names=list(state_names) if state_names is not None else None,
        joint_names=list(episode.joint_names),
        camera_width=int(cam_w),
        camera_height=int(cam_h),
        metadata=episode.metadata,
    )
    try:
        text = json.dumps(meta, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DemoBagError(f"Episode.metadata must be JSON-serializable: {exc}") from None
    return json.loads(text)  # plain JSON types: what read_episode will give back


def _json_default(obj: object) -> object:
    """Let numpy scalars and arrays into the task JSON (they come back as plain numbers and lists)."""
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


def _check_episode(ep: Episode, state_names: Sequence[str] | None) -> None:
    """Reject episodes the reader could not rebuild identically, before anything touches the disk."""
    n = len(ep.times)
    if ep.action_kind not in ACTION_TOPICS:
        raise DemoBagError(
            f"unknown action_kind {ep.action_kind!r}; expected one of {', '.join(ACTION_TOPICS)}"
        )
    shapes = {
        "states": (ep.states, np.float32, 2),
        "ee_poses": (ep.ee_poses, np.float64, 2),
        "joint_positions": (ep.joint_positions, np.float64, 2),
        "joint_velocities": (ep.joint_velocities, np.float64, 2),
        "gripper_open": (ep.gripper_open, np.bool_, 1),
        "actions": (ep.actions, np.float32, 2),
        "times": (ep.times, np.float64, 1),
    }
    for name, (arr, dtype, ndim) in shapes.items():
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != ndim or len(arr) != n:
            got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise DemoBagError(
                f"Episode.{name} must be a {ndim}-D {np.dtype(dtype)} array of length {n}, got {got}"
            )
    _check_shape("ee_poses", ep.ee_poses.shape[1], 7)
    _check_shape("joint_positions", ep.joint_positions.shape[1], len(ep.joint_names))
    _check_shape("joint_velocities", ep.joint_velocities.shape[1], len(ep.joint_names))
    if ep.action_kind == "ee_twist":
        _check_shape("actions (ee_twist)", ep.actions.shape[1], 6)
    if state_names is not None:
        _check_shape("states (vs state_names)", ep.states.shape[1], len(state_names))
    if not np.isfinite(ep.ee_poses).all():
        raise DemoBagError("Episode.ee_poses contains NaN or inf")
    _check_times("times", ep.times)
    _check_images(ep)


def _check_shape(name: str, got: int, expected: int) -> None:
    if got != expected:
        raise DemoBagError(f"Episode.{name} has {got} columns, expected {expected}")


def _check_times(name: str, times: np.ndarray) -> None:
    if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        raise DemoBagError(f"Episode.{name} must be finite and strictly increasing")
    if len(times) and np.rint(times[0] * 1e9) < 0:
        raise DemoBagError(f"Episode.{name} must not be negative")


def _check_images(ep: Episode) -> None:
    imgs = ep.images
    if not isinstance(imgs, np.ndarray) or imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[3] != 3:
        got = f"{imgs.dtype} {imgs.shape}" if isinstance(imgs, np.ndarray) else type(imgs).__name__
        raise DemoBagError(f"Episode.images must be an (M, H, W, 3) uint8 array, got {got}")
    times = ep.image_times
    if not isinstance(times, np.ndarray) or times.dtype != np.float64 or times.shape != (len(imgs),):
        raise DemoBagError(f"Episode.image_times must be a float64 array of length {len(imgs)}")
    _check_times("image_times", times)


def _write_bag(path: Path, ep: Episode, meta: dict[str, Any], start_ns: int, compress: bool) -> None:
    """Write all topics in timestamp order (what ``ros2 bag play`` expects within a file)."""
    ts = typestore()
    task_json = json.dumps(meta, sort_keys=True)
    action_topic = ACTION_TOPICS[ep.action_kind]
    topics = [TASK_TOPIC, IMAGE_TOPIC, *STEP_TOPICS, action_topic]
    step_ns = _to_ns(ep.times, start_ns)
    image_ns = _to_ns(ep.image_times, start_ns)
    encoder = _StepEncoder(ts, ep, meta.get("state_names"))
    writer = Writer(path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    if compress:  # chunk-level compression inside the MCAP file, not rosbag2 file/message compression
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        writer.set_custom_data(CUSTOM_DATA_KEY, task_json)
        conns = {
            t: writer.add_connection(t, MSGTYPES[t], typestore=ts, offered_qos_profiles=[DEFAULT_QOS])
            for t in topics
        }

        def put(topic: str, stamp: int, msg: object) -> None:
            writer.write(conns[topic], stamp, ts.serialize_cdr(msg, MSGTYPES[topic]))

        put(TASK_TOPIC, start_ns, ts.types[MSGTYPES[TASK_TOPIC]](data=task_json))
        j = 0
        for i, stamp in enumerate(step_ns):
            while j < len(image_ns) and image_ns[j] <= stamp:
                put(IMAGE_TOPIC, image_ns[j], encoder.image(j, image_ns[j]))
                j += 1
            for topic, msg in encoder.step(i, stamp, action_topic):
                put(topic, stamp, msg)
        for k in range(j, len(image_ns)):
            put(IMAGE_TOPIC, image_ns[k], encoder.image(k, image_ns[k]))


def _to_ns(times: np.ndarray, start_ns: int) -> list[int]:
    return [start_ns + int(x) for x in np.rint(times * 1e9).astype(np.int64)]


@dataclass
class _StepEncoder:
    """Builds the rosbags message objects of one Episode, one control step or frame at a time."""

    ts: Typestore
    ep: Episode
    state_names: Sequence[str] | None

    def _t(self, name: str) -> Any:
        return self.ts.types[name]

    def header(self, stamp: int, frame: str) -> Any:
        time = self._t("builtin_interfaces/msg/Time")(sec=stamp // _NS, nanosec=stamp % _NS)
        return self._t("std_msgs/msg/Header")(stamp=time, frame_id=frame)

    def image(self, j: int, stamp: int) -> Any:
        f = rgb_to_fields(self.ep.images[j], IMAGE_ENCODING)
        return self._t(MSGTYPES[IMAGE_TOPIC])(
            header=self.header(stamp, CAMERA_FRAME),
            height=f.height,
            width=f.width,
            encoding=f.encoding,
            is_bigendian=f.is_bigendian,
            step=f.step,
            data=f.data,
        )

    def step(self, i: int, stamp: int, action_topic: str) -> Iterator[tuple[str, Any]]:
        ep = self.ep
        yield EE_POSE_TOPIC, self.pose(stamp, ep.ee_poses[i])
        yield JOINT_STATES_TOPIC, self.joint_state(stamp, ep.joint_positions[i], ep.joint_velocities[i])
        yield GRIPPER_OPEN_TOPIC, self._t(MSGTYPES[GRIPPER_OPEN_TOPIC])(data=bool(ep.gripper_open[i]))
        yield ROBOT_STATE_TOPIC, self.state(ep.states[i])
        if action_topic == EE_CMD_VEL_TOPIC:
            yield action_topic, self.twist(stamp, ep.actions[i])
        else:
            yield action_topic, self.effort(stamp, ep.actions[i])

    def pose(self, stamp: int, p: np.ndarray) -> Any:
        x, y, z, qw, qx, qy, qz = (float(v) for v in p)
        return self._t(MSGTYPES[EE_POSE_TOPIC])(
            header=self.header(stamp, BASE_FRAME),
            pose=self._t("geometry_msgs/msg/Pose")(
                position=self._t("geometry_msgs/msg/Point")(x=x, y=y, z=z),
                orientation=self._t("geometry_msgs/msg/Quaternion")(x=qx, y=qy, z=qz, w=qw),
            ),
        )

    def twist(self, stamp: int, a: np.ndarray) -> Any:
        vec = self._t("geometry_msgs/msg/Vector3")
        lin, ang = (float(v) for v in a[:3]), (float(v) for v in a[3:6])
        return self._t(MSGTYPES[EE_CMD_VEL_TOPIC])(
            header=self.header(stamp, BASE_FRAME),
            twist=self._t("geometry_msgs/msg/Twist")(linear=vec(*lin), angular=vec(*ang)),
        )

    def joint_state(self, stamp: int, q: np.ndarray, qd: np.ndarray) -> Any:
        return self._t(MSGTYPES[JOINT_STATES_TOPIC])(
            header=self.header(stamp, ""),
            name=list(self.ep.joint_names),
            position=np.ascontiguousarray(q, dtype=np.float64),
            velocity=np.ascontiguousarray(qd, dtype=np.float64),
            effort=np.zeros(0, dtype=np.float64),
        )

    def effort(self, stamp: int, a: np.ndarray) -> Any:
        # Name the efforts after the joints when they line up; otherwise generic names keep the
        # JointState invariant "name and effort have the same length".
        names = (
            self.ep.joint_names
            if len(a) == len(self.ep.joint_names)
            else [f"effort_{k}" for k in range(len(a))]
        )
        return self._t(MSGTYPES[JOINT_EFFORT_CMD_TOPIC])(
            header=self.header(stamp, ""),
            name=list(names),
            position=np.zeros(0, dtype=np.float64),
            velocity=np.zeros(0, dtype=np.float64),
            effort=a.astype(np.float64),
        )

    def state(self, s: np.ndarray) -> Any:
        label = ",".join(self.state_names) if self.state_names is not None else ""
        dim = self._t("std_msgs/msg/MultiArrayDimension")(label=label, size=len(s), stride=len(s))
        return self._t(MSGTYPES[ROBOT_STATE_TOPIC])(
            layout=self._t("std_msgs/msg/MultiArrayLayout")(dim=[dim], data_offset=0),
            data=np.ascontiguousarray(s, dtype=np.float32),
        )


def _fsync_tree(path: Path) -> None:
    """Flush the bag's files to disk before the rename publishes it (a rename can outlive the data)."""
    for f in path.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())


# ----------------------------------------------------------------------------------------------- reading


def read_task_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The task JSON of a bag, from ``metadata.yaml`` alone when it is there (no MCAP parsing).

    Falls back to the ``/mil/task`` message for bags whose metadata lacks the custom_data entry
    (e.g. re-recorded with ``ros2 bag record``) or for a bare ``.mcap`` file.
    """
    path = _check_exists(path)
    if path.is_dir():
        custom = _metadata_yaml(path).get("custom_data") or {}
        if CUSTOM_DATA_KEY in custom:
            return _parse_task_json(path, custom[CUSTOM_DATA_KEY])
    with _open_reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == TASK_TOPIC]
        if not conns:
            raise DemoBagError(f"{path}: missing required topic {TASK_TOPIC}")
        for conn, _, raw in _messages(path, reader, conns):
            return _parse_task_json(path, _deserialize(path, raw, conn.msgtype).data)
    raise DemoBagError(f"{path}: topic {TASK_TOPIC} has no message")


def read_episode(path: str | os.PathLike[str]) -> Episode:
    """Rebuild the Episode a bag was written from (same arrays, dtypes, task and flags).

    Raises DemoBagError when the path is missing, is not a readable bag, lacks a required topic, or
    holds inconsistent data (image sizes/encodings, stream lengths, NaN poses, ...).
    """
    path = _check_exists(path)
    with _open_reader(path) as reader:
        topics = {c.topic: c for c in reader.connections}
        if TASK_TOPIC not in topics:
            raise DemoBagError(f"{path}: missing required topic {TASK_TOPIC}")
        msgs = _read_topics(path, reader, topics)
    if not msgs[TASK_TOPIC]:
        raise DemoBagError(f"{path}: topic {TASK_TOPIC} has no message")
    meta = _parse_task_json(path, msgs[TASK_TOPIC][0][1].data)
    return _assemble(path, meta, msgs)


def _check_exists(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise DemoBagError(f"demo bag {path} does not exist")
    return path


def _metadata_yaml(path: Path) -> dict[str, Any]:
    meta_path = path / "metadata.yaml"
    if not meta_path.is_file():
        raise DemoBagError(f"{path} is not a rosbag2 bag: no metadata.yaml")
    try:
        doc = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
        info = doc["rosbag2_bagfile_information"]
    except (yaml.YAMLError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise DemoBagError(f"{path}: unreadable metadata.yaml ({exc})") from None
    if not isinstance(info, dict):
        raise DemoBagError(f"{path}: unreadable metadata.yaml (no rosbag2_bagfile_information)")
    return info


def _parse_task_json(path: Path, text: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DemoBagError(f"{path}: task metadata is not valid JSON ({exc})") from None
    missing = [
        k for k in ("family", "task_id", "split", "objects", "trial_seed", "action_kind") if k not in meta
    ]
    if missing:
        raise DemoBagError(f"{path}: task metadata lacks {', '.join(missing)}")
    return meta


@contextmanager
def _open_reader(path: Path) -> Iterator[Reader]:
    """Open a bag with rosbags, turning its many failure modes into one DemoBagError."""
    if path.is_dir():
        _metadata_yaml(path)  # a clearer message than rosbags' for a plain directory
    elif path.suffix != ".mcap":
        raise DemoBagError(f"{path} is not a rosbag2 bag (expected a bag directory or an .mcap file)")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:
        raise DemoBagError(f"{path}: not a readable rosbag2 bag ({type(exc).__name__}: {exc})") from None
    try:
        yield reader
    finally:
        reader.close()


def _messages(path: Path, reader: Reader, conns: list[Any]) -> Iterator[tuple[Any, int, bytes]]:
    try:
        yield from reader.messages(connections=conns)
    except DemoBagError:
        raise
    except Exception as exc:
        raise DemoBagError(f"{path}: corrupt bag data ({type(exc).__name__}: {exc})") from None


def _deserialize(path: Path, raw: bytes, msgtype: str) -> Any:
    try:
        return typestore().deserialize_cdr(raw, msgtype)
    except Exception as exc:
        raise DemoBagError(
            f"{path}: cannot decode a {msgtype} message ({type(exc).__name__}: {exc})"
        ) from None


def _read_topics(path: Path, reader: Reader, topics: Mapping[str, Any]) -> dict[str, list[tuple[int, Any]]]:
    """All messages of the layout's topics, as (log time ns, message) in log-time order, by topic."""
    for topic, conn in topics.items():
        if topic in MSGTYPES and conn.msgtype != MSGTYPES[topic]:
            raise DemoBagError(f"{path}: topic {topic} has type {conn.msgtype}, expected {MSGTYPES[topic]}")
    wanted = [c for t, c in topics.items() if t in MSGTYPES]
    out: dict[str, list[tuple[int, Any]]] = {t: [] for t in topics if t in MSGTYPES}
    for conn, stamp, raw in _messages(path, reader, wanted):
        out[conn.topic].append((stamp, _deserialize(path, raw, conn.msgtype)))
    for msgs in out.values():
        msgs.sort(key=lambda m: m[0])
    return out


def _assemble(path: Path, meta: dict[str, Any], msgs: Mapping[str, list[tuple[int, Any]]]) -> Episode:
    kind = meta["action_kind"]
    if kind not in ACTION_TOPICS:
        raise DemoBagError(f"{path}: unknown action_kind {kind!r} in task metadata")
    for topic in (*STEP_TOPICS, ACTION_TOPICS[kind], IMAGE_TOPIC):
        if topic not in msgs:
            raise DemoBagError(f"{path}: missing required topic {topic}")
    rate = float(meta["control_rate_hz"])
    start_ns = int(meta.get("start_ns", msgs[TASK_TOPIC][0][0]))
    stamps = _step_stamps(path, meta, msgs, kind)
    poses = np.array([_pose_row(m) for _, m in msgs[EE_POSE_TOPIC]], dtype=np.float64).reshape(-1, 7)
    if not np.isfinite(poses).all():
        raise DemoBagError(f"{path}: {EE_POSE_TOPIC} contains NaN or inf")
    joint_names, qpos, qvel = _joint_states(path, msgs[JOINT_STATES_TOPIC])
    images, image_stamps = _images(path, meta, msgs[IMAGE_TOPIC])
    return Episode(
        task=Task(meta["family"], meta["task_id"], meta["split"], dict(meta["objects"])),
        trial_seed=int(meta["trial_seed"]),
        control_rate_hz=rate,
        action_kind=kind,
        times=_to_seconds(stamps - start_ns, rate),
        states=_states(path, meta, msgs[ROBOT_STATE_TOPIC]),
        ee_poses=poses,
        joint_names=tuple(meta.get("joint_names", joint_names)),
        joint_positions=qpos,
        joint_velocities=qvel,
        gripper_open=np.array([m.data for _, m in msgs[GRIPPER_OPEN_TOPIC]], dtype=bool),
        actions=_actions(path, meta, msgs[ACTION_TOPICS[kind]], kind),
        image_times=_to_seconds(image_stamps - start_ns, rate),
        images=images,
        success=bool(meta.get("success", False)),
        metadata=dict(meta.get("metadata") or {}),
    )


def _step_stamps(
    path: Path, meta: Mapping[str, Any], msgs: Mapping[str, list[tuple[int, Any]]], kind: str
) -> np.ndarray:
    """The control-step times, checking that every per-step stream has one message per step."""
    stamps = np.array([_stamp_ns(m.header) for _, m in msgs[EE_POSE_TOPIC]], dtype=np.int64)
    expected = meta.get("n_steps", len(stamps))
    for topic in (*STEP_TOPICS, ACTION_TOPICS[kind]):
        log_times = np.array([t for t, _ in msgs[topic]], dtype=np.int64)
        if len(log_times) != expected:
            raise DemoBagError(
                f"{path}: topic {topic} has {len(log_times)} messages, expected {expected} steps"
            )
        if not np.array_equal(log_times, stamps):
            raise DemoBagError(f"{path}: topic {topic} is not stamped at the {EE_POSE_TOPIC} step times")
    return stamps


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * _NS + int(header.stamp.nanosec)


def _to_seconds(offsets_ns: np.ndarray, rate: float) -> np.ndarray:
    """ns offsets -> float seconds, exactly ``k * (1 / rate)`` where that is what was written."""
    offsets_ns = np.asarray(offsets_ns, dtype=np.int64)
    k = np.rint(offsets_ns * (rate / 1e9))
    snapped = k * (1.0 / rate)
    on_grid = np.rint(snapped * 1e9).astype(np.int64) == offsets_ns
    return np.where(on_grid, snapped, offsets_ns / 1e9).astype(np.float64)


def _pose_row(msg: Any) -> tuple[float, ...]:
    p, q = msg.pose.position, msg.pose.orientation
    return (p.x, p.y, p.z, q.w, q.x, q.y, q.z)


def _joint_states(path: Path, msgs: list[tuple[int, Any]]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    names = tuple(msgs[0][1].name) if msgs else ()
    for _, m in msgs:
        if tuple(m.name) != names or len(m.position) != len(names) or len(m.velocity) != len(names):
            raise DemoBagError(f"{path}: {JOINT_STATES_TOPIC} messages disagree on joints or sizes")
    qpos = np.array([m.position for _, m in msgs], dtype=np.float64).reshape(len(msgs), len(names))
    qvel = np.array([m.velocity for _, m in msgs], dtype=np.float64).reshape(len(msgs), len(names))
    return names, qpos, qvel


def _states(path: Path, meta: Mapping[str, Any], msgs: list[tuple[int, Any]]) -> np.ndarray:
    dim = int(meta.get("state_dim", len(msgs[0][1].data) if msgs else 0))
    if any(len(m.data) != dim for _, m in msgs):
        raise DemoBagError(f"{path}: {ROBOT_STATE_TOPIC} messages are not all of length {dim}")
    return np.array([m.data for _, m in msgs], dtype=np.float32).reshape(len(msgs), dim)


def _actions(path: Path, meta: Mapping[str, Any], msgs: list[tuple[int, Any]], kind: str) -> np.ndarray:
    if kind == "ee_twist":
        rows = [
            (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z)
            for t in (m.twist for _, m in msgs)
        ]
        return np.array(rows, dtype=np.float32).reshape(len(msgs), 6)
    dim = int(meta.get("action_dim", len(msgs[0][1].effort) if msgs else 0))
    if any(len(m.effort) != dim for _, m in msgs):
        raise DemoBagError(f"{path}: {JOINT_EFFORT_CMD_TOPIC} efforts are not all of length {dim}")
    return np.array([m.effort for _, m in msgs], dtype=np.float32).reshape(len(msgs), dim)


def _images(
    path: Path, meta: Mapping[str, Any], msgs: list[tuple[int, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the camera frames, all of one size (the size recorded in the task JSON, if any)."""
    width, height = meta.get("camera_width"), meta.get("camera_height")
    if msgs and width is None:
        width, height = msgs[0][1].width, msgs[0][1].height
    if "n_images" in meta and len(msgs) != meta["n_images"]:
        raise DemoBagError(
            f"{path}: topic {IMAGE_TOPIC} has {len(msgs)} messages, expected {meta['n_images']}"
        )
    frames = []
    for i, (_, m) in enumerate(msgs):
        if (m.width, m.height) != (width, height):
            raise DemoBagError(f"{path}: image {i} is {m.width}x{m.height}, expected {width}x{height}")
        try:
            frames.append(msg_to_rgb(m))
        except ImageMsgError as exc:
            raise DemoBagError(f"{path}: image {i} on {IMAGE_TOPIC}: {exc}") from None
    shape = (len(frames), int(height or 0), int(width or 0), 3)
    images = np.stack(frames) if frames else np.zeros(shape, dtype=np.uint8)
    stamps = np.array([_stamp_ns(m.header) for _, m in msgs], dtype=np.int64)
    return images, stamps
