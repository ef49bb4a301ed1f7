"""Z-buffered ray casting of a hand made of tapered capsules and a few ellipsoids (palm, thenar), batched in torch.

Work is restricted to screen tiles that a primitive's projected bounding box touches, so the cost
follows the hand's screen area rather than (pixels x primitives); everything per tile is elementwise,
so a sample renders identically whatever batch it is in.
"""

from dataclasses import dataclass

import torch

from repro.data.world.raycast import INF, _normalize, _sphere, dot, ellipsoid_normal, ray_ellipsoid

TILE = 4


@dataclass
class HandGeometry:
    """Primitives in the camera frame (mm). Capsule i spans a[:, i] (radius r[:, i]) to b[:, i] (radius
    r_end[:, i]): a tapered capsule (a "round cone", the convex hull of its two end spheres). Ellipsoid
    e is {p : |ellipsoid_to_unit[:, e] (p - ellipsoid_centre[:, e])| = 1}."""

    a: torch.Tensor  # (B, P, 3)
    b: torch.Tensor  # (B, P, 3)
    r: torch.Tensor  # (B, P) radius at a
    r_end: torch.Tensor  # (B, P) radius at b
    ellipsoid_centre: torch.Tensor  # (B, E, 3)
    ellipsoid_to_unit: torch.Tensor  # (B, E, 3, 3)


@dataclass
class Raster:
    depth: torch.Tensor  # (B, S, S) distance along the pixel ray, +inf on background
    prim: torch.Tensor  # (B, S, S) long: capsule index, P + e for ellipsoid e, -1 for background
    hit_image: torch.Tensor  # (N,) image of every hand pixel
    hit_pixel: torch.Tensor  # (N,) its flat index into the image's S*S pixels
    normal: torch.Tensor  # (N, 3) unit surface normal at those pixels (only there: shading needs no more)


def ray_round_cone(rd, a, b, ra: torch.Tensor, rb: torch.Tensor) -> torch.Tensor:
    """Distance along unit rays rd (from the origin) to a tapered capsule: the convex hull of the spheres
    (a, ra) and (b, rb), i.e. a cone frustum tangent to both, capped by them; +inf where it misses.
    The cone body after Inigo Quilez's round-cone intersector (iquilezles.org/articles/intersectors),
    the caps as spheres; with ra == rb it is ray_capsule's capsule. Terms that depend on the primitive
    only are formed before the per-pixel ones."""
    ba = (b[0] - a[0], b[1] - a[1], b[2] - a[2])
    rr = ra - rb
    m0, m1, aa = dot(ba, ba), -dot(ba, a), dot(a, a)  # m1 = ba . (origin - a)
    d2 = m0 - rr * rr
    k0 = d2 * aa - m1 * m1 + 2 * m1 * rr * ra - m0 * ra * ra
    c1 = rr * ra - m1
    m2, rd_a = dot(ba, rd), dot(rd, a)  # per pixel from here on
    k2 = d2 - m2 * m2
    k1 = m2 * c1 - d2 * rd_a
    # Where h < 0 or k2 == 0 the root is nan or inf and fails every comparison below: a miss.
    t_body = (-torch.sqrt(k1 * k1 - k0 * k2) - k1) / k2
    y = t_body * m2 - c1  # (hit - a) . ba, shifted: within (0, d2) on the frustum between the tangent circles
    t = torch.where((y > 0) & (y < d2) & (t_body > 0), t_body, INF)
    t = torch.minimum(t, _sphere(rd_a, aa, ra))
    return torch.minimum(t, _sphere(rd_a + m2, dot(b, b), rb))  # rd.b = rd.a + rd.(b - a)


