"""core.latent_views (the latent explorer's array maths) and core.latent_tasks, without Qt:
the point raster against pixels counted by hand, the colour mixing, the view planes against
their definitions, the heat map against a Gaussian, and the tasks against the model directly."""

import numpy as np
import pytest
import torch

from lvm_studio.core import latent_tasks as T
from lvm_studio.core import latent_views as V
from lvm_studio.core.clustering import pca
from lvm_studio.core.colours import mix_colours
from lvm_studio.core.data import N_PIXELS
from lvm_studio.core.images import SIDE
from lvm_studio.core.vae import VAE, VAEConfig


class Ctx:
    """A stand-in for workers.tasks' context: records reports, never cancelled."""

    def __init__(self):
        self.reports = []

    def report(self, fraction, payload=None):
        self.reports.append((fraction, payload))

    def cancelled(self):
        return False

    def check(self):
        pass


def tiny_vae(latent_dim, seed=0):
    torch.manual_seed(seed)
    return VAE(VAEConfig(latent_dim=latent_dim, hidden=(16,))).eval()


def lattice_count(radius):
    """Pixels (dx, dy) with dx² + dy² ≤ r², counted one by one."""
    r = int(np.ceil(radius))
    return sum(1 for dx in range(-r, r + 1) for dy in range(-r, r + 1) if dx * dx + dy * dy <= radius * radius)


# --- the raster -------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0.0, 1.0, 1.5, 2.0, 2.6, 3.2])
def test_disc_offsets_are_the_lattice_points_of_the_disc(radius):
    dy, dx = V.disc_offsets(radius)
    assert len(dy) == lattice_count(radius)
    assert np.all(dx**2 + dy**2 <= radius**2 + 1e-9)
    assert len(set(zip(dy.tolist(), dx.tolist()))) == len(dy)  # no pixel twice


def test_pack_and_unpack_argb_round_trip():
    rgb = np.array([[0, 0, 0], [255, 255, 255], [1, 2, 3], [200, 100, 50]], dtype=np.uint8)
    packed = V.pack_argb(rgb)
    assert packed.dtype == np.uint32 and int(packed[2]) == 0xFF010203
    np.testing.assert_array_equal(V.unpack_rgb(packed), rgb)
    np.testing.assert_array_equal(V.rim_colours(rgb), (rgb.astype(float) * V.RIM_SHADE).astype(np.uint8))


def test_one_point_is_a_filled_disc_inside_a_darker_rim():
    rgb = np.array([[200, 100, 50]], dtype=np.uint8)
    img = V.rasterise_points(np.array([[10.5, 7.5]]), rgb, radius=2.0, width=24, height=16)
    assert img.shape == (16, 24)
    fill, rim = int(V.pack_argb(rgb)[0]), int(V.pack_argb(V.rim_colours(rgb))[0])
    assert (img == fill).sum() == lattice_count(2.0)
    assert (img == rim).sum() == lattice_count(3.0) - lattice_count(2.0)
    assert img[7, 10] == fill and img[7, 13] == rim and img[7, 14] == 0  # centre pixel (row 7, column 10)
    assert (img != 0).sum() == lattice_count(3.0)


def test_the_point_drawn_last_is_on_top_and_points_off_the_image_are_skipped():
    xy = np.array([[3.0, 5.0], [7.0, 5.0], [-50.0, 3.0], [4.0, 400.0]])  # discs of the first two overlap at x = 5
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]], dtype=np.uint8)
    order = V.drawing_order(4, seed=0)
    img = V.rasterise_points(xy, rgb, radius=2.0, width=12, height=12, seed=0)
    first, second = (i for i in order if i in (0, 1))  # of the two overlapping points
    assert V.unpack_rgb(img[5:6, 5])[0].tolist() == rgb[second].tolist()  # overlap: the later one wins
    assert V.unpack_rgb(img[5:6, 7 if first == 1 else 3])[0].tolist() == rgb[first].tolist()  # its own centre
    assert int(V.pack_argb(rgb[2:3])[0]) not in img and int(V.pack_argb(rgb[3:4])[0]) not in img


