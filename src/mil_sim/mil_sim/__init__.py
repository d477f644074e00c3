"""MuJoCo stand-in for the PR2: a 7-DoF arm with gripper and head camera, the placing, reaching and
pushing task families of the MIL paper, scripted experts, a demo generator writing rosbag2 MCAP
demos, and a ROS 2 node that exposes the sim like a PR2.
"""
