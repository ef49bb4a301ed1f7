"""Hand datasets: the procedural hand world (synthetic domains) and loaders for the real datasets."""