def test_rasterise_reuses_a_buffer_of_the_right_size():
    order = np.arange(1)
    geo = V.splat_geometry(np.array([3.0]), np.array([3.0]), order, 1.0, 8, 8)
    fill = rim = V.pack_argb(np.array([[10, 20, 30]], dtype=np.uint8))
    buf = np.full(64, 7, dtype=np.uint32)
    out = V.rasterise(geo, fill, rim, out=buf)
    assert out is buf and (out == 7).sum() == 0 and (out != 0).sum() == lattice_count(2.0)


def test_posterior_colours_mix_the_component_colours():
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    resp = np.array([[1, 0, 0], [0, 0, 1], [0.5, 0.5, 0], [0.2, 0.3, 0.5]], dtype=np.float32)
    out = mix_colours(resp, colours, rounding="truncate")
    np.testing.assert_array_equal(out[:2], colours[[0, 2]])  # γ = e_k gives exactly colour k
    np.testing.assert_array_equal(out[2], [127, 127, 0])
    np.testing.assert_allclose(out[3], [51, 76, 127], atol=1)


# --- planes and projections -------------------------------------------------------------------


def test_dims_plane_moves_two_dimensions_and_keeps_the_others():
    z = np.linspace(-1, 1, 6)
    plane = V.dims_plane(z, 4, 1)
    w = plane.to_z(0.7, -0.2)
    expected = z.copy()
    expected[4], expected[1] = 0.7, -0.2
    np.testing.assert_allclose(w, expected, atol=1e-6)
    assert w.dtype == np.float32
    np.testing.assert_allclose(V.project_codes(w[None].astype(np.float64), 4, 1)[0], [0.7, -0.2], atol=1e-6)


def test_pca_plane_passes_through_z_and_projects_back_onto_the_view_point():
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((400, 5)) @ rng.standard_normal((5, 5))
    p = pca(torch.as_tensor(codes), 5)
    z = rng.standard_normal(5)
    plane = V.pca_plane(z, p, 0, 2)
    uv = V.project_codes(z[None], 0, 2, p)[0]
    np.testing.assert_allclose(plane.to_z(uv[0], uv[1]), z, atol=1e-5)  # z itself lies in its plane
    w = plane.to_z(1.3, -0.4).astype(np.float64)
    np.testing.assert_allclose(V.project_codes(w[None], 0, 2, p)[0], [1.3, -0.4], atol=1e-5)
    others = p.transform(torch.as_tensor(w[None]))[0].numpy()[[1, 3, 4]]
    np.testing.assert_allclose(others, p.transform(torch.as_tensor(z[None]))[0].numpy()[[1, 3, 4]], atol=1e-5)


def test_a_projection_refuses_codes_of_another_size():
    p = pca(torch.randn(50, 32), 10)
    with pytest.raises(ValueError, match="32-D"):
        V.project_codes(np.zeros((1, 2)), 0, 1, p)


def test_manifold_codes_and_tiles_put_the_top_left_tile_where_the_plot_shows_it():
    plane = V.dims_plane(np.zeros(2), 0, 1)
    z = V.manifold_codes(plane, (-2.0, 2.0), (-1.0, 3.0), 4)  # (4, 4, 2)
    assert z.shape == (4, 4, 2)
    np.testing.assert_allclose(z[0, :, 0], [-1.5, -0.5, 0.5, 1.5])  # columns left to right
    np.testing.assert_allclose(z[:, 0, 1], [2.5, 1.5, 0.5, -0.5])  # rows top to bottom
    images = np.arange(6, dtype=np.float32)[:, None].repeat(N_PIXELS, 1).reshape(2, 3, N_PIXELS)
    tiles = V.tile_manifold(images)
    assert tiles.shape == (2 * SIDE, 3 * SIDE) and tiles.flags["C_CONTIGUOUS"]
    # array row 0 is drawn at the bottom (y up): the top-left tile (image [0, 0]) is at the array's end
    assert tiles[-1, 0] == 0 and tiles[0, 0] == 3 and tiles[-1, -1] == 2 and tiles[0, -1] == 5


