"""Ray-primitive intersection for a pinhole camera at the origin. Pure, batched, elementwise.

Vectors are passed as (x, y, z) tuples of same-shaped tensors (structure of arrays): on a CPU the
three components as contiguous arrays are several times faster than a trailing dimension of 3.
Rays `rd` are unit directions; every function returns the distance t along the ray to the nearest
front hit, +inf where the ray misses.
"""

import torch

INF = float("inf")


def dot(a, b) -> torch.Tensor:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _sphere(rd_c: torch.Tensor, cc: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """|t rd - c|^2 = r^2 with |rd| = 1, given rd.c and |c|^2: t = rd.c - sqrt((rd.c)^2 - |c|^2 + r^2)."""
    h = rd_c * rd_c - cc + radius * radius
    t = rd_c - torch.sqrt(h.clamp_min(0))
    return torch.where((h >= 0) & (t > 0), t, INF)


def ray_sphere(rd, centre, radius: torch.Tensor) -> torch.Tensor:
    return _sphere(dot(rd, centre), dot(centre, centre), radius)


def ray_capsule(rd, a, b, radius: torch.Tensor) -> torch.Tensor:
    """Capsule = segment a-b swept by a sphere: the nearest of the cylinder body and the two end spheres."""
    ba = (b[0] - a[0], b[1] - a[1], b[2] - a[2])
    baba, baoa, aa = dot(ba, ba), -dot(ba, a), dot(a, a)  # per primitive; origin - a = -a
    rd_a = dot(rd, a)
    bard = dot(rd, ba)
    qa = baba - bard * bard
    qb = -baba * rd_a - baoa * bard
    qc = baba * aa - baoa * baoa - radius * radius * baba
    h = qb * qb - qa * qc
    t_body = (-qb - torch.sqrt(h.clamp_min(0))) / qa.clamp_min(1e-9)
    y = baoa + t_body * bard
    t = torch.where((h >= 0) & (y > 0) & (y < baba) & (t_body > 0), t_body, INF)
    t = torch.minimum(t, _sphere(rd_a, aa, radius))
    return torch.minimum(t, _sphere(rd_a + bard, dot(b, b), radius))  # rd.b = rd.a + rd.(b - a)


def capsule_normal(p, a, b):
    """Outward unit normal at surface point p: away from the closest point of the segment."""
    ba = (b[0] - a[0], b[1] - a[1], b[2] - a[2])
    pa = (p[0] - a[0], p[1] - a[1], p[2] - a[2])
    s = (dot(pa, ba) / dot(ba, ba).clamp_min(1e-9)).clamp(0, 1)
    return _normalize(tuple(pa[i] - s * ba[i] for i in range(3)))


def _normalize(v):
    n = torch.sqrt(dot(v, v)).clamp_min(1e-12)
    return tuple(c / n for c in v)


def _apply(M: torch.Tensor, v):
    """M (..., 3, 3) times the vector v given as components broadcastable against M[..., 0, 0]."""
    return tuple(M[..., i, 0] * v[0] + M[..., i, 1] * v[1] + M[..., i, 2] * v[2] for i in range(3))


def ray_ellipsoid(rd, centre, to_unit: torch.Tensor) -> torch.Tensor:
    """Ellipsoid {p : |to_unit (p - centre)| = 1}; to_unit (..., 3, 3) maps it onto the unit sphere."""
    o = _apply(to_unit, tuple(-c for c in centre))
    d = _apply(to_unit, rd)
    qa, qb = dot(d, d), dot(o, d)
    h = qb * qb - qa * (dot(o, o) - 1)
    t = (-qb - torch.sqrt(h.clamp_min(0))) / qa
    return torch.where((h >= 0) & (t > 0), t, INF)


def ellipsoid_normal(p, centre, to_unit: torch.Tensor):
    """Gradient of |M (p - c)|^2 is M^T M (p - c)."""
    q = _apply(to_unit, tuple(p[i] - centre[i] for i in range(3)))
    return _normalize(_apply(to_unit.transpose(-1, -2), q))
