"""Turns end-effector velocity and gripper commands from the policy into PR2 right-arm joint and
gripper commands, with speed clamps, a workspace box, a command watchdog and a latching e-stop.
"""
