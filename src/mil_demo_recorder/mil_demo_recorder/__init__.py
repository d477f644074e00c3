"""VR-teleop demo recorder, dataset building and replay evaluation for one-shot imitation.

Records teleoperation streams into one rosbag2 MCAP bag per demonstration (the layout of
:mod:`mil_sim.demo_bag`), builds meta-training datasets from demo bags, and replays demos for evaluation.
"""