def test_fit_range_and_nearest_point():
    xy = np.stack([np.linspace(0, 10, 1001), np.linspace(-1, 1, 1001)], 1)
    (x0, x1), (y0, y1) = V.fit_range(xy, lo=0.0, hi=100.0, pad=0.1)
    assert (x0, x1) == pytest.approx((-1.0, 11.0)) and (y0, y1) == pytest.approx((-2.0, 2.0))
    assert V.nearest_point(xy, 5.004, 0.0, 0.01, 0.01, 1.0) == 500
    assert V.nearest_point(xy, 5.004, 0.5, 0.01, 0.01, 1.0) == -1  # 50 pixels away
    assert V.nearest_point(np.zeros((0, 2)), 0, 0, 1, 1, 6) == -1


# --- the heat map -----------------------------------------------------------------------------


def test_heat_image_of_a_gaussian_posterior():
    z1, z2 = np.linspace(-2, 2, 41), np.linspace(-1, 3, 41)
    lp = -0.5 * (z1[:, None] ** 2 + (z2[None, :] - 1) ** 2) - np.log(2 * np.pi)  # N((0, 1), I)
    h = V.heat_image(lp, z1, z2)
    assert h.levels == (0.0, 1.0) and h.image.dtype == np.float32 and h.image.shape == (41, 41)
    assert h.image[20, 20] == pytest.approx(1.0) and h.image.argmax() == 20 * 41 + 20
    np.testing.assert_allclose(h.image[:, 20], np.exp(-0.5 * z1**2), rtol=1e-6)
    assert h.rect == pytest.approx((-2.05, -1.05, 4.1, 4.1))  # cell edges, not centres
    g = V.heat_image(lp, z1, z2, log_scale=True)
    assert g.levels == (-V.LOG_HEAT_FLOOR, 0.0)
    assert g.image.min() >= -V.LOG_HEAT_FLOOR and g.image[20, 20] == 0.0
    np.testing.assert_allclose(g.image[:, 20], np.maximum(-0.5 * z1**2, -V.LOG_HEAT_FLOOR), atol=1e-6)


def test_sample_sizes_give_area_proportional_to_weight():
    assert V.sample_sizes(np.full(50, 1 / 50)) == pytest.approx(np.full(50, 9.0))
    w = np.array([0.01, 0.04, 0.95])
    s = V.sample_sizes(w, typical=9.0, lo=0.0, hi=1e9)
    np.testing.assert_allclose(s**2 / s[0] ** 2, w / w[0])
    assert V.sample_sizes(np.array([1.0, 0.0]), lo=2.0, hi=30.0).tolist() == [pytest.approx(9 * np.sqrt(2)), 2.0]


# --- core.latent_tasks --------------------------------------------------------------------------


def test_display_decodes_match_the_model():
    model = tiny_vae(3)
    z = np.array([0.3, -1.0, 2.0])
    with torch.no_grad():
        expected = model.decode_mean(torch.tensor(z, dtype=torch.float32)[None])[0].numpy()
    np.testing.assert_array_equal(T.decode_image(model, z), expected)
    a, b = T.ImageSampler(4)(model, z), T.ImageSampler(4)(model, z)
    np.testing.assert_array_equal(a, b)  # seeded
    assert set(np.unique(a)) <= {0.0, 1.0} and a.shape == (N_PIXELS,)
    x = torch.rand(1, N_PIXELS)
    loc, scale = T.encode_one(model, x)
    with torch.no_grad():
        l2, s2 = model.encode(x)
    np.testing.assert_allclose(loc, l2[0].numpy()) and np.testing.assert_allclose(scale, s2[0].numpy())
    assert loc.dtype == np.float64


