"""ament_python build script: `colcon build` and `pip install -e` both use it."""

import os
from pathlib import Path

from setuptools import find_packages, setup

package_name = "mil_policy"
# config/ and launch/ live at the workspace root (one copy shared by every package and the pip-mode
# entry points); colcon may run this script from another directory, so resolve them from this file.
ROOT = Path(__file__).resolve().parents[2]


def workspace_files(pattern: str) -> list[str]:
    return sorted(os.path.relpath(f) for f in ROOT.glob(pattern))


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={package_name: ["assets/*/*", "assets/*/*/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", workspace_files("config/*.yaml")),
        ("share/" + package_name + "/launch", workspace_files("launch/*.launch.py")),
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
            "compare_evals = mil_policy.compare_evals:main",
            "compare_seeds = mil_policy.compare_seeds:main",
            "select_checkpoint = mil_policy.checkpoint_selection:main",
            "diagnose = mil_policy.diagnose:main",
            "drift = mil_policy.drift:main",
            "clone_state = mil_policy.state_cloning:main",
            "dagger = mil_policy.dagger:main",
            "probe_localisation = mil_policy.localisation_probe:main",
            "plot_dataset_size = mil_policy.dataset_size_plot:main",
            "policy_node = mil_policy.policy_node:main",
            "mil-place = mil_policy.bringup:main",
        ],
    },
)
