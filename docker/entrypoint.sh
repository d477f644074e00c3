#!/usr/bin/env bash
# Source ROS and the workspace, then run the given command.
set -e
source /opt/ros/kilted/setup.bash
source /ws/install/setup.bash
exec "$@"