def test_map_tasks_encode_and_decode_a_grid():
    model = tiny_vae(4)
    x = torch.rand(30, N_PIXELS)
    ctx = Ctx()
    res = T.encode_codes_task(ctx, model, x, batch_size=8)
    with torch.no_grad():
        mu = model.encode(x)[0].numpy()
    np.testing.assert_allclose(res.codes, mu, atol=1e-6)
    assert res.projection.n_components == 4 and ctx.reports
    z = np.zeros((2, 3, 4), dtype=np.float32)
    out = T.decode_grid_task(ctx, model, z)
    assert out.shape == (2, 3, N_PIXELS)
    np.testing.assert_allclose(out[1, 2], T.decode_image(model, z[1, 2]), atol=1e-6)


def test_traversal_images_and_interpolation_strip():
    model = tiny_vae(5)
    z = np.linspace(-1, 1, 5).astype(np.float32)
    grid = T.traversal_images(model, z, (3, 0), 2.0, 4)
    assert grid.codes.shape == (4, 4, 5) and grid.tiles.shape == (4 * (SIDE + 1) - 1, 4 * (SIDE + 1) - 1)
    np.testing.assert_allclose(grid.codes[0, :, 3].numpy(), np.linspace(-2, 2, 4), atol=1e-6)
    np.testing.assert_allclose(grid.codes[:, 0, 0].numpy(), np.linspace(2, -2, 4), atol=1e-6)
    one = T.traversal_images(model, z, (2,), 1.0, 3)
    assert one.codes.shape == (1, 3, 5)
    xa, xb = torch.rand(1, N_PIXELS), torch.rand(1, N_PIXELS)
    strip = T.interpolation_strip(model, xa, xb, 6, "linear", fill=0.25, spacer=8)
    # xa | gap | spacer | gap | 6 tiles with gaps | gap | spacer | gap | xb
    assert strip.shape == (SIDE, (6 + 2) * (SIDE + 1) - 1 + 2 * (8 + 1))
    np.testing.assert_allclose(strip[:, :SIDE], xa.reshape(SIDE, SIDE).numpy())
    np.testing.assert_allclose(strip[:, -SIDE:], xb.reshape(SIDE, SIDE).numpy())
    assert np.all(strip[:, SIDE : SIDE + 10] == 0.25)


def test_log_weight_histograms_count_every_sample():
    rng = np.random.default_rng(1)
    lw_p, lw_q = rng.normal(-50, 20, 1000), rng.normal(-2, 0.5, 1000)
    h = T.log_weight_histograms(lw_p, lw_q, bins=30)
    assert h.edges.shape == (31,) and h.edges[-1] == 0.0
    assert h.prior.sum() == 1000 and h.q.sum() == 1000
    assert h.edges[0] == pytest.approx(np.percentile(np.concatenate([lw_p, lw_q]) - max(lw_p.max(), lw_q.max()), 0.5))


def test_posterior_tasks_report_numbers_samples_and_an_optimised_q():
    model = tiny_vae(2)
    x = (torch.rand(1, N_PIXELS) > 0.7).float()
    loc, scale = T.encode_one(model, x)
    ctx = Ctx()
    grid = T.posterior_grid_task(ctx, model, x, loc, scale, 16, 9)
    assert grid.log_post.shape == (1, 16, 16) and ctx.reports[0][0] == 0.3  # the zoomed preview first
    log_px = float(grid.log_px[0])
    res = T.posterior_numbers_task(ctx, model, x, loc, scale, log_px, 50, 0, 20)
    assert res.z.shape == (20, 2) and res.w.sum() == pytest.approx(1.0, abs=1e-5)
    assert res.numbers.iw_k == 50 and res.numbers.kl_post == pytest.approx(log_px - res.numbers.elbo)
    opt = T.optimise_q_task(ctx, model, x, loc, scale, log_px, 50, 20)
    assert opt.loc.shape == (2,) and opt.elbo_trace.shape == (21,)
    assert opt.numbers.elbo >= res.numbers.elbo - 1e-3  # φ* is at least as good as the encoder
