"""The procedural hand world: an articulated hand, a camera, styles, and a batched 3D renderer."""
