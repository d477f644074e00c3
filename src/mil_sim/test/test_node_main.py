"""``run_node``'s exit contract around shutdown, with a real rclpy node and executor.

When Ctrl-C shuts the context down while a callback runs, rclpy's MultiThreadedExecutor re-raises that
callback's error (on its now invalid handles) from ``spin``: the node must still shut down cleanly and
exit 0. The same error while the context is alive is a real fault and must propagate.
"""

from __future__ import annotations

from typing import Any

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from mil_sim.node_main import run_node

pytestmark = pytest.mark.ros


def _node_failing_in_a_callback(*, shut_down_first: bool) -> Any:
    def make(defaults: dict[str, Any] | None) -> Node:
        node = Node("failing_node")

        def tick() -> None:
            if shut_down_first:
                rclpy.try_shutdown()  # what rclpy's SIGINT handler does, mid-callback
            raise RuntimeError("callback failed")

        node.create_timer(0.01, tick)
        return node

    return make


def test_callback_error_after_shutdown_exits_cleanly(domain_id: int) -> None:
    make = _node_failing_in_a_callback(shut_down_first=True)
    hooks: list[str] = []
    code = run_node(
        "t",
        "failing_node",
        make,
        [],
        make_executor=MultiThreadedExecutor,
        on_shutdown=lambda _node: hooks.append("on_shutdown"),
        on_exit=lambda _node: hooks.append("on_exit"),
    )
    assert code == 0
    assert not rclpy.ok()
    assert hooks == ["on_exit"]  # the context was gone: only the hook that needs no ROS ran


def test_callback_error_while_running_propagates(domain_id: int) -> None:
    make = _node_failing_in_a_callback(shut_down_first=False)
    with pytest.raises(RuntimeError, match="callback failed"):
        run_node("t", "failing_node", make, [], make_executor=MultiThreadedExecutor)
    assert not rclpy.ok()  # the finally block still shut rclpy down
