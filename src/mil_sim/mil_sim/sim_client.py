"""Call the sim node's services (reset to a task, end the episode, read success) from any process.

A reset is two calls (set the ``task_id`` / ``trial_seed`` parameters, then ``~/reset``), and a
synchronous service call needs an executor that nobody else is spinning. So the client owns a small
private node and executor in the caller's context: it works the same from a script, a test or a node
whose own executor already spins in another thread (adding that node to a second executor would steal
it from the first).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

DEFAULT_SIM_NODE = "/mil_sim"
_ids = itertools.count()


class SimClient:
    """Service clients for one sim node. Use from one thread at a time; ``close()`` when done."""

    def __init__(self, context: Context | None = None, sim_node: str = DEFAULT_SIM_NODE) -> None:
        self.sim_node = sim_node.rstrip("/")
        self._node = Node(f"mil_sim_client_{os.getpid()}_{next(_ids)}", context=context)
        self._executor = SingleThreadedExecutor(context=self._node.context)
        self._executor.add_node(self._node)
        self._set_params = self._node.create_client(SetParameters, f"{self.sim_node}/set_parameters")
        self._triggers = {
            name: self._node.create_client(Trigger, f"{self.sim_node}/{name}")
            for name in ("reset", "end_episode", "success")
        }

    def _call(self, client: Any, request: Any, timeout_s: float) -> Any:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {client.srv_name} is not available after {timeout_s:g} s; is the sim running?")
        future = client.call_async(request)
        self._executor.spin_until_future_complete(future, timeout_sec=timeout_s)
        if not future.done():
            client.remove_pending_request(future)
            raise TimeoutError(f"service {client.srv_name} did not answer within {timeout_s:g} s")
        return future.result()

    def trigger(self, name: str, timeout_s: float = 10.0) -> Trigger.Response:
        """Call ``~/reset``, ``~/end_episode`` or ``~/success``."""
        return self._call(self._triggers[name], Trigger.Request(), timeout_s)

    def reset_to(self, task_id: str, trial_seed: int, timeout_s: float = 10.0) -> Trigger.Response:
        """Set the task parameters, then reset. A refused parameter comes back as a failed response."""
        request = SetParameters.Request()
        request.parameters = [
            Parameter("task_id", value=task_id).to_parameter_msg(),
            Parameter("trial_seed", value=int(trial_seed)).to_parameter_msg(),
        ]
        result = self._call(self._set_params, request, timeout_s)
        refused = [
            f"{p.name}: {r.reason}" for p, r in zip(request.parameters, result.results, strict=True) if not r.successful
        ]
        if refused:
            message = f"sim refused the parameters ({'; '.join(refused)})"
            return Trigger.Response(success=False, message=message)
        return self.trigger("reset", timeout_s)

    def end_episode(self, timeout_s: float = 10.0) -> Trigger.Response:
        return self.trigger("end_episode", timeout_s)

    def success(self, timeout_s: float = 10.0) -> Trigger.Response:
        return self.trigger("success", timeout_s)

    def close(self) -> None:
        self._executor.shutdown()
        self._node.destroy_node()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reset_to(
    where: Node | Context | SimClient | None,
    task_id: str,
    trial_seed: int,
    *,
    sim_node: str = DEFAULT_SIM_NODE,
    timeout_s: float = 10.0,
) -> Trigger.Response:
    """One-shot reset of the sim to ``task_id`` / ``trial_seed``; ``where`` gives the ROS context.

    Pass an existing SimClient to avoid creating (and discovering) a new client node for every reset.
    """
    if isinstance(where, SimClient):
        return where.reset_to(task_id, trial_seed, timeout_s)
    context = where.context if isinstance(where, Node) else where
    with SimClient(context, sim_node) as client:
        return client.reset_to(task_id, trial_seed, timeout_s)
