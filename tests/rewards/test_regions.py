"""Region proposals (srum/rewards/regions.py): box math by hand, SAM on a tiny random SamModel, components on
ShapesWorld renders."""

import numpy as np
import pytest
import torch
from PIL import Image

from srum.config import ConfigError, RegionProposer, RegionsConfig
from srum.utils.boxes import box_iou, masks_to_boxes, nms
from srum.utils.pixels import label_components
from srum.worlds.shapes.regions import ComponentsProposer
from srum.rewards.regions import (
    Region,
    SamProposer,
    build_proposer,
    filter_regions,
    point_grid,
    stability_score,
)
from srum.worlds.shapes.grammar import CONTAINMENT, DEPTH, sample_spec
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.render import degrade, render
from srum.worlds.shapes.scene import BACKGROUND, Obj, Scene

# ---------------------------------------------------------------------------------------------------- box math


def test_box_iou_by_hand():
    a = torch.tensor([[0, 0, 2, 2], [0, 0, 0, 0]])
    b = torch.tensor([[1, 1, 3, 3], [0, 0, 2, 2]])
    # overlap 1×1, union 4 + 4 − 1 = 7; an empty box overlaps nothing
    expected = torch.tensor([[1 / 7, 1.0], [0.0, 0.0]])
    assert torch.allclose(box_iou(a, b), expected)


def test_nms_keeps_by_score_and_threshold():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # IoU(3, 0) = 90/100 = 0.9; IoU(3, 1) = 72/118 = 0.61; IoU(0, 1) = 81/119 = 0.68; box 2 overlaps nothing
    assert nms(boxes, scores, 0.7).tolist() == [3, 1, 2]  # 0 falls to 3; 1 survives 3 (0.61) and 0 is gone
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]  # now 1 falls to 3 as well
    assert nms(boxes, scores, 1.0).tolist() == [3, 0, 1, 2]  # nothing has IoU > 1
    assert nms(boxes[:0], scores[:0], 0.7).tolist() == []


def test_nms_ties_keep_the_earlier_index():
    boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4], [8, 8, 9, 9]], dtype=torch.float32)
    assert nms(boxes, torch.tensor([0.5, 0.5, 0.5]), 0.7).tolist() == [0, 2]


def test_masks_to_boxes_exclusive_and_empty():
    m = torch.zeros(2, 5, 6, dtype=torch.bool)
    m[0, 1:3, 2:5] = True  # rows 1-2, cols 2-4
    m[0, 4, 0] = True
    assert masks_to_boxes(m).tolist() == [[0, 1, 5, 5], [0, 0, 0, 0]]


def test_stability_score_by_hand():
    logits = torch.tensor([[2.0, 2.0, 0.5, -2.0],
                           [2.0, 0.5, -0.5, -2.0],
                           [0.5, -0.5, -2.0, -2.0],
                           [-2.0, -2.0, -2.0, -2.0]])
    # > +1: the three 2.0s; > −1: those, three 0.5s and two −0.5s = 8 → 3/8
    assert stability_score(logits, 0.0, 1.0).item() == pytest.approx(3 / 8)
    # offset 0.25: > 0.25 is 6 pixels, > −0.25 also 6 → 1
    assert stability_score(logits, 0.0, 0.25).item() == pytest.approx(1.0)
    batch = torch.stack([logits, torch.full((4, 4), -5.0)])[None]  # (1, 2, 4, 4); an empty mask scores 0
    assert stability_score(batch, 0.0, 1.0).tolist() == [[pytest.approx(3 / 8), 0.0]]


def test_point_grid_is_cell_centres_x_fastest():
    assert point_grid(2).tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    assert point_grid(32).shape == (1024, 2)


def _box_region(box, area):
    return Region(box_xyxy=box, mask=None, area=area)


def test_filter_regions_sorts_drops_small_dedups_and_caps():
    regions = [
        _box_region((0, 0, 4, 4), 10),  # a
        _box_region((0, 0, 10, 10), 90),  # b: largest
        _box_region((0, 0, 10, 9), 80),  # c: IoU with b = 0.9 → duplicate
        _box_region((20, 0, 30, 5), 40),  # d
        _box_region((40, 40, 41, 41), 1),  # e: tiny
        _box_region((50, 50, 55, 55), 25),  # f
    ]
    got = lambda **kw: [r.area for r in filter_regions(regions, **kw)]  # noqa: E731
    # official: sort by area and cut (NMS disabled at 1.0, no minimum)
    assert got(max_regions=10, min_area_frac=0.0, image_size=(100, 100), nms_thresh=1.0) == [90, 80, 40, 25, 10, 1]
    assert got(max_regions=3, min_area_frac=0.0, image_size=(100, 100), nms_thresh=1.0) == [90, 80, 40]
    # dedup at 0.7 drops c, so the top 3 reaches f
    assert got(max_regions=3, min_area_frac=0.0, image_size=(100, 100), nms_thresh=0.7) == [90, 40, 25]
    # min area 0.002 of 100×100 = 20 px drops a (10) and e (1); 0.0025 = 25 keeps f exactly
    assert got(max_regions=10, min_area_frac=0.0025, image_size=(100, 100), nms_thresh=0.7) == [90, 40, 25]
    assert filter_regions([], 10, 0.0, (8, 8), 0.7) == []


