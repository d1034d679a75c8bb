"""Helpers shared by more than one layer (kept tiny: the shim imports from here too)."""
