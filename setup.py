"""The build steps pyproject.toml cannot declare: the protobuf stubs and Docker's seccomp profile.

protos/gen is never committed. A wheel (`pip install .`, `python -m build`) gets it
generated into its build directory by protos/generate.py, with grpcio-tools and
mypy-protobuf from [build-system] requires. An editable install imports the source
tree, where scripts/setup generates (and regenerates when a .proto changes) protos/gen.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithStubs(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        sys.path.insert(0, str(HERE))
        from protos.generate import generate

        generate(Path(self.build_lib) / "protos" / "gen", HERE / "protos")
        # Docker's seccomp profile: the source tree's copy (scripts/setup fetched it), or fetched now.
        from dockerd import profiles_source

        built = Path(self.build_lib) / "dockerd" / "profiles"
        if profiles_source.present(HERE / "dockerd" / "profiles"):
            shutil.copytree(HERE / "dockerd" / "profiles", built, dirs_exist_ok=True)
        else:
            profiles_source.fetch(built)


setup(cmdclass={"build_py": BuildWithStubs})
