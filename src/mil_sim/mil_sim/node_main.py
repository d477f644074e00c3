"""The one ``main()`` every mil node shares: parameters file, rclpy init, spin, clean shutdown.

Under ROS (``ros2 run pkg exe --ros-args --params-file f.yaml``) rclpy reads the file itself; in pip
mode (``exe --params-file f.yaml``) the node's section of the same file becomes the declared defaults,
so ``--ros-args -p`` still overrides it as it would under ROS. A node that cannot start (bad parameter,
bad file) exits with status 2 and a one-line reason; Ctrl-C and external shutdown exit 0 after the
node's ``on_shutdown`` hook (e.g. sending zero velocities, while ROS is still up) and its ``on_exit``
hook (always, even after Ctrl-C has shut ROS down: e.g. finalising a bag, which needs no ROS) have run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

from mil_sim.ros_params import ParamsFileError, load_node_params


def shut_down_mid_callback() -> bool:
    """Whether the error ``executor.spin()`` just raised came from a Ctrl-C shutdown, not a fault.

    Ctrl-C shuts the context down while a callback may be running; that callback then fails on its now
    invalid handles and rclpy's MultiThreadedExecutor re-raises the error from ``spin()``. It is a
    consequence of the shutdown, so the node should still finalise and exit 0; the same error while the
    context is alive is a real fault and must propagate.
    """
    return not rclpy.ok()


def run_node(
    prog: str,
    node_name: str,
    make_node: Callable[[dict[str, Any] | None], Node],
    argv: Sequence[str] | None = None,
    *,
    description: str = "",
    startup_errors: tuple[type[BaseException], ...] = (ValueError,),
    make_executor: Callable[[], Executor] = SingleThreadedExecutor,
    on_shutdown: Callable[[Node], None] | None = None,
    on_exit: Callable[[Node], None] | None = None,
) -> int:
    """Parse ``--params-file``, build the node with those defaults, spin until shutdown.

    ``on_shutdown`` runs only while the context is still valid (it may publish); ``on_exit`` runs in
    every case, so work that needs no ROS is never skipped because Ctrl-C shut the context down first.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"Under ROS: ros2 run <package> {prog} --ros-args --params-file config/<file>.yaml",
    )
    parser.add_argument("--params-file", help=f"ROS 2 parameters YAML; its '{node_name}' section sets the defaults")
    args = parser.parse_args(remove_ros_args([prog, *argv])[1:])
    try:
        defaults = load_node_params(args.params_file, node_name) if args.params_file else None
    except ParamsFileError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    rclpy.init(args=[prog, *argv])
    node: Node | None = None
    try:
        node = make_node(defaults)
        executor = make_executor()
        executor.add_node(node)
        executor.spin()
    except startup_errors as e:
        get_logger(node_name).fatal(str(e))
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if not shut_down_mid_callback():
            raise
    finally:
        if node is not None:
            if on_shutdown is not None and rclpy.ok():
                on_shutdown(node)
            if on_exit is not None:
                on_exit(node)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
