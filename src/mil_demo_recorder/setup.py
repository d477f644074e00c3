"""ament_python build script: `colcon build` and `pip install -e` both use it."""

from setuptools import find_packages, setup

package_name = "mil_demo_recorder"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={package_name: ["assets/*", "assets/**/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="mil maintainers",
    maintainer_email="maintainers@mil.invalid",
    description="VR teleop demo recorder, dataset builder and replay evaluation.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "record = mil_demo_recorder.recorder_node:main",
            "build_dataset = mil_demo_recorder.build_dataset:main",
            "replay = mil_demo_recorder.replay:main",
            "score_replay = mil_demo_recorder.score_replay:main",
        ],
    },
)
