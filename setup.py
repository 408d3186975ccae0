"""Build of the optional C kernel of the spectral statistics (everything else is in pyproject.toml).

``optional=True``: where no C compiler is available the package installs without it and uses numpy instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("micmatch._logpower", ["src/micmatch/_logpower.c"],
                  extra_compile_args=["-O3", "-fno-trapping-math"],
                  libraries=["m"], optional=True),
    ]
)