def round_cone_normal(p, a, b, ra: torch.Tensor, rb: torch.Tensor):
    """Outward unit normal at surface point p of the tapered capsule: away from the centre of the
    inscribed sphere touching it there. On the frustum that centre lies (distance from the axis) *
    tan(phi) before p's foot on the axis, sin(phi) = (ra - rb) / |b - a|; clamped to the segment it
    gives the caps' normals, as capsule_normal does."""
    ba = (b[0] - a[0], b[1] - a[1], b[2] - a[2])
    pa = (p[0] - a[0], p[1] - a[1], p[2] - a[2])
    m0 = dot(ba, ba).clamp_min(1e-9)
    rr = ra - rb
    tan = rr / torch.sqrt((m0 - rr * rr).clamp_min(1e-9))
    along = dot(pa, ba) / m0  # the foot's parameter on the segment
    radial = torch.sqrt((dot(pa, pa) - along * along * m0).clamp_min(0))
    s = (along - radial * tan / torch.sqrt(m0)).clamp(0, 1)
    return _normalize(tuple(pa[i] - s * ba[i] for i in range(3)))


def take(x: torch.Tensor, *index: torch.Tensor) -> torch.Tensor:
    """x[i0, i1, ...] for 1-D index tensors over x's leading dimensions, as one index_select on them
    flattened: the same values, several times faster than advanced indexing on a CPU."""
    flat = index[0]
    for i, n in zip(index[1:], x.shape[1 : len(index)]):
        flat = flat * n + i
    return x.flatten(0, len(index) - 1).index_select(0, flat)


def _ray_components(K_inv: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """K_inv (u, v, 1) as (x, y, z) components, unnormalised; K_inv (..., 3, 3) broadcasts against u and v.
    Elementwise, and bit for bit what the matrix product gives: the per-pixel 3x3 products cost more."""
    return tuple(K_inv[..., i, 0] * u + K_inv[..., i, 1] * v + K_inv[..., i, 2] for i in range(3))


def pixel_rays(K: torch.Tensor, size: int) -> torch.Tensor:
    """Unit ray direction through every pixel centre: (B, S, S, 3)."""
    coords = torch.arange(size, dtype=K.dtype)
    d = _ray_components(torch.linalg.inv(K)[:, None, None], coords[None, None, :], coords[None, :, None])
    return torch.nn.functional.normalize(torch.stack(d, -1), dim=-1)


def _screen_discs(geom: HandGeometry, K: torch.Tensor, margin: float = 1.15):
    """Projected centres (B, 2P, 2) and conservative pixel radii (B, 2P) of the capsules' end spheres
    (a then b), both with the larger end radius. A capsule's silhouette lies inside the 2D capsule
    around its projected segment with that radius."""
    r = torch.maximum(geom.r, geom.r_end)
    centres = torch.cat([geom.a, geom.b], 1)
    radii = torch.cat([r, r], 1)
    z = centres[..., 2]
    uv = (centres @ K.transpose(-1, -2))[..., :2] / z[..., None]
    f = K[:, None, 0, 0]
    # A sphere of radius r at depth z reaches f r / sqrt(z^2 - r^2) <= f r / (z - r) pixels on the
    # optical axis; the margin covers the stretch of spheres up to ~20 degrees off it (1 / cos^2).
    reach = torch.where(z - radii > 1.0, margin * f * radii / (z - radii).clamp_min(1.0) + 1.0, INF)
    return uv, reach


_CORNERS = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])


def _ellipsoid_boxes(geom: HandGeometry, K: torch.Tensor):
    """Screen bounding boxes (lo, hi), each (B, E, 2), of the ellipsoids: the projected corners of their
    camera-frame bounding boxes (half-extent along axis i: the norm of row i of the unit-sphere-to-
    ellipsoid map), a pixel wider; unbounded where a corner is not in front of the camera."""
    half = torch.linalg.inv(geom.ellipsoid_to_unit).square().sum(-1).sqrt()  # (B, E, 3)
    corners = geom.ellipsoid_centre[:, :, None] + _CORNERS * half[:, :, None]  # (B, E, 8, 3)
    z = corners[..., 2]
    uv = (corners @ K[:, None].transpose(-1, -2))[..., :2] / z[..., None].clamp_min(1.0)
    ahead = (z > 1.0).all(-1, keepdim=True)
    return torch.where(ahead, uv.amin(-2) - 1.0, -INF), torch.where(ahead, uv.amax(-2) + 1.0, INF)


