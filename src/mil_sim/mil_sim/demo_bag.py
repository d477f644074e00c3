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
``/mil/label/<action>``  as the action topic                 ``Episode.labels``, only in perturbed
                                                             (DART-style) demos: the demonstrator's
                                                             chosen action; the action topic holds
                                                             the perturbed command that was applied
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
# Outside the robot's namespace on purpose: ``ros2 bag play`` must not drive the arm with labels.
LABEL_TOPICS: Mapping[str, str] = {kind: f"/mil/label{topic}" for kind, topic in ACTION_TOPICS.items()}
MSGTYPES: Mapping[str, str] = {
    TASK_TOPIC: "std_msgs/msg/String",
    IMAGE_TOPIC: "sensor_msgs/msg/Image",
    EE_POSE_TOPIC: "geometry_msgs/msg/PoseStamped",
    EE_CMD_VEL_TOPIC: "geometry_msgs/msg/TwistStamped",
    JOINT_EFFORT_CMD_TOPIC: "sensor_msgs/msg/JointState",
    JOINT_STATES_TOPIC: "sensor_msgs/msg/JointState",
    GRIPPER_OPEN_TOPIC: "std_msgs/msg/Bool",
    ROBOT_STATE_TOPIC: "std_msgs/msg/Float32MultiArray",
    LABEL_TOPICS["ee_twist"]: "geometry_msgs/msg/TwistStamped",
    LABEL_TOPICS["joint_effort"]: "sensor_msgs/msg/JointState",
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


def episode_metadata(episode: Episode, state_names: Sequence[str] | None, start_ns: int, source: str) -> dict[str, Any]:
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
        has_labels=episode.labels is not None,
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
        raise DemoBagError(f"unknown action_kind {ep.action_kind!r}; expected one of {', '.join(ACTION_TOPICS)}")
    shapes = {
        "states": (ep.states, np.float32, 2),
        "ee_poses": (ep.ee_poses, np.float64, 2),
        "joint_positions": (ep.joint_positions, np.float64, 2),
        "joint_velocities": (ep.joint_velocities, np.float64, 2),
        "gripper_open": (ep.gripper_open, np.bool_, 1),
        "actions": (ep.actions, np.float32, 2),
        "times": (ep.times, np.float64, 1),
    }
    if ep.labels is not None:
        shapes["labels"] = (ep.labels, np.float32, 2)
    for name, (arr, dtype, ndim) in shapes.items():
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != ndim or len(arr) != n:
            got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise DemoBagError(f"Episode.{name} must be a {ndim}-D {np.dtype(dtype)} array of length {n}, got {got}")
    _check_shape("ee_poses", ep.ee_poses.shape[1], 7)
    if ep.labels is not None:
        _check_shape("labels (vs actions)", ep.labels.shape[1], ep.actions.shape[1])
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
    if ep.labels is not None:
        topics.append(LABEL_TOPICS[ep.action_kind])
    step_ns = _to_ns(ep.times, start_ns)
    image_ns = _to_ns(ep.image_times, start_ns)
    encoder = _StepEncoder(ts, ep, meta.get("state_names"))
    writer = Writer(path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    if compress:  # chunk-level compression inside the MCAP file, not rosbag2 file/message compression
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        writer.set_custom_data(CUSTOM_DATA_KEY, task_json)
        conns = {
            t: writer.add_connection(t, MSGTYPES[t], typestore=ts, offered_qos_profiles=[DEFAULT_QOS]) for t in topics
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
        yield action_topic, self.action(stamp, ep.actions[i])
        if ep.labels is not None:
            yield LABEL_TOPICS[ep.action_kind], self.action(stamp, ep.labels[i])

    def action(self, stamp: int, a: np.ndarray) -> Any:
        """An action row as the message of the episode's action kind (twist or joint efforts)."""
        return self.twist(stamp, a) if self.ep.action_kind == "ee_twist" else self.effort(stamp, a)

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
        names = self.ep.joint_names if len(a) == len(self.ep.joint_names) else [f"effort_{k}" for k in range(len(a))]
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
    holds inconsistent data (image sizes/encodings, stream lengths, NaN poses, ...). A raw teleop
    recording (task JSON ``"recording": "raw"``) is time-aligned by :func:`read_raw_episode`.
    """
    path = _check_exists(path)
    if path.is_dir() and is_raw_recording(path):
        return read_raw_episode(path)
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
    missing = [k for k in ("family", "task_id", "split", "objects", "trial_seed", "action_kind") if k not in meta]
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
        raise DemoBagError(f"{path}: cannot decode a {msgtype} message ({type(exc).__name__}: {exc})") from None


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
    for topic in (*STEP_TOPICS, ACTION_TOPICS[kind], IMAGE_TOPIC, *_label_topic(meta)):
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
        labels=next((_actions(path, meta, msgs[t], kind) for t in _label_topic(meta)), None),
    )


def _label_topic(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The label topic of a perturbed demo, as a 0- or 1-tuple (the task JSON says whether there is one)."""
    return (LABEL_TOPICS[meta["action_kind"]],) if meta.get("has_labels") else ()


def _step_stamps(
    path: Path, meta: Mapping[str, Any], msgs: Mapping[str, list[tuple[int, Any]]], kind: str
) -> np.ndarray:
    """The control-step times, checking that every per-step stream has one message per step."""
    stamps = np.array([_stamp_ns(m.header) for _, m in msgs[EE_POSE_TOPIC]], dtype=np.int64)
    expected = meta.get("n_steps", len(stamps))
    for topic in (*STEP_TOPICS, ACTION_TOPICS[kind], *_label_topic(meta)):
        log_times = np.array([t for t, _ in msgs[topic]], dtype=np.int64)
        if len(log_times) != expected:
            raise DemoBagError(f"{path}: topic {topic} has {len(log_times)} messages, expected {expected} steps")
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
        raise DemoBagError(f"{path}: joint effort commands are not all of length {dim}")
    return np.array([m.effort for _, m in msgs], dtype=np.float32).reshape(len(msgs), dim)


def _images(path: Path, meta: Mapping[str, Any], msgs: list[tuple[int, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Decode the camera frames, all of one size (the size recorded in the task JSON, if any)."""
    width, height = meta.get("camera_width"), meta.get("camera_height")
    if msgs and width is None:
        width, height = msgs[0][1].width, msgs[0][1].height
    if "n_images" in meta and len(msgs) != meta["n_images"]:
        raise DemoBagError(f"{path}: topic {IMAGE_TOPIC} has {len(msgs)} messages, expected {meta['n_images']}")
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


# -------------------------------------------------------------------------------------- raw recordings
#
# The VR-teleop recorder (``mil_demo_recorder``) writes the same topic names and types, but keeps the
# streams as they arrived: every topic at its own rate, each message logged at its receipt time with
# the header stamp its sender set, plus ``/camera/image_raw/compressed`` and ``/joy`` where recorded.
# Its task JSON says ``"recording": "raw"`` and carries a ``complete`` flag that is false from the
# moment the demo starts until the recorder finalises it, so a recorder killed mid-demo leaves a bag
# that says so. :func:`read_episode` hands such bags to :func:`read_raw_episode`, which puts the
# streams onto one time grid, so the dataset builder, evaluation and the policy runner read sim and
# teleop demos alike.
#
# Reading is always a forward scan with the ``mcap`` library's non-seeking StreamReader rather than
# rosbags' seeking reader: it needs neither the summary nor the footer, which a killed writer never
# wrote, and it ignores a stale ``metadata.yaml`` (message counts of zero written at demo start). A
# chunk is used only when it was written out completely (its records parse and its compressed data
# decompresses to the declared size), so the truncated tail of a killed recording is dropped whole.

RAW_RECORDING_KEY = "recording"
RAW_RECORDING = "raw"
COMPRESSED_IMAGE_TOPIC = "/camera/image_raw/compressed"
JOY_TOPIC = "/joy"
RAW_MSGTYPES: Mapping[str, str] = {
    TASK_TOPIC: "std_msgs/msg/String",
    IMAGE_TOPIC: "sensor_msgs/msg/Image",
    COMPRESSED_IMAGE_TOPIC: "sensor_msgs/msg/CompressedImage",
    EE_POSE_TOPIC: "geometry_msgs/msg/PoseStamped",
    EE_CMD_VEL_TOPIC: "geometry_msgs/msg/TwistStamped",
    JOINT_STATES_TOPIC: "sensor_msgs/msg/JointState",
    GRIPPER_OPEN_TOPIC: "std_msgs/msg/Bool",
    JOY_TOPIC: "sensor_msgs/msg/Joy",
}
GRID_CONTROL = "control"  # fixed grid at the task JSON's control_rate_hz
GRID_COMMAND = "command"  # one step per received command message
RAW_GRIDS = (GRID_CONTROL, GRID_COMMAND)
# The bridge stops the arm when commands stop for its watchdog period (0.2 s by default), so a step
# whose newest command is older than this executed a zero twist, and that is the action recorded.
DEFAULT_COMMAND_TIMEOUT_S = 0.2
# A state or camera stream silent for longer than this makes the demo unusable (stale inputs).
DEFAULT_MAX_GAP_S = 0.5
# Header stamps are used for timing when they are set and agree with the receipt times to within this;
# otherwise (zero stamps, a sender on sim time or an unsynchronised clock) the receipt times are used.
MAX_CLOCK_SKEW_S = 1.0


@dataclass
class RawMessages:
    """The decoded messages of a raw recording, by layout topic, as (receipt ns, message), file order."""

    meta: dict[str, Any]  # the task JSON (metadata.yaml custom_data, else the /mil/task message)
    messages: dict[str, list[tuple[int, Any]]]
    truncated: bool  # the MCAP file ends without a footer (writer killed) or with a damaged record


def is_raw_recording(path: str | os.PathLike[str]) -> bool:
    """True for a bag whose task JSON says ``"recording": "raw"`` (False for anything else, never raises)."""
    try:
        return _raw_meta_from_yaml(Path(path)).get(RAW_RECORDING_KEY) == RAW_RECORDING
    except (DemoBagError, OSError):
        return False


def _raw_meta_from_yaml(path: Path) -> dict[str, Any]:
    """The task JSON of a bag directory's metadata.yaml, or of a bare .mcap's /mil/task message."""
    if path.is_dir():
        custom = _metadata_yaml(path).get("custom_data") or {}
        text = custom.get(CUSTOM_DATA_KEY)
        if not isinstance(text, str):
            raise DemoBagError(f"{path}: no {CUSTOM_DATA_KEY} in metadata.yaml custom_data")
        return _parse_task_json(path, text)
    if path.suffix == ".mcap" and path.is_file():
        for topic, _, msg in _scan_mcap(path, topics={TASK_TOPIC})[0]:
            if topic == TASK_TOPIC:
                return _parse_task_json(path, msg.data)
    raise DemoBagError(f"{path}: no task metadata")


def raw_mcap_path(path: str | os.PathLike[str]) -> Path:
    """The MCAP file of a bag: the one metadata.yaml names, else the only ``*.mcap`` in the directory."""
    path = _check_exists(path)
    if path.is_file():
        return path
    try:
        names = _metadata_yaml(path).get("relative_file_paths") or []
    except DemoBagError:
        names = []
    for name in names:
        candidate = path / Path(str(name)).name
        if candidate.is_file():
            return candidate
    found = sorted(p for p in path.glob("*.mcap") if not p.name.startswith("."))
    if len(found) != 1:
        raise DemoBagError(f"{path}: expected one .mcap file in the bag, found {len(found)}")
    return found[0]


def read_raw_messages(path: str | os.PathLike[str], topics: Sequence[str] | None = None) -> RawMessages:
    """Every message of a raw recording (only ``topics`` if given), readable even without a footer."""
    path = _check_exists(path)
    meta = _raw_meta_from_yaml(path)
    wanted = set(topics) if topics is not None else None
    records, truncated = _scan_mcap(raw_mcap_path(path), topics=wanted)
    out: dict[str, list[tuple[int, Any]]] = {}
    for topic, stamp, msg in records:
        out.setdefault(topic, []).append((stamp, msg))
    return RawMessages(meta=meta, messages=out, truncated=truncated)


def scan_mcap(path: str | os.PathLike[str]) -> tuple[list[tuple[str, str, int, bytes]], bool]:
    """(topic, msgtype, log time ns, CDR bytes) of every message in the complete chunks of an MCAP file,
    and whether the file was cut short (no footer). For copying a recording without decoding it."""
    return _scan_mcap(_check_exists(path), decode=False)


def _scan_mcap(path: Path, topics: set[str] | None = None, *, decode: bool = True) -> tuple[list[Any], bool]:
    """(topic, log time ns, decoded message) of every complete chunk, and whether the file was cut short;
    with ``decode=False`` (topic, msgtype, log time ns, bytes) instead.

    Stops at the first record that does not parse: everything after a damaged record is unreliable.
    """
    from mcap.records import Channel, Chunk, Footer, Message, Schema
    from mcap.stream_reader import StreamReader

    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    out: list[tuple[str, int, Any]] = []
    footer = False
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise DemoBagError(f"{path}: cannot open ({exc})") from None
    with fh:
        records = StreamReader(fh, emit_chunks=True, record_size_limit=1 << 31).records
        while True:
            try:
                record = next(records)
                inner = _chunk_records(record) if isinstance(record, Chunk) else [record]
            except StopIteration:
                break
            except Exception as exc:  # truncated or damaged record: keep what came before it
                if not out and not channels:
                    raise DemoBagError(f"{path}: not a readable MCAP file ({type(exc).__name__}: {exc})") from None
                break
            for rec in inner:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ""))
                elif isinstance(rec, Message) and rec.channel_id in channels:
                    topic, msgtype = channels[rec.channel_id]
                    if topics is not None and topic not in topics:
                        continue
                    if decode:
                        out.append((topic, int(rec.log_time), _deserialize_received(path, rec.data, msgtype)))
                    else:
                        out.append((topic, msgtype, int(rec.log_time), bytes(rec.data)))
                elif isinstance(rec, Footer):
                    footer = True
    return out, not footer


def _deserialize_received(path: Path, raw: bytes, msgtype: str) -> Any:
    """Decode CDR bytes as an rmw serialized them, which may end in up to 7 padding bytes.

    rosbags accepts at most 3 trailing bytes, but Fast DDS (the Kilted default rmw) pads some messages
    (e.g. a JointState with an empty ``effort``) to a multiple of 8, and the padding is not necessarily
    zero: decode those with the message's own deserializer and accept up to 7 bytes after it.
    """
    try:
        return typestore().deserialize_cdr(raw, msgtype)
    except Exception as exc:
        ts = typestore()
        try:
            msgdef = ts.get_msgdef(msgtype)
            func = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
            message, pos = func(memoryview(raw)[4:], 0, msgdef.cls, ts)
        except Exception:
            message, pos = None, -1
        if message is None or not 0 <= len(raw) - 4 - pos <= 7:
            raise DemoBagError(f"{path}: cannot decode a {msgtype} message ({type(exc).__name__}: {exc})") from None
        return message


def _chunk_records(chunk: Any) -> list[Any]:
    """The records of a chunk, only if it is whole (size and decompression check out), else raise."""
    from mcap.stream_reader import breakup_chunk

    if chunk.compression == "" and len(chunk.data) != chunk.uncompressed_size:
        raise DemoBagError(f"chunk holds {len(chunk.data)} bytes, expected {chunk.uncompressed_size}")
    return breakup_chunk(chunk)


def read_raw_episode(
    path: str | os.PathLike[str],
    *,
    grid: str | None = None,
    control_rate_hz: float | None = None,
    allow_incomplete: bool = False,
    max_gap_s: float | None = None,
) -> Episode:
    """A raw (asynchronous) recording as an Episode on one time grid, latest sample before each step.

    ``grid`` ``"control"`` (default, or the task JSON's ``grid``) samples every stream at
    ``control_rate_hz`` (default: the task JSON's, i.e. the family's control rate, so a teleop demo
    looks like a sim demo of the same length); ``"command"`` takes one step per received command. The
    grid starts when every state and camera stream has delivered (the latest first message) and ends
    with the state streams (the earliest last pose / joint state). At each step every stream
    contributes its newest message at or before the step; the action is the newest command unless it
    is older than the bridge watchdog (then zero: the arm stood still). A required stream silent for
    longer than ``max_gap_s`` (default: the task JSON's) at any step makes the demo unusable
    (DemoBagError). Robot states follow the task JSON's ``state_names`` (``q_<joint>``, ``ee_x/y/z``,
    ``gripper_open``).

    A recording that never finished (recorder killed or interrupted) raises DemoBagError unless
    ``allow_incomplete``; it then comes back with ``success=False`` and ``metadata["complete"]`` false.
    """
    path = _check_exists(path)
    raw = read_raw_messages(path)
    meta = raw.meta
    complete = bool(meta.get("complete", False)) and not raw.truncated
    if not complete and not allow_incomplete:
        why = "the MCAP file has no footer" if raw.truncated else f"status {meta.get('status', 'unknown')!r}"
        raise DemoBagError(
            f"{path}: incomplete recording ({why}): the recorder stopped before the demo was finished; "
            "read_raw_episode(..., allow_incomplete=True) reads the part that was written"
        )
    if meta["action_kind"] != "ee_twist":
        raise DemoBagError(f"{path}: raw recordings hold ee_twist actions, not {meta['action_kind']!r}")
    grid = grid or str(meta.get("grid", GRID_CONTROL))
    if grid not in RAW_GRIDS:
        raise DemoBagError(f"unknown grid {grid!r}; expected one of {', '.join(RAW_GRIDS)}")
    streams = _raw_streams(path, raw.messages)
    rate = float(control_rate_hz or meta.get("control_rate_hz") or 0.0)
    grid_ns, rate = _raw_grid(path, streams, grid, rate)
    gap_s = max_gap_s if max_gap_s is not None else meta.get("max_gap_s", DEFAULT_MAX_GAP_S)
    gap_ns = round(float(gap_s) * 1e9)
    state_topics = (EE_POSE_TOPIC, JOINT_STATES_TOPIC)
    at = {t: _latest_before(path, t, streams[t][0], grid_ns, gap_ns) for t in state_topics}
    poses = np.array([_pose_row(streams[EE_POSE_TOPIC][1][i]) for i in at[EE_POSE_TOPIC]], dtype=np.float64)
    if not np.isfinite(poses).all():
        raise DemoBagError(f"{path}: {EE_POSE_TOPIC} contains NaN or inf")
    joint_msgs = [streams[JOINT_STATES_TOPIC][1][i] for i in at[JOINT_STATES_TOPIC]]
    joint_names, qpos, qvel = _raw_joints(path, joint_msgs)
    initial_open = bool(meta.get("gripper_open_initial", False))
    gripper = _raw_gripper(streams.get(GRIPPER_OPEN_TOPIC), grid_ns, initial_open)
    timeout_ns = round(float(meta.get("command_timeout_s", DEFAULT_COMMAND_TIMEOUT_S)) * 1e9)
    actions = _raw_actions(streams[EE_CMD_VEL_TOPIC], grid_ns, timeout_ns)
    image_topic = IMAGE_TOPIC if IMAGE_TOPIC in streams else COMPRESSED_IMAGE_TOPIC
    _latest_before(path, image_topic, streams[image_topic][0], grid_ns, gap_ns)  # gap check only
    images, image_ns = _raw_images(path, image_topic, streams[image_topic], grid_ns)
    state_names = meta.get("state_names") or _family_state_names(meta["family"])
    states = _raw_states(path, state_names, joint_names, qpos, poses, gripper)
    start = int(grid_ns[0])
    info = {
        k: meta[k] for k in ("recording", "status", "source", "operator", "notes", "stats", "start_ns") if k in meta
    }
    info.update(complete=complete, truncated=raw.truncated, grid=grid, **dict(meta.get("metadata") or {}))
    return Episode(
        task=Task(meta["family"], meta["task_id"], meta["split"], dict(meta["objects"])),
        trial_seed=int(meta["trial_seed"]),
        control_rate_hz=rate,
        action_kind="ee_twist",
        times=_to_seconds(grid_ns - start, rate),
        states=states,
        ee_poses=poses,
        joint_names=joint_names,
        joint_positions=qpos,
        joint_velocities=qvel,
        gripper_open=gripper,
        actions=actions,
        image_times=_to_seconds(np.maximum(image_ns - start, 0), rate),
        images=images,
        success=bool(meta.get("success", True)) and complete,
        metadata=info,
    )


def _raw_streams(path: Path, messages: Mapping[str, list[tuple[int, Any]]]) -> dict[str, tuple[np.ndarray, list[Any]]]:
    """Per topic: (times ns, messages) sorted by time; header stamps where usable, else receipt times."""
    required = (EE_POSE_TOPIC, JOINT_STATES_TOPIC, EE_CMD_VEL_TOPIC)
    for topic in required:
        if not messages.get(topic):
            raise DemoBagError(f"{path}: missing required topic {topic} (no messages recorded)")
    if not messages.get(IMAGE_TOPIC) and not messages.get(COMPRESSED_IMAGE_TOPIC):
        raise DemoBagError(f"{path}: missing required topic {IMAGE_TOPIC} (or {COMPRESSED_IMAGE_TOPIC})")
    out = {}
    for topic, msgs in messages.items():
        if not msgs or topic in (TASK_TOPIC, JOY_TOPIC):
            continue
        log = np.array([t for t, _ in msgs], dtype=np.int64)
        times = log
        if hasattr(msgs[0][1], "header"):
            stamps = np.array([_stamp_ns(m.header) for _, m in msgs], dtype=np.int64)
            if (stamps > 0).all() and np.median(np.abs(log - stamps)) < MAX_CLOCK_SKEW_S * 1e9:
                times = stamps
        order = np.argsort(times, kind="stable")
        out[topic] = (times[order], [msgs[i][1] for i in order])
    return out


def _raw_grid(
    path: Path, streams: Mapping[str, tuple[np.ndarray, list[Any]]], grid: str, rate: float
) -> tuple[np.ndarray, float]:
    """Step times (ns) from when every state and camera stream has data to the end of the state streams
    (the camera, slower, is only required to be fresh there: see the gap check), and the step rate."""
    alive = [t for t in (EE_POSE_TOPIC, JOINT_STATES_TOPIC, IMAGE_TOPIC, COMPRESSED_IMAGE_TOPIC) if t in streams]
    begin = max(int(streams[t][0][0]) for t in alive)
    end = min(int(streams[t][0][-1]) for t in (EE_POSE_TOPIC, JOINT_STATES_TOPIC))
    if end <= begin:
        raise DemoBagError(f"{path}: the recorded streams do not overlap in time ({', '.join(alive)})")
    if grid == GRID_COMMAND:
        cmd = streams[EE_CMD_VEL_TOPIC][0]
        steps = cmd[(cmd >= begin) & (cmd <= end)]
        steps = np.unique(steps)
        if len(steps) < 2:
            raise DemoBagError(f"{path}: fewer than 2 commands while all streams were alive")
        return steps, 1e9 / float(np.median(np.diff(steps)))
    if not rate > 0:
        raise DemoBagError(f"{path}: no control_rate_hz for the control grid")
    n = int((end - begin) * rate / 1e9 + 1e-9) + 1
    return begin + np.rint(np.arange(n) * (1e9 / rate)).astype(np.int64), rate


def _latest_before(path: Path, topic: str, times: np.ndarray, grid_ns: np.ndarray, max_gap_ns: int) -> np.ndarray:
    """Index of the newest message at or before each step; DemoBagError where the stream stalled."""
    idx = np.searchsorted(times, grid_ns, side="right") - 1
    if (idx < 0).any():
        raise DemoBagError(f"{path}: {topic} has no message before the first step")
    age = grid_ns - times[idx]
    worst = int(np.argmax(age))
    if age[worst] > max_gap_ns:
        at = (grid_ns[worst] - grid_ns[0]) / 1e9
        raise DemoBagError(
            f"{path}: {topic} was silent for {age[worst] / 1e9:.2f} s at t={at:.2f} s "
            f"(more than the {max_gap_ns / 1e9:g} s allowed): the stream stalled or was dropped"
        )
    return idx


def _raw_joints(path: Path, msgs: list[Any]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Joint positions/velocities per step, by the names of the first message (any order after that)."""
    names = tuple(msgs[0].name)
    qpos = np.zeros((len(msgs), len(names)))
    qvel = np.zeros((len(msgs), len(names)))
    for i, m in enumerate(msgs):
        index = {n: k for k, n in enumerate(m.name)}
        if any(n not in index for n in names) or len(m.position) != len(m.name):
            raise DemoBagError(f"{path}: {JOINT_STATES_TOPIC} messages disagree on joints or sizes")
        cols = [index[n] for n in names]
        qpos[i] = np.asarray(m.position, dtype=np.float64)[cols]
        if len(m.velocity) == len(m.name):
            qvel[i] = np.asarray(m.velocity, dtype=np.float64)[cols]
    return names, qpos, qvel


def _raw_gripper(stream: tuple[np.ndarray, list[Any]] | None, grid_ns: np.ndarray, initial: bool) -> np.ndarray:
    if stream is None:
        return np.full(len(grid_ns), initial, dtype=bool)
    times, msgs = stream
    idx = np.searchsorted(times, grid_ns, side="right") - 1
    values = np.array([bool(m.data) for m in msgs], dtype=bool)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], initial)


def _raw_actions(stream: tuple[np.ndarray, list[Any]], grid_ns: np.ndarray, timeout_ns: int) -> np.ndarray:
    times, msgs = stream
    twists = [m.twist for m in msgs]
    rows = np.array(
        [(t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z) for t in twists],
        dtype=np.float32,
    ).reshape(len(msgs), 6)
    idx = np.searchsorted(times, grid_ns, side="right") - 1
    live = (idx >= 0) & (grid_ns - times[np.maximum(idx, 0)] <= timeout_ns)
    return np.where(live[:, None], rows[np.maximum(idx, 0)], np.float32(0.0)).astype(np.float32)


def _raw_images(
    path: Path, topic: str, stream: tuple[np.ndarray, list[Any]], grid_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The frames a step can see: the newest one at the first step, then every frame up to the last step."""
    times, msgs = stream
    first = max(int(np.searchsorted(times, grid_ns[0], side="right")) - 1, 0)
    last = int(np.searchsorted(times, grid_ns[-1], side="right"))
    frames = []
    for i in range(first, last):
        try:
            frame = msg_to_rgb(msgs[i]) if topic == IMAGE_TOPIC else _decode_compressed(msgs[i])
        except ImageMsgError as exc:
            raise DemoBagError(f"{path}: image {i} on {topic}: {exc}") from None
        if frames and frame.shape != frames[0].shape:
            raise DemoBagError(
                f"{path}: image {i} is {frame.shape[1]}x{frame.shape[0]}, expected "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}"
            )
        frames.append(frame)
    return np.stack(frames), times[first:last]


def _decode_compressed(msg: Any) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg/png, as image_transport writes it) -> RGB."""
    import cv2

    data = msg.data if isinstance(msg.data, np.ndarray) else np.frombuffer(memoryview(msg.data), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageMsgError(f"cannot decode compressed image (format {msg.format!r})")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _family_state_names(family: str) -> tuple[str, ...]:
    from mil_sim.families import get_family

    return tuple(get_family(family).state_names)


def _raw_states(
    path: Path,
    names: Sequence[str],
    joints: Sequence[str],
    qpos: np.ndarray,
    poses: np.ndarray,
    gripper: np.ndarray,
) -> np.ndarray:
    """Robot states from their names: ``q_<joint>`` (joint states), ``ee_x/y/z`` (pose), ``gripper_open``."""
    cols = []
    for name in names:
        if name.startswith("q_") and name[2:] in joints:
            cols.append(qpos[:, list(joints).index(name[2:])])
        elif name in ("ee_x", "ee_y", "ee_z"):
            cols.append(poses[:, "xyz".index(name[-1])])
        elif name == "gripper_open":
            cols.append(gripper.astype(np.float64))
        else:
            raise DemoBagError(
                f"{path}: state {name!r} cannot be built from the recorded streams (joints {list(joints)})"
            )
    return np.stack(cols, axis=1).astype(np.float32)