def test_min_area_frac_validated():
    assert RegionsConfig().min_area_frac == 0.0
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="regions.min_area_frac"):
            RegionsConfig(min_area_frac=bad)


# ---------------------------------------------------------------------------------------------------- SAM


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory) -> str:
    """A random SamModel whose sub-configs agree on every size (64 px input, 8×8 embeddings, 32 channels), saved
    with its processor so the proposer loads it by path."""
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    vision = SamVisionConfig(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2,
                             image_size=64, patch_size=8, window_size=4, global_attn_indexes=[1],
                             num_pos_feats=16, mlp_dim=64)  # 2·num_pos_feats = output_channels
    prompt = SamPromptEncoderConfig(hidden_size=32, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2,
                                   iou_head_hidden_dim=32)
    torch.manual_seed(0)
    model = SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder))
    processor = SamProcessor(image_processor=SamImageProcessorPil(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16}))
    path = tmp_path_factory.mktemp("tiny_sam")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def _open_cfg(**kw) -> RegionsConfig:
    """Thresholds at 0 so random weights still pass something."""
    base = dict(proposer=RegionProposer.sam, points_per_side=4, points_per_batch=5, pred_iou_thresh=0.0,
                stability_score_thresh=0.0, box_nms_thresh=0.7, max_regions=4)
    return RegionsConfig(**{**base, **kw})


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))]


def test_sam_proposer_shapes_order_limits_and_determinism(tiny_sam):
    proposer = build_proposer(_open_cfg(sam_path=tiny_sam))
    assert isinstance(proposer, SamProposer)
    images = _images()
    out = proposer.propose(images)
    assert len(out) == 2
    for regions, image in zip(out, images):
        w, h = image.size
        assert 1 <= len(regions) <= 4
        assert [r.area for r in regions] == sorted((r.area for r in regions), reverse=True)
        for r in regions:
            assert r.mask.shape == (h, w) and r.mask.dtype == bool
            assert r.area == int(r.mask.sum()) > 0
            ys, xs = np.nonzero(r.mask)
            assert r.box_xyxy == (xs.min(), ys.min(), xs.max(), ys.max())  # official: x2/y2 on the last pixel
            assert all(isinstance(v, int) for v in r.box_xyxy)
            assert isinstance(r.score, float)
        boxes = torch.tensor([r.box_xyxy for r in regions])
        iou = box_iou(boxes, boxes).fill_diagonal_(0)
        assert (iou <= 0.7).all()  # NMS held
    again = proposer.propose(images)
    for a, b in zip(out, again):
        assert [(r.box_xyxy, r.area, r.score) for r in a] == [(r.box_xyxy, r.area, r.score) for r in b]
        assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a, b))


def test_sam_proposer_iou_threshold_filters(tiny_sam):
    image = _images()[:1]
    scores = sorted(r.score for r in SamProposer(tiny_sam, _open_cfg(max_regions=100, box_nms_thresh=1.0))
                    .propose(image)[0])
    cut = scores[len(scores) // 2]
    kept = SamProposer(tiny_sam, _open_cfg(max_regions=100, box_nms_thresh=1.0, pred_iou_thresh=cut)).propose(image)[0]
    assert kept and all(r.score > cut for r in kept)  # strict, as segment_anything
    assert len(kept) < len(scores)


def test_sam_proposer_matches_processor_point_prompt(tiny_sam):
    """One grid point (the centre) with no filtering gives exactly the model's three masks for that point prompted
    through SamProcessor's own coordinate handling."""
    from transformers import SamModel, SamProcessor

    image = _images()[0]
    w, h = image.size
    cfg = _open_cfg(points_per_side=1, box_nms_thresh=1.0, max_regions=10)
    ours = SamProposer(tiny_sam, cfg).propose([image])[0]

    processor, model = SamProcessor.from_pretrained(tiny_sam), SamModel.from_pretrained(tiny_sam).eval()
    enc = processor(images=image, input_points=[[[w / 2, h / 2]]], return_tensors="pt")
    with torch.no_grad():
        out = model(**{k: v for k, v in enc.items() if k in ("pixel_values", "input_points")}, multimask_output=True)
    masks = processor.post_process_masks(out.pred_masks, enc["original_sizes"], enc["reshaped_input_sizes"])[0][0]
    ref = sorted((m.numpy() for m in masks if m.any()), key=lambda m: -int(m.sum()))
    assert ref and len(ours) == len(ref)
    for r, m in zip(ours, ref):
        assert np.array_equal(r.mask, m)


def test_sam_missing_folder_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="regions.sam_path"):
        SamProposer(str(tmp_path / "nope"), _open_cfg(), "cpu", torch.float32)
    with pytest.raises(ValueError, match="regions.sam_path"):
        build_proposer(RegionsConfig(proposer=RegionProposer.sam))


# ---------------------------------------------------------------------------------------------------- components