def _tile_pairs(geom: HandGeometry, K: torch.Tensor, size: int):
    """All (image, primitive, tile-row, tile-col) whose tile the primitive's silhouette may touch:
    first by bounding box, then, for capsules, by the tile centre's 2D distance to the segment."""
    B, P = geom.r.shape
    uv, reach = _screen_discs(geom, K)
    lo, hi = uv - reach[..., None], uv + reach[..., None]
    e_lo, e_hi = _ellipsoid_boxes(geom, K)
    lo = torch.cat([torch.minimum(lo[:, :P], lo[:, P:]), e_lo], 1)
    hi = torch.cat([torch.maximum(hi[:, :P], hi[:, P:]), e_hi], 1)
    n_tiles = size // TILE
    t0 = torch.floor(lo.clamp(-1, size) / TILE).clamp(0, n_tiles - 1)
    t1 = torch.floor(hi.clamp(-1, size) / TILE).clamp(0, n_tiles - 1)
    on_screen = (hi >= 0).all(-1) & (lo <= size - 1).all(-1)
    idx = torch.arange(n_tiles, dtype=uv.dtype)
    in_x = (idx >= t0[..., 0, None]) & (idx <= t1[..., 0, None])  # (B, Q, T)
    in_y = (idx >= t0[..., 1, None]) & (idx <= t1[..., 1, None])
    bi, qi, ty, tx = (in_y[..., :, None] & in_x[..., None, :] & on_screen[..., None, None]).nonzero(as_tuple=True)

    caps = qi < P
    qc = qi.clamp(max=P - 1)
    pa, pb = take(uv, bi, qc), take(uv, bi, P + qc)
    centre = torch.stack([tx, ty], -1).to(uv.dtype) * TILE + (TILE - 1) / 2
    seg = pb - pa
    s = (((centre - pa) * seg).sum(-1) / (seg * seg).sum(-1).clamp_min(1e-9)).clamp(0, 1)
    dist = (centre - pa - s[:, None] * seg).norm(dim=-1)
    near = dist <= torch.maximum(take(reach, bi, qc), take(reach, bi, P + qc)) + TILE / 2**0.5
    keep = (~caps | near).nonzero(as_tuple=True)[0]
    return tuple(x.index_select(0, keep) for x in (bi, qi, ty, tx))


def _take_parts(x: torch.Tensor, *index: torch.Tensor):
    """Components (x, y, z) of x (..., 3) at the given leading indices, each contiguous."""
    return tuple(take(x[..., i], *index) for i in range(3))


def _columns(parts):
    """(N,) components -> (N, 1), to broadcast one primitive over a tile's pixels."""
    return tuple(c[:, None] for c in parts)


def _pair_rays(K_inv: torch.Tensor, b: torch.Tensor, ty: torch.Tensor, tx: torch.Tensor):
    """Unit rays (x, y, z), each (N, TILE*TILE), through the pixels of tile (ty, tx) of image b:
    computed from the intrinsics rather than gathered from a per-pixel table (gathers dominated)."""
    off = torch.arange(TILE, dtype=K_inv.dtype)
    u = (tx[:, None] * TILE).to(K_inv.dtype)[:, None] + off[None, None, :]  # (N, 1, T)
    v = (ty[:, None] * TILE).to(K_inv.dtype)[:, None] + off[None, :, None]  # (N, T, 1)
    d = tuple(c.reshape(len(b), -1) for c in _ray_components(K_inv.index_select(0, b)[:, None, None], u, v))
    norm = torch.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    return tuple(c / norm for c in d)


def _pair_pixels(b: torch.Tensor, ty: torch.Tensor, tx: torch.Tensor, size: int) -> torch.Tensor:
    """Flat index into the batch's pixels of every pixel of tile (ty, tx) of image b: (N, TILE*TILE)."""
    off = torch.arange(TILE)
    pix = (ty[:, None, None] * TILE + off[None, :, None]) * size + tx[:, None, None] * TILE + off[None, None, :]
    return b[:, None] * size * size + pix.reshape(len(b), -1)


