"""Loaders for the real evaluation datasets (FreiHAND, RHD, STB), each yielding right-hand HandSamples.

The modules register themselves with the dataset registry; open them with `open_dataset(name, root=...)`.
"""
