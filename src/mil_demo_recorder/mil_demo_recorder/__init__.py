"""Records VR-teleoperation streams into one rosbag2 MCAP demo per demonstration, builds meta-training datasets from demo bags, and replays demos for evaluation."""