def rasterize(geom: HandGeometry, K: torch.Tensor, size: int) -> Raster:
    if size % TILE:
        raise ValueError(f"image size {size} must be a multiple of {TILE}")
    B, P = geom.r.shape
    K_inv = torch.linalg.inv(K).contiguous()  # inv returns column-major matrices; gathers from those are slow
    bi, qi, ty, tx = _tile_pairs(geom, K, size)
    caps = (qi < P).nonzero(as_tuple=True)[0]
    ells = (qi >= P).nonzero(as_tuple=True)[0]
    b_c, q_c, ty_c, tx_c = (x.index_select(0, caps) for x in (bi, qi, ty, tx))
    b_p, q_p, ty_p, tx_p = (x.index_select(0, ells) for x in (bi, qi, ty, tx))
    e_p = q_p - P
    t_caps = ray_round_cone(
        _pair_rays(K_inv, b_c, ty_c, tx_c),
        _columns(_take_parts(geom.a, b_c, q_c)),
        _columns(_take_parts(geom.b, b_c, q_c)),
        take(geom.r, b_c, q_c)[:, None],
        take(geom.r_end, b_c, q_c)[:, None],
    )
    t_palm = ray_ellipsoid(
        _pair_rays(K_inv, b_p, ty_p, tx_p),
        _columns(_take_parts(geom.ellipsoid_centre, b_p, e_p)),
        take(geom.ellipsoid_to_unit, b_p, e_p)[:, None],
    )

    flat = torch.cat([_pair_pixels(b_c, ty_c, tx_c, size), _pair_pixels(b_p, ty_p, tx_p, size)]).reshape(-1)
    t = torch.cat([t_caps, t_palm]).reshape(-1)
    depth = torch.full((B * size * size,), INF).scatter_reduce(0, flat, t, "amin")
    winner = ((t == depth.index_select(0, flat)) & torch.isfinite(t)).nonzero(as_tuple=True)[0]
    prim_val = torch.cat([q_c, q_p])[:, None].expand(-1, TILE * TILE).reshape(-1)
    prim = torch.full((B * size * size,), -1, dtype=torch.long).scatter_reduce(
        0, flat.index_select(0, winner), prim_val.index_select(0, winner), "amax"
    )
    hit = (prim >= 0).nonzero(as_tuple=True)[0]
    image, pixel = hit // (size * size), hit % (size * size)
    rays = _hit_rays(K_inv, image, pixel, size)
    normal = _normals(geom, rays, depth.index_select(0, hit), prim.index_select(0, hit), image)
    return Raster(depth.view(B, size, size), prim.view(B, size, size), image, pixel, normal)


def _hit_rays(K_inv, image, pixel, size):
    """Unit rays (x, y, z), each (N,), through the given pixels: pixel_rays' arithmetic, at those pixels only."""
    d = _ray_components(K_inv.index_select(0, image), (pixel % size).to(K_inv.dtype), (pixel // size).to(K_inv.dtype))
    return tuple(torch.nn.functional.normalize(torch.stack(d, -1), dim=-1).T.contiguous())


def _normals(geom: HandGeometry, rays_soa, depth, q, b_idx) -> torch.Tensor:
    """Surface normals (N, 3) at hand pixels with ray depth `depth`, winning primitive `q`, in images `b_idx`."""
    P = geom.r.shape[1]
    p = tuple(rays_soa[i] * depth for i in range(3))
    n = torch.zeros(3, len(q))
    on_caps = q < P
    c = on_caps.nonzero(as_tuple=True)[0]
    b_c, q_c = b_idx.index_select(0, c), q.index_select(0, c)
    p_c = tuple(x.index_select(0, c) for x in p)
    n.index_copy_(
        1,
        c,
        torch.stack(
            round_cone_normal(
                p_c, _take_parts(geom.a, b_c, q_c), _take_parts(geom.b, b_c, q_c), take(geom.r, b_c, q_c), take(geom.r_end, b_c, q_c)
            )
        ),
    )
    e = (~on_caps).nonzero(as_tuple=True)[0]
    b_e, q_e, p_e = b_idx.index_select(0, e), q.index_select(0, e) - P, tuple(x.index_select(0, e) for x in p)
    n.index_copy_(
        1, e, torch.stack(ellipsoid_normal(p_e, _take_parts(geom.ellipsoid_centre, b_e, q_e), take(geom.ellipsoid_to_unit, b_e, q_e)))
    )
    return n.T
