"""ament_python build script: `colcon build` and `pip install -e` both use it."""

from glob import glob

from setuptools import find_packages, setup

package_name = "mil_policy"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={package_name: ["assets/*/*", "assets/*/*/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", glob("../../config/*.yaml")),
        ("share/" + package_name + "/launch", glob("../../launch/*.launch.py")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="mil maintainers",
    maintainer_email="maintainers@mil.invalid",
    description="Meta-imitation learning core, meta-trainer, evaluation and policy node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "train = mil_policy.train:main",
            "evaluate = mil_policy.evaluate:main",
            "policy_node = mil_policy.policy_node:main",
            "mil-place = mil_policy.bringup:main",
        ],
    },
)
