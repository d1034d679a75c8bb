"""Reading cgroups, v1 and v2, for pyrunc and the shim alike: where they are (layout.py), their
files (files.py) and their statistics (stats.py). Changing them (creating, limits, freezing) is
pyrunc's alone (runtime/linux/cgroups/). Nothing is imported here: pyrunc loads only what a
command needs."""
