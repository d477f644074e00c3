"""ament_python build script: `colcon build` and `pip install -e` both use it."""

from setuptools import find_packages, setup

package_name = "mil_sim"

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
    description="MuJoCo PR2 stand-in, MIL task families, scripted experts and demo generator.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_node = mil_sim.sim_node:main",
            "generate_demos = mil_sim.generate:main",
        ],
    },
)