def test_label_components_by_hand():
    g = np.array([[0, 0, 0, -1, 1],
                  [0, -1, 0, -1, 1],
                  [0, -1, 0, 2, -1],
                  [-1, -1, 0, 2, 1]])
    labels, n = label_components(g)
    # the U of 0s is one component (joined along the top); the two 1s-clusters are apart; 2 touches 0 and 1 but
    # is its own value; the diagonal 1 at (3, 4) is not 4-connected to (1, 4)
    assert n == 4
    assert labels.tolist() == [[0, 0, 0, -1, 1],
                               [0, -1, 0, -1, 1],
                               [0, -1, 0, 2, -1],
                               [-1, -1, 0, 2, 3]]


def _components() -> ComponentsProposer:
    return build_proposer(RegionsConfig(proposer=RegionProposer.world, box_end="exclusive"), world="shapes")


def _true_box(obj: Obj, size: int) -> np.ndarray:
    """Every pixel the object touches when rendered alone on the background."""
    alone = np.asarray(render(Scene((obj,), BACKGROUND), size), dtype=np.int16)
    empty = np.asarray(render(Scene((), BACKGROUND), size), dtype=np.int16)
    ys, xs = np.nonzero(np.abs(alone - empty).max(axis=2) > 0)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def _separated_scenes(n: int, seed: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    scenes = []
    while len(scenes) < n:
        spec = sample_spec(("color", "shape", "texture", "spatial", "numeracy")[len(scenes) % 5], rng)
        if spec.relation in DEPTH + CONTAINMENT:
            continue
        scene = sample_scene(spec, rng)
        if 2 <= len(scene.objects) <= 3:
            scenes.append(scene)
    return scenes


def test_components_one_region_per_object_clean_and_degraded():
    proposer = _components()
    rng = np.random.default_rng(1)
    for scene in _separated_scenes(10, seed=0):
        truth = np.stack([_true_box(o, 64) for o in scene.objects])
        clean = render(scene, 64)
        # measured on 299 scenes: ≤ 1 px clean, ≤ 3 px after blur σ=1 + noise
        for image, tol in ((clean, 1), (degrade(clean, rng), 3)):
            regions = proposer.propose([image])[0]
            assert len(regions) == len(scene.objects), scene
            boxes = np.array([r.box_xyxy for r in regions])
            err = np.abs(boxes[:, None] - truth[None]).max(axis=2)  # (regions, objects)
            assert sorted(err.argmin(axis=1).tolist()) == list(range(len(truth)))  # a distinct object each
            assert err.min(axis=1).max() <= tol
            for r in regions:
                assert r.mask.shape == (64, 64) and r.area == int(r.mask.sum()) and r.score is None


def test_components_split_touching_colours_and_keep_textures_whole():
    proposer = _components()
    touching = Scene((Obj("square", "red", "striped", size=0.34, x=0.33, y=0.5, depth=1.0),
                      Obj("circle", "blue", "dotted", size=0.3, x=0.61, y=0.5, depth=0.0)), BACKGROUND)
    rng = np.random.default_rng(2)
    for image in (render(touching, 64), degrade(render(touching, 64), rng)):
        regions = proposer.propose([image])[0]
        assert len(regions) == 2
        assert regions[0].box_xyxy[0] < regions[1].box_xyxy[0]  # the square is larger and on the left
        assert not (regions[0].mask & regions[1].mask).any()
    assert proposer.propose([Image.new("RGB", (32, 32), (240, 240, 235))]) == [[]]


def test_components_respects_max_regions_and_min_area():
    scene = Scene((Obj("circle", "red", size=0.4, x=0.3, y=0.3), Obj("square", "green", size=0.2, x=0.75, y=0.75),
                   Obj("triangle", "blue", size=0.15, x=0.25, y=0.78)), BACKGROUND)
    image = render(scene, 64)
    all_three = _components().propose([image])[0]
    assert len(all_three) == 3 and all_three[0].area > all_three[1].area > all_three[2].area
    top1 = ComponentsProposer(RegionsConfig(proposer=RegionProposer.world, max_regions=1,
                                            box_end="exclusive")).propose([image])[0]
    assert [r.box_xyxy for r in top1] == [all_three[0].box_xyxy]
    frac = (all_three[2].area + 1) / 64 ** 2  # just above the smallest
    big = ComponentsProposer(RegionsConfig(proposer=RegionProposer.world, min_area_frac=frac)).propose([image])
    assert [r.area for r in big[0]] == [r.area for r in all_three[:2]]


def test_box_end_official_is_the_last_pixel_and_exclusive_one_past_it():
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    image.paste((220, 30, 30), (10, 20, 30, 44))  # pixels x 10..29, y 20..43
    ends = {}
    for box_end in ("official", "exclusive"):
        [regions] = build_proposer(RegionsConfig(proposer=RegionProposer.world, box_end=box_end),
                                   world="shapes").propose([image])
        ends[box_end] = regions[0].box_xyxy
    assert ends["exclusive"] == (9, 19, 31, 45)  # the 3×3 box filter spreads the square by a pixel each side
    assert ends["official"] == (9, 19, 30, 44)
    with pytest.raises(ConfigError, match="regions.box_end='last'"):
        RegionsConfig(box_end="last")
