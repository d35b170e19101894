"""core.tour: the shipped lecture tour loads, every malformed tour is one clear line, predictions are scored."""

import copy
import json

import pytest

from lvm_studio.core import tour as T
from lvm_studio.core.tour_reveals import REVEALS

PANELS = {"latent_sliders", "em_playground", "digit_clusters", "latent_map", "inpainting", "estimator_lab"} | {
    "pixel_latents",
    "curves",
    "posterior",
    "lecture_vi_1d",
    "training",
}


@pytest.fixture(scope="module")
def raw():
    return json.loads(T.default_tour_path().read_text(encoding="utf-8"))


def test_the_shipped_tour_has_the_lectures_fourteen_steps_in_order(raw):
    tour = T.load_tour(panels=PANELS)
    assert tour.title == "Variational Autoencoder I"
    assert len(tour.steps) == 14
    computes = [s.reveal.compute for s in tour.steps]
    assert computes == [
        "factor_of_variation",
        "mixture_sampling",
        "em_iterations",
        "digit_clusters",
        "mixture_density",
        "infinite_mixture",
        "partial_observation",
        "estimator_lab",
        "importance_bias",
        "elbo_gap",
        "tight_bound",
        "pick_phi",
        "pixel_latents",
        "train_together",
    ]
    models = [s.setup.model for s in tour.steps]
    assert models[0] == "vae32" and models[5] == "vae2" and models[-1] == "new"
    for s in tour.steps:
        assert s.question.answer in REVEALS[s.reveal.compute].outputs  # computed, never written in the file
        assert s.text and s.question.prompt


def _broken(raw, edit):
    r = copy.deepcopy(raw)
    edit(r)
    return r


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(format="slides"), '"format" must be "lvm-studio-tour"'),
        (lambda r: r.update(steps=[]), '"steps" must be a non-empty list'),
        (lambda r: r["steps"][1].update(id=r["steps"][0]["id"]), "used twice"),
        (lambda r: r["steps"][0]["reveal"].update(compute="magic"), "unknown computation 'magic'"),
        (lambda r: r["steps"][0]["reveal"]["args"].update(k=3), "factor_of_variation takes no argument 'k'"),
        (lambda r: r["steps"][0]["question"].update(answer="42"), "the answer '42' is not a value"),
        (lambda r: r["steps"][0]["reveal"].update(explain="{nothing:.2f}"), "{nothing} is not computed"),
        (lambda r: r["steps"][0]["setup"].update(panel="nowhere"), "unknown panel 'nowhere'"),
        (lambda r: r["steps"][0]["setup"].update(model="vae7"), "unknown model 'vae7'"),
        (lambda r: r["steps"][0]["reveal"].update(seed=-1), '"seed" must be an integer'),
        (lambda r: r["steps"][1]["question"].update(tolerance=0), '"tolerance" must be positive'),
        (lambda r: r["steps"][0]["question"].update(options=[{"id": "a", "label": "A"}]), "at least two"),
        (lambda r: r["steps"][0]["setup"].update(model="new"), "needs a trained model"),
    ],
)
def test_a_malformed_tour_is_one_line_naming_the_step_and_field(raw, edit, message):
    with pytest.raises(T.TourError) as e:
        T.parse_tour(_broken(raw, edit), "mine.json", PANELS)
    text = str(e.value)
    assert message in text
    assert "\n" not in text and text.startswith("mine.json")


def test_unreadable_files_are_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "lvm-studio-tour",\n "steps": [,]}', encoding="utf-8")
    with pytest.raises(T.TourError, match=r"bad.json: not valid JSON \(line 2, column"):
        T.load_tour(bad)
    with pytest.raises(T.TourError, match="cannot be read"):
        T.load_tour(tmp_path / "missing.json")


def test_predictions_are_scored_against_the_computed_answer():
    tour = T.load_tour(panels=PANELS)
    choice = tour.steps[tour.index_of("pick-phi")].question
    right = T.score(choice, "a", {"answer": "a"})
    wrong = T.score(choice, "b", {"answer": "a"})
    assert right.correct and not wrong.correct
    assert "N(2, 2)" in wrong.text and "N(−4, 0.75²)" in wrong.text
    assert not T.score(choice, None, {"answer": "a"}).correct
    slider = tour.steps[tour.index_of("elbo")].question  # tolerance 1.5 nats
    assert T.score(slider, 6.0, {"gap": 5.0}).correct
    far = T.score(slider, 9.0, {"gap": 5.0})
    assert not far.correct and "off by 4" in far.text
    step = tour.steps[tour.index_of("elbo")]
    text = T.explain(
        step.reveal, {"gap": 5.0, "elbo": -104.0, "log_px": -99.0, "entropy": -1.0, "expected_log_joint": -103.0}
    )
    assert "5.00 nats" in text
