"""ROS 2 node ``mil_demo_recorder``: VR-teleop streams -> one rosbag2 MCAP demo bag per demonstration.

    record --params-file config/recorder.yaml                       (pip mode)
    ros2 run mil_demo_recorder record --ros-args --params-file config/recorder.yaml

=======================================  ==============================  =====================================
``/head_mount_kinect/rgb/image_raw``     sensor_msgs/Image (sensor QoS)  -> ``/camera/image_raw``
``compressed_image_topic`` (off: '')     sensor_msgs/CompressedImage     -> ``/camera/image_raw/compressed``
``/r_gripper_tool_frame/pose``           geometry_msgs/PoseStamped       -> ``/ee_pose``
``/ee_cmd_vel``                          geometry_msgs/TwistStamped      -> ``/ee_cmd_vel`` (the action)
``/joint_states``                        sensor_msgs/JointState          -> ``/joint_states``
``/gripper/open``                        std_msgs/Bool                   -> ``/gripper/open``
``/joy``                                 sensor_msgs/Joy                 -> ``/joy``; start/stop/discard
``/mil/task``                            std_msgs/String (latched JSON)  task of the next demo (or params)
``~/start`` ``~/stop`` ``~/discard``     std_srvs/Trigger                the same as the buttons, for scripts
``~/status``                             std_msgs/String (JSON, latched) state, publishers, counts, last demo
=======================================  ==============================  =====================================

Every message is written as received (serialized bytes, receipt time as log time, header stamps
untouched) under the layout topic of :mod:`mil_sim.demo_bag`. Data subscriptions run in a reentrant
callback group and only enqueue; the buttons and services run in the default group, so a start/stop
is never stuck behind camera frames. A stop first lets the data callbacks take what arrived before it
(:mod:`mil_demo_recorder.stop_drain`, at most a second), so a lagging executor does not cut a demo's
end. Stopping logs the demo's statistics (rates, drops, out-of-order stamps, image-pose sync) and warns
about missing or slow streams; Ctrl-C mid-demo finalises the bag as ``interrupted``; a SIGKILL leaves a
bag flagged incomplete that the next start recovers.

``~/status`` names, per input topic, how many publishers the recorder's subscription is matched with
(republished whenever that changes, idle or not), so an operator -- or a test -- sees every stream
connected from the recorder's side before pressing start; a DDS match is not symmetric, and a publisher
that already sees the recorder can still have its first messages dropped by a reader that does not yet
see it.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.subscription import Subscription
from sensor_msgs.msg import Joy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from mil_demo_recorder import dataset_index
from mil_demo_recorder.bag_writer import BagWriteError
from mil_demo_recorder.joy_buttons import DISCARD, START, STOP, JoyButtons
from mil_demo_recorder.recording import (
    STATUS_COMPLETE,
    STATUS_INTERRUPTED,
    DemoRecording,
    RecordedStream,
    RecordingConfig,
)
from mil_demo_recorder.recovery import repair_bag, unfinished_bags
from mil_demo_recorder.ros_types import message_class
from mil_demo_recorder.stats import format_table
from mil_demo_recorder.stop_drain import StopDrain
from mil_demo_recorder.streams import STREAMS, StreamSpec, cdr_bool
from mil_demo_recorder.task_info import TASK_PARAMS, TaskInfoError, parse_task_topic, task_metadata
from mil_sim import demo_bag as db
from mil_sim.families import get_family
from mil_sim.node_main import run_node
from mil_sim.node_params import NodeConfigError, declare_parameters

NODE_NAME = "mil_demo_recorder"
PARAMETERS: tuple[tuple[str, Any, str, bool], ...] = (
    ("dataset_dir", "data/teleop", "directory of demo bags and index.json", True),
    # Task of the next demo: read at every start, so `ros2 param set` between demos relabels the next one.
    ("family", "placing", "task family (its state names and control rate shape the Episode)", False),
    ("task_id", "", "task id; '' = from /mil/task", False),
    ("split", "", "train / val / test; '' = from /mil/task, else train", False),
    ("held", "", "held object id; '' = from /mil/task", False),
    ("target", "", "target object id; '' = from /mil/task", False),
    ("distractors", "", "comma-separated distractor object ids; '' = from /mil/task", False),
    ("trial_seed", -1, "scene layout seed if known (sim), else -1", False),
    ("operator", "", "who teleoperated (stored with each demo)", False),
    ("notes", "", "free text stored with each demo", False),
    ("task_topic", "/mil/task", "latched task JSON (the sim node publishes it)", True),
    *(
        (
            f"{s.key}_topic",
            s.default_input,
            f"input topic recorded as {s.layout_topic}; '' = not recorded",
            True,
        )
        for s in STREAMS
    ),
    *(
        (
            f"min_rate_hz.{s.key}",
            s.default_min_rate_hz,
            f"warn when {s.key} arrives slower (0 = no check)",
            True,
        )
        for s in STREAMS
    ),
    ("start_button", 0, "Joy button index that starts a demo (-1 = none)", True),
    ("stop_button", 1, "Joy button index that stops (= start_button: toggles; -1 = none)", True),
    ("discard_button", 2, "Joy button index that discards the running or the last demo (-1 = none)", True),
    ("control_rate_hz", 20.0, "step rate of the Episode a reader makes from a demo (the family's)", True),
    ("grid", "control", "time grid for readers: control (fixed rate) or command (per command)", True),
    ("command_timeout_s", 0.2, "older commands count as zero twist (the bridge watchdog)", True),
    ("max_gap_s", 0.5, "a required stream silent for longer is warned about (and unusable)", True),
    ("gripper_open_initial", False, "gripper state before the first /gripper/open message", True),
    ("compress", True, "zstd-compress MCAP chunks (lossless)", True),
    ("flush_period_s", 0.5, "flush the bag this often: the most a SIGKILL can lose", True),
    ("queue_size", 2000, "messages buffered for the writer thread before dropping", True),
    ("fsync", False, "fsync on every flush (power-loss safe, slower)", True),
    ("max_demo_s", 600.0, "stop a demo automatically after this long (flagged interrupted)", True),
    ("repair_on_start", True, "rewrite bags of killed recordings (flagged incomplete) at start", True),
    ("status_period_s", 1.0, "period of ~/status while recording; idle: checks for (dis)connected streams", True),
)
POSITIVE = (
    "control_rate_hz",
    "command_timeout_s",
    "max_gap_s",
    "flush_period_s",
    "max_demo_s",
    "status_period_s",
)


class RecorderNode(Node):
    """Subscribes to the teleop streams and records demos on button presses or service calls."""

    def __init__(self, *, parameter_defaults: Mapping[str, Any] | None = None, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self.params = p = declare_parameters(self, PARAMETERS, parameter_defaults, positive_floats=False)
            self._check_params()
        except NodeConfigError:
            super().destroy_node()
            raise
        self.root = Path(p["dataset_dir"]).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        dataset_index.load_index(self.root)  # refuse a foreign index.json now, not at the first stop
        self.family = get_family(p["family"])
        self.config = RecordingConfig(
            compress=p["compress"],
            flush_period_s=p["flush_period_s"],
            queue_size=p["queue_size"],
            max_gap_s=p["max_gap_s"],
            fsync=p["fsync"],
        )
        self._lock = threading.Lock()
        self._recording: DemoRecording | None = None
        self._last_finished: Path | None = None
        self._last_result: dict[str, Any] | None = None
        self._topic_task: dict[str, Any] | None = None
        self._gripper_open: bool | None = None
        self._demos = 0
        self._buttons = JoyButtons(p["start_button"], p["stop_button"], p["discard_button"])
        self.streams = [
            RecordedStream(s, p[f"{s.key}_topic"], p[f"min_rate_hz.{s.key}"]) for s in STREAMS if p[f"{s.key}_topic"]
        ]
        self._drain = StopDrain(s.spec.layout_topic for s in self.streams)
        data_group = ReentrantCallbackGroup()
        self._stream_subs: dict[str, Subscription] = {}
        self._published_publishers: dict[str, int] | None = None
        for stream in self.streams:
            spec = stream.spec
            qos = (
                QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
                if spec.sensor_qos
                else QoSProfile(depth=100)
            )
            group = None if spec.key == "joy" else data_group  # buttons beside the services, not the data
            self._stream_subs[stream.input_topic] = self.create_subscription(
                message_class(spec.msgtype),
                stream.input_topic,
                partial(self._on_raw, spec),
                qos,
                raw=True,
                callback_group=group,
            )
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(String, p["task_topic"], self._on_task, latched)
        self._status_pub = self.create_publisher(String, "~/status", latched)
        self.create_service(Trigger, "~/start", lambda _q, r: self._respond(r, *self.start_demo()))
        self.create_service(Trigger, "~/stop", lambda _q, r: self._respond(r, *self.stop_demo()))
        self.create_service(Trigger, "~/discard", lambda _q, r: self._respond(r, *self.discard_demo()))
        self.create_timer(p["status_period_s"], self._on_status_tick)
        if p["repair_on_start"]:
            self._recover()
        self._publish_status()
        recorded = ", ".join(f"{s.input_topic} -> {s.spec.layout_topic}" for s in self.streams)
        self.get_logger().info(f"recording into {self.root.resolve()}: {recorded}")

    def _check_params(self) -> None:
        p = self.params
        for name in POSITIVE:
            if p[name] <= 0:
                raise NodeConfigError(f"parameter {name!r} must be positive, got {p[name]!r}")
        if p["grid"] not in db.RAW_GRIDS:
            raise NodeConfigError(f"parameter 'grid' must be one of {', '.join(db.RAW_GRIDS)}, got {p['grid']!r}")
        if p["queue_size"] <= 0:
            raise NodeConfigError(f"parameter 'queue_size' must be positive, got {p['queue_size']}")
        for s in STREAMS:
            if p[f"min_rate_hz.{s.key}"] < 0:
                raise NodeConfigError(f"parameter 'min_rate_hz.{s.key}' must be >= 0")
        if not p["image_topic"] and not p["compressed_image_topic"]:
            raise NodeConfigError("record at least one camera stream: set image_topic or compressed_image_topic")

    # -- callbacks --------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _receipt_ns(self, info: Mapping[str, Any]) -> int:
        """When the message arrived, by the middleware's receive time rather than this callback's clock.

        The callback runs when the executor gets to it; a busy or loaded process (a chunk write holding
        the GIL, another job on the machine) delays it by up to seconds and unevenly, and a bag timed
        that way disagrees with its own header stamps (the reader then falls back to these times). The
        middleware stamps the sample on its own thread as it arrives. It uses the system clock, so a
        node on sim time keeps its own clock."""
        received = int(info.get("received_timestamp") or 0)
        if received > 0 and not self.get_clock().ros_time_is_active:
            return received
        return self._now_ns()

    def _on_raw(self, spec: StreamSpec, data: bytes, info: Mapping[str, Any]) -> None:
        if spec.key == "gripper":
            value = cdr_bool(data)
            if value is not None:
                self._gripper_open = value
        elif spec.key == "joy":
            self._on_joy(deserialize_message(data, Joy))
        rec = self._recording
        if rec is None:
            return
        receipt_ns = self._receipt_ns(info)
        if self._drain.admits(spec.layout_topic, receipt_ns):
            rec.put(
                spec.layout_topic,
                receipt_ns,
                data,
                info.get("publication_sequence_number"),
                _publisher_key(info.get("publisher_gid")),
            )

    def _on_joy(self, msg: Joy) -> None:
        for action in self._buttons.presses(msg.buttons, self._recording is not None):
            ok, text = {START: self.start_demo, STOP: self.stop_demo, DISCARD: self.discard_demo}[action]()
            if not ok:
                self.get_logger().warning(f"{action} button: {text}")

    def _on_task(self, msg: String) -> None:
        try:
            self._topic_task = parse_task_topic(msg.data)
        except TaskInfoError as exc:
            self.get_logger().warning(str(exc))
            return
        self.get_logger().info(f"task from {self.params['task_topic']}: {self._topic_task.get('task_id')}")

    @staticmethod
    def _respond(response: Trigger.Response, ok: bool, text: str) -> Trigger.Response:
        response.success, response.message = ok, text
        return response

    # -- demo lifecycle ---------------------------------------------------------------------------
    def start_demo(self) -> tuple[bool, str]:
        """Start recording a demo of the current task; (False, why) if that is not possible now."""
        with self._lock:
            if self._recording is not None:
                return False, f"already recording {self._rel(self._recording.path)}"
            p = self.params
            params = {n: self.get_parameter(n).value for n in TASK_PARAMS}
            gripper = self._gripper_open if self._gripper_open is not None else p["gripper_open_initial"]
            try:
                task = task_metadata(
                    params,
                    self._topic_task,
                    state_names=list(self.family.state_names),
                    control_rate_hz=p["control_rate_hz"],
                    command_timeout_s=p["command_timeout_s"],
                    grid=p["grid"],
                    gripper_open_initial=gripper,
                )
                path = dataset_index.new_demo_path(self.root, task["task_id"], self._now_ns())
                rec = DemoRecording(path, self.streams, task, self.config, clock_ns=self._now_ns)
                rec.start()
                dataset_index.upsert(self.root, dataset_index.entry(self.root, path, rec.meta))
            except (TaskInfoError, BagWriteError, OSError, ValueError) as exc:
                self.get_logger().error(f"cannot start a demo: {exc}")
                return False, str(exc)
            self._recording = rec
        text = f"recording {self._rel(path)} (task {task['task_id']})"
        self.get_logger().info(text)
        self._publish_status()
        return True, text

    def stop_demo(self, status: str = STATUS_COMPLETE, reason: str = "") -> tuple[bool, str]:
        """Finish the running demo: take in what arrived before the stop (``StopDrain``), finalise its bag,
        log its statistics, update the index."""
        with self._lock:
            if self._recording is None or self._drain.active:
                return False, "not recording" if self._recording is None else "already stopping"
            stop_ns = self._now_ns()
            self._drain.begin(stop_ns)
        self._drain.wait()  # outside the lock: the data callbacks run on the executor's other thread
        with self._lock:
            rec, self._recording = self._recording, None
            self._drain.end()
            if rec is None:
                return False, "discarded while stopping"
            rel = self._rel(rec.path)
            try:
                meta = rec.finish(status, {"stop_reason": reason} if reason else None, end_ns=stop_ns)
            except (BagWriteError, OSError) as exc:
                self.get_logger().error(f"demo {rel} could not be finalised: {exc}")
                return False, f"demo {rel} failed: {exc}"
            dataset_index.upsert(self.root, dataset_index.entry(self.root, rec.path, meta))
            self._last_finished = rec.path
            self._demos += 1
        stats = meta["stats"]
        self._last_result = {
            "path": rel,
            "status": status,
            "duration_s": stats["duration_s"],
            "warnings": stats["warnings"],
        }
        self.get_logger().info(f"demo {rel} {status}, {stats['duration_s']:.2f} s\n{format_table(stats)}")
        for warning in stats["warnings"]:
            self.get_logger().warning(f"demo {rel}: {warning}")
        self._publish_status()
        return True, f"saved {rel} ({status}, {stats['duration_s']:.2f} s, {len(stats['warnings'])} warnings)"

    def discard_demo(self) -> tuple[bool, str]:
        """Drop the running demo, or when idle the last one saved this session (moved to .discarded/)."""
        with self._lock:
            rec, self._recording = self._recording, None
            if rec is not None:
                rec.abort()
                bag = rec.path
            elif self._last_finished is not None and self._last_finished.exists():
                bag, self._last_finished = self._last_finished, None
            else:
                return False, "nothing to discard"
            rel = self._rel(bag)
            target = dataset_index.discard(self.root, bag)
        self._last_result = {"path": rel, "status": "discarded"}
        text = f"discarded {rel} (moved to {target})"
        self.get_logger().warning(text)
        self._publish_status()
        return True, text

    def shutdown(self) -> None:
        """On Ctrl-C / SIGTERM: finalise a running demo as interrupted (its data stays readable)."""
        if self._recording is not None:
            self.stop_demo(STATUS_INTERRUPTED, "recorder shut down mid-demo")

    # -- status / recovery ------------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def publishers(self) -> dict[str, int]:
        """Per input topic, the publishers this node's subscription is matched with (0: not connected)."""
        return {topic: sub.get_publisher_count() for topic, sub in self._stream_subs.items()}

    def status(self) -> dict[str, Any]:
        rec = self._recording
        info: dict[str, Any] = {
            "state": "recording" if rec else "idle",
            "demos_saved": self._demos,
            "last": self._last_result,
            "publishers": self.publishers(),
        }
        if rec is not None:
            info.update(
                demo=self._rel(rec.path),
                elapsed_s=round((self._now_ns() - rec.start_ns) / 1e9, 3),
                received={t: s.received for t, s in rec.stats.items()},
                dropped={t: s.dropped_transport + s.dropped_queue for t, s in rec.stats.items()},
                queued=rec.queued,
            )
        return info

    def _publish_status(self) -> None:
        try:
            info = self.status()
            self._status_pub.publish(String(data=json.dumps(info)))
            self._published_publishers = info["publishers"]
        except Exception:  # context already shut down (Ctrl-C): the demo is still finalised, just unannounced
            if self.context.ok():
                raise

    def _on_status_tick(self) -> None:
        rec = self._recording
        if rec is None:
            if self.publishers() != self._published_publishers:
                self._publish_status()
            return
        if (self._now_ns() - rec.start_ns) / 1e9 > self.params["max_demo_s"]:
            self.get_logger().warning(f"demo reached max_demo_s={self.params['max_demo_s']:g} s: stopping it")
            self.stop_demo(STATUS_INTERRUPTED, "max_demo_s reached")
            return
        self._publish_status()

    def _recover(self) -> None:
        for bag in unfinished_bags(self.root):
            try:
                meta = repair_bag(bag, self.root)
            except Exception as exc:  # one unreadable bag must not stop the recorder
                self.get_logger().error(f"could not recover killed recording {self._rel(bag)}: {exc}")
                continue
            self.get_logger().warning(
                f"recovered killed recording {self._rel(bag)}: {meta['recovered']['messages']} messages, "
                "flagged incomplete (status recovered)"
            )


def _publisher_key(gid: Any) -> Any:
    """A hashable key for a publisher gid (a dict with a byte array in rclpy)."""
    if isinstance(gid, Mapping):
        data = gid.get("data")
        return bytes(data) if data is not None else None
    return gid


def main(argv: Sequence[str] | None = None) -> int:
    """``record --params-file config/recorder.yaml`` or ``ros2 run mil_demo_recorder record --ros-args``."""
    return run_node(
        "record",
        NODE_NAME,
        lambda defaults: RecorderNode(parameter_defaults=defaults),
        argv,
        description=__doc__.splitlines()[0],
        startup_errors=(NodeConfigError, dataset_index.DatasetIndexError),
        make_executor=lambda: MultiThreadedExecutor(num_threads=2),
        # on_exit, not on_shutdown: finalise even when Ctrl-C has already shut the context down (closing
        # the bag needs no ROS, and skipping it would leave the demo unfinished).
        on_exit=lambda node: node.shutdown(),
    )


if __name__ == "__main__":
    sys.exit(main())
