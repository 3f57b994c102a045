"""Prominence detectors: OWLv2, Grounding DINO and SAM plumbing on tiny models built here; colour on drawn shapes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers
from PIL import Image, ImageDraw
from torch import nn
from transformers import (
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoImageProcessor,
    GroundingDinoProcessor,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
    Owlv2Processor,
    SamConfig,
    SamImageProcessor,
    SamModel,
    SamProcessor,
    SwinConfig,
)

from debias_diffusion.errors import DetectorError, ModelNotFoundError
from debias_diffusion.prominence import Detector, ObjectMeasurement
from debias_diffusion.prominence.detectors import (
    DEFAULT_PALETTE,
    DETECTOR_NAMES,
    ColourDetector,
    GroundingDinoDetector,
    Owlv2Detector,
    SamMasker,
    get_detector,
)
from debias_diffusion.tokenization import build_clip_tokenizer

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SIZES = [(60, 30), (40, 40), (24, 48), (50, 35), (33, 33)]  # (width, height), square and not
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "cat", "black", "dog", "red", "cube", "blue"]


def noise_images(sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def assert_same_measurements(first, second):
    assert [[m.label for m in image] for image in first] == [[m.label for m in image] for image in second]
    for image_a, image_b in zip(first, second, strict=True):
        for a, b in zip(image_a, image_b, strict=True):
            assert a.present == b.present
            assert a.score == pytest.approx(b.score, abs=1e-5)
            if a.box is None:
                assert b.box is None
            else:
                assert a.box == pytest.approx(b.box, abs=1e-3)


def assert_consistent(measurement: ObjectMeasurement, image: Image.Image):
    width, height = image.size
    if not measurement.present:
        assert (measurement.score, measurement.box, measurement.box_area) == (0.0, None, 0.0)
        return
    x0, y0, x1, y1 = measurement.box
    assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
    assert measurement.box_area == pytest.approx((x1 - x0) * (y1 - y0) / (width * height))
    assert 0 <= measurement.score <= 1


# --- tiny models, built offline ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def owl_parts():
    torch.manual_seed(0)
    config = Owlv2Config(
        text_config=dict(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=16
        ),
        vision_config=dict(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=build_clip_tokenizer(context_length=16),
    )
    return Owlv2ForObjectDetection(config).eval(), processor


@pytest.fixture(scope="module")
def gdino_parts(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("bert") / "vocab.txt"
    vocab.write_text("\n".join(BERT_VOCAB) + "\n")
    # positional: transformers 5 names the argument `vocab` and would silently ignore `vocab_file=`
    tokenizer = getattr(transformers, "BertTokenizerFast", transformers.BertTokenizer)(str(vocab))
    assert tokenizer("black cat.")["input_ids"] == [2, 8, 7, 5, 3]
    torch.manual_seed(0)
    config = GroundingDinoConfig(
        d_model=32,  # its GroupNorm uses 32 groups
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        num_queries=12,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
        backbone_config=SwinConfig(
            window_size=7,
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            image_size=64,
            out_indices=[2, 3, 4],
        ),
        text_config=dict(
            model_type="bert",
            vocab_size=len(BERT_VOCAB),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=32,
        ),
    )
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 72, "longest_edge": 128}),
        tokenizer=tokenizer,
    )
    return GroundingDinoForObjectDetection(config).eval(), processor


@pytest.fixture(scope="module")
def sam_parts():
    torch.manual_seed(0)
    config = SamConfig(
        vision_config=dict(
            hidden_size=16,
            output_channels=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=64,
            patch_size=8,
            window_size=4,
            global_attn_indexes=[1],
            num_pos_feats=8,
            mlp_dim=32,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16
        ),
    )
    processor = SamProcessor(
        image_processor=SamImageProcessor(
            size={"longest_edge": 64},
            pad_size={"height": 64, "width": 64},
            mask_size={"longest_edge": 16},
            mask_pad_size={"height": 16, "width": 16},
        )
    )
    return SamModel(config).eval(), processor


@pytest.fixture
def owl(owl_parts):
    return lambda **options: Owlv2Detector.from_components(*owl_parts, **options)


@pytest.fixture
def gdino(gdino_parts):
    return lambda **options: GroundingDinoDetector.from_components(*gdino_parts, **options)


class FixedOutputs(nn.Module):
    """Stands in for a detection model: returns the given logits / boxes whatever the input."""

    def __init__(self, logits, boxes, **config):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.logits, self.boxes = torch.tensor(logits), torch.tensor(boxes)
        self.config = SimpleNamespace(**config)

    def forward(self, **inputs):
        batch = len(inputs["pixel_values"])
        return SimpleNamespace(logits=self.logits.expand(batch, -1, -1), pred_boxes=self.boxes.expand(batch, -1, -1))


# --- registry and inputs -------------------------------------------------------------------------------------


def test_registry_builds_each_detector_by_name_without_loading_weights():
    assert DETECTOR_NAMES == ("owlv2", "grounding-dino", "colour")
    owl = get_detector("owlv2", threshold=0.1)
    assert isinstance(owl, Owlv2Detector) and owl.settings()["threshold"] == 0.1
    assert owl.settings()["model"] == "google/owlv2-base-patch16-ensemble"
    dino = get_detector("grounding-dino")
    assert (dino.settings()["box_threshold"], dino.settings()["text_threshold"]) == (0.3, 0.25)
    assert isinstance(get_detector("color", min_area=0.01), ColourDetector)
    for detector in (owl, dino, get_detector("colour")):
        assert isinstance(detector, Detector)


def test_unknown_detector_name_lists_the_known_ones():
    with pytest.raises(DetectorError, match="owlv2, grounding-dino, colour") as info:
        get_detector("yolo")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        ([Image.new("RGB", (8, 8))], [["red"], ["blue"]], "1 images but 2 label lists"),
        ([Image.new("RGB", (8, 8))], ["red cube"], "pass a list of labels per image"),
        ([Image.new("RGB", (8, 8))], [["red", " "]], "non-empty string"),
        (Image.new("RGB", (8, 8)), [["red"]], "not a single image"),
        ([np.zeros((8, 8, 3))], [["red"]], "not a PIL image"),
    ],
)
def test_bad_inputs_are_refused(images, labels, message):
    with pytest.raises(DetectorError, match=message):
        ColourDetector().measure(images, labels)


@pytest.mark.parametrize("cls", [Owlv2Detector, GroundingDinoDetector, SamMasker])
def test_missing_hub_model_offline_raises_clear_error(cls, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set.*hf download debias-test/no-such-model"):
        cls("debias-test/no-such-model").load()


# --- OWLv2 ---------------------------------------------------------------------------------------------------


def test_owlv2_gives_one_measurement_per_label_in_order(owl):
    images = noise_images()[:3]
    labels = [["red cube", "blue sphere", "cat"], [], ["dog"]]
    results = owl(threshold=0.0).measure(images, labels)
    assert [[m.label for m in image] for image in results] == labels
    for image, measurements in zip(images, results, strict=True):
        for measurement in measurements:
            assert measurement.present and measurement.mask_area is None
            assert_consistent(measurement, image)


def test_owlv2_results_do_not_depend_on_batch_size_or_other_labels(owl):
    images = noise_images()
    labels = [["red cube", "dog"], ["cat"], ["blue sphere", "cat", "dog"], ["dog"], ["cat", "red cube"]]
    one = owl(threshold=0.0, batch_size=1).measure(images, labels)
    assert_same_measurements(one, owl(threshold=0.0, batch_size=4).measure(images, labels))
    alone = owl(threshold=0.0).measure(images[2:3], [["cat"]])[0][0]
    assert_same_measurements([[alone]], [[one[2][1]]])  # OWLv2 scores each query on its own


def test_owlv2_threshold_is_respected(owl):
    images, labels = noise_images()[:2], [["cat", "dog"], ["red cube"]]
    scores = [m.score for image in owl(threshold=0.0).measure(images, labels) for m in image]
    middle = float(np.median(scores))
    for image in owl(threshold=middle).measure(images, labels):
        for m in image:
            assert m.present == (m.score >= middle)
    for image in owl(threshold=1.01).measure(images, labels):
        for m in image:
            assert (m.present, m.score, m.box, m.box_area, m.mask_area) == (False, 0.0, None, 0.0, None)


def test_owlv2_boxes_match_transformers_post_processing_on_non_square_images(owl, owl_parts):
    model, processor = owl_parts
    images = noise_images([(60, 30), (24, 48)])
    results = owl(threshold=0.0).measure(images, [["cat"], ["cat"]])
    for image, (measurement,) in zip(images, results, strict=True):
        inputs = processor(text=[["a photo of a cat"]], images=[image], return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        width, height = image.size
        expected = processor.post_process_grounded_object_detection(
            outputs, threshold=0.0, target_sizes=[(height, width)]
        )[0]
        boxes, scores = expected["boxes"].numpy(), expected["scores"].numpy()
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = (centres[:, 0] <= width) & (centres[:, 1] <= height)
        top = int(np.where(inside, scores, -1).argmax())
        clipped = np.clip(boxes[top], 0, [width, height, width, height])
        assert measurement.score == pytest.approx(float(scores[top]), abs=1e-6)
        assert measurement.box == pytest.approx(tuple(clipped.tolist()), abs=1e-3)


def test_owlv2_maps_boxes_from_the_padded_square_to_the_image(owl_parts):
    _, processor = owl_parts
    image = Image.new("RGB", (200, 100), (90, 140, 200))
    padded = processor.image_processor(image, return_tensors="pt")["pixel_values"][0]  # (3, 32, 32)
    mean, std = (
        torch.tensor(v)[:, None, None]
        for v in (processor.image_processor.image_mean, processor.image_processor.image_std)
    )
    colour = torch.tensor([90, 140, 200])[:, None, None] / 255
    # the 200 x 100 image fills the top half of the square; the bottom half is (black) padding
    torch.testing.assert_close(padded[:, :15], ((colour - mean) / std).expand(3, 15, 32), atol=1e-4, rtol=0)
    torch.testing.assert_close(padded[:, 17:], ((0 - mean) / std).expand(3, 15, 32), atol=1e-4, rtol=0)
    boxes = [
        [0.5, 0.25, 0.2, 0.1],  # (100, 50) 40 x 20 in the 200-px square -> (80, 40, 120, 60)
        [0.5, 0.75, 0.2, 0.1],  # centred in the bottom padding: ignored though it scores highest for "cat"
        [0.95, 0.1, 0.2, 0.1],  # runs off the right edge: (170, 10, 210, 30) clipped to x <= 200
    ]
    logits = [[[2.0, -3.0], [5.0, -3.0], [-3.0, 1.0]]]  # (boxes, queries): "cat", "dog"
    detector = Owlv2Detector.from_components(FixedOutputs(logits, [boxes]), processor, threshold=0.5)
    cat, dog = detector.measure([image], [["cat", "dog"]])[0]
    assert cat.box == pytest.approx((80, 40, 120, 60)) and cat.score == pytest.approx(1 / (1 + math.exp(-2)))
    assert cat.box_area == pytest.approx(40 * 20 / (200 * 100))
    assert dog.box == pytest.approx((170, 10, 200, 30)) and dog.box_area == pytest.approx(30 * 20 / 20000)


def test_owlv2_loads_a_saved_model_folder_with_from_pretrained(owl_parts, owl, tmp_path):
    model, processor = owl_parts
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    images, labels = noise_images()[:2], [["cat"], ["dog", "cat"]]
    loaded = Owlv2Detector(str(tmp_path), threshold=0.0)
    assert loaded.settings()["model"] == str(tmp_path)
    assert_same_measurements(loaded.measure(images, labels), owl(threshold=0.0).measure(images, labels))


def test_owlv2_refuses_queries_longer_than_its_text_model(owl):
    with pytest.raises(DetectorError, match="more than the model's 16"):
        owl().measure(noise_images()[:1], [["very " * 20 + "red cube"]])


def test_owlv2_settings_record_what_changes_measurements(owl, sam_parts):
    settings = owl(threshold=0.4, query_template="{label}", masks=SamMasker.from_components(*sam_parts)).settings()
    assert settings["backend"] == "owlv2" and settings["threshold"] == 0.4 and settings["query_template"] == "{label}"
    assert settings["masks"]["backend"] == "sam"
    with pytest.raises(DetectorError, match="must contain"):
        Owlv2Detector(query_template="a photo of a thing")


# --- SAM masks -----------------------------------------------------------------------------------------------


def test_sam_masker_gives_one_image_sized_boolean_mask_per_box(sam_parts):
    masker = SamMasker.from_components(*sam_parts)
    image = noise_images([(60, 30)])[0]
    masks = masker.masks(image, [(5, 5, 30, 20), (0, 0, 60, 30)])
    assert len(masks) == 2
    for mask in masks:
        assert mask.shape == (30, 60) and mask.dtype == bool
    assert masker.masks(image, []) == []


def test_detectors_with_a_masker_fill_mask_area(owl, gdino, sam_parts):
    masker = SamMasker.from_components(*sam_parts)
    images = noise_images()[:2]
    for detector in (owl(threshold=0.0, masks=masker), gdino(box_threshold=0.0, text_threshold=0.0, masks=masker)):
        results = detector.measure(images, [["cat"], ["dog"]])
        for image, (measurement,) in zip(images, results, strict=True):
            assert measurement.present and 0.0 <= measurement.mask_area <= 1.0
            expected = masker.masks(image, [measurement.box])[0].mean()
            assert measurement.mask_area == pytest.approx(expected)
            assert measurement.area == measurement.mask_area
    absent = owl(threshold=1.01, masks=masker).measure(images[:1], [["cat"]])[0][0]
    assert (absent.present, absent.mask_area) == (False, 0.0)


# --- Grounding DINO ------------------------------------------------------------------------------------------


def test_grounding_dino_gives_one_measurement_per_label_in_order(gdino):
    images = noise_images()[:3]
    labels = [["red cube", "Black Cat", "dog"], [], ["cat"]]
    results = gdino(box_threshold=0.0, text_threshold=0.0).measure(images, labels)
    assert [[m.label for m in image] for image in results] == labels
    for image, measurements in zip(images, results, strict=True):
        for measurement in measurements:
            assert_consistent(measurement, image)
    assert results[2][0].present  # a lone label owns every box at zero thresholds


def test_grounding_dino_results_do_not_depend_on_batch_size(gdino):
    images = noise_images([(48, 40), (60, 30), (48, 40), (48, 40), (60, 30)])
    labels = [["cat", "dog"], ["red cube"], ["blue cube", "cat"], ["dog"], ["black cat", "cat"]]
    assert_same_measurements(
        gdino(box_threshold=0.0, text_threshold=0.0, batch_size=1).measure(images, labels),
        gdino(box_threshold=0.0, text_threshold=0.0, batch_size=4).measure(images, labels),
    )


def test_grounding_dino_thresholds_are_respected(gdino):
    images, labels = noise_images()[:2], [["cat"], ["dog"]]
    for image in gdino(box_threshold=1.01).measure(images, labels):
        for m in image:
            assert (m.present, m.score, m.box, m.box_area, m.mask_area) == (False, 0.0, None, 0.0, None)
    for image in gdino(box_threshold=0.0, text_threshold=1.01).measure(images, labels):
        assert not any(m.present for m in image)  # no token reaches the text threshold: no phrase, no label


def test_grounding_dino_boxes_match_transformers_post_processing_on_non_square_images(gdino, gdino_parts):
    model, processor = gdino_parts
    images = noise_images([(60, 30), (24, 48)])
    results = gdino(box_threshold=0.0, text_threshold=0.0).measure(images, [["dog"], ["dog"]])
    for image, (measurement,) in zip(images, results, strict=True):
        inputs = processor(images=[image], text=["dog."], return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        width, height = image.size
        expected = processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=[(height, width)]
        )[0]
        dog_scores = torch.sigmoid(outputs.logits[0, :, 1]).numpy()  # "dog" is token 1 after [CLS]
        top = int(dog_scores.argmax())
        clipped = np.clip(expected["boxes"][top].numpy(), 0, [width, height, width, height])
        assert measurement.score == pytest.approx(float(dog_scores[top]), abs=1e-6)
        assert measurement.box == pytest.approx(tuple(clipped.tolist()), abs=1e-3)


def stub_dino(gdino_parts, token_probs, boxes, **options):
    """A Grounding DINO whose boxes have the given probabilities on the tokens of "cat. black cat."."""
    logits = torch.full((1, len(token_probs), 32), -float("inf"))
    logits[0, :, :7] = torch.logit(torch.tensor(token_probs, dtype=torch.float32).clamp(1e-6, 1 - 1e-6))
    model = FixedOutputs(logits[0].tolist(), [boxes], max_text_len=32)
    return GroundingDinoDetector.from_components(model, gdino_parts[1], **options)


def test_grounding_dino_maps_phrases_to_labels_by_token_position(gdino_parts):
    # tokens of "cat. black cat.": [CLS] cat . black cat . [SEP]
    probs = [
        [0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0],  # A: "cat" -> cat
        [0.0, 0.0, 0.0, 0.7, 0.8, 0.0, 0.0],  # B: "black cat" -> black cat, though it contains the word "cat"
        [0.0, 0.5, 0.0, 0.1, 0.6, 0.0, 0.0],  # C: all of "cat", part of "black cat" -> cat (exact span first)
        [0.0, 0.0, 0.95, 0.0, 0.0, 0.95, 0.0],  # D: only the separators -> no label
    ]
    boxes = [[0.25, 0.5, 0.1, 0.2], [0.5, 0.5, 0.2, 0.4], [0.75, 0.5, 0.1, 0.1], [0.5, 0.5, 0.9, 0.9]]
    image = Image.new("RGB", (60, 30))
    detector = stub_dino(gdino_parts, probs, boxes)
    cat, black_cat, cat_again = detector.measure([image], [["cat", "Black cat", "CAT"]])[0]
    assert cat.score == pytest.approx(0.9) and cat.box == pytest.approx((12, 12, 18, 18))
    assert black_cat.score == pytest.approx(0.8) and black_cat.box == pytest.approx((24, 9, 36, 21))
    assert (cat_again.label, cat_again.score, cat_again.box) == ("CAT", cat.score, cat.box)

    only_c = stub_dino(gdino_parts, probs[2:], boxes[2:]).measure([image], [["cat", "black cat"]])[0]
    assert only_c[0].present and only_c[0].score == pytest.approx(0.5)
    assert not only_c[1].present
    strict = stub_dino(gdino_parts, probs, boxes, box_threshold=0.85).measure([image], [["cat", "black cat"]])[0]
    assert strict[0].score == pytest.approx(0.9) and not strict[1].present  # B's best token is 0.8 < 0.85


def test_grounding_dino_and_sam_load_saved_model_folders_with_from_pretrained(gdino_parts, sam_parts, gdino, tmp_path):
    for name, (model, processor) in {"dino": gdino_parts, "sam": sam_parts}.items():
        model.save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
    images, labels = noise_images()[:2], [["cat"], ["black cat", "dog"]]
    masker = SamMasker(str(tmp_path / "sam"))
    loaded = GroundingDinoDetector(str(tmp_path / "dino"), 0.0, 0.0, masks=masker).measure(images, labels)
    built = gdino(box_threshold=0.0, text_threshold=0.0, masks=SamMasker.from_components(*sam_parts))
    assert_same_measurements(loaded, built.measure(images, labels))
    assert [m.mask_area for image in loaded for m in image] == pytest.approx(
        [m.mask_area for image in built.measure(images, labels) for m in image]
    )


def test_grounding_dino_refuses_labels_with_phrase_breaks(gdino):
    with pytest.raises(DetectorError, match="phrase break"):
        gdino().measure(noise_images()[:1], [["cat. dog"]])


def test_grounding_dino_refuses_prompts_longer_than_its_text_model(gdino):
    with pytest.raises(DetectorError, match="more than the model's 32"):
        gdino().measure(noise_images()[:1], [[f"{first} {second}" for first in BERT_VOCAB[6:] for second in "ab"]])


# --- colour --------------------------------------------------------------------------------------------------

SCALE = 4  # shapes are drawn at 4x and box-downsampled: anti-aliased edges with exact coverage


def draw_scene(size, shapes, background=(255, 255, 255)):
    """The scene and each shape's visible area in output pixels, counted on the 4x drawing."""
    big = Image.new("RGB", (size[0] * SCALE, size[1] * SCALE), background)
    draw = ImageDraw.Draw(big)
    for kind, colour, xy in shapes:
        if kind == "polygon":
            draw.polygon([(x * SCALE, y * SCALE) for x, y in xy], fill=DEFAULT_PALETTE[colour])
        else:  # PIL boxes include their end pixel
            x0, y0, x1, y1 = (round(v * SCALE) for v in xy)
            getattr(draw, kind)((x0, y0, x1 - 1, y1 - 1), fill=DEFAULT_PALETTE[colour])
    pixels = np.asarray(big)
    truth = {colour: (pixels == DEFAULT_PALETTE[colour]).all(-1).sum() / SCALE**2 for _, colour, _ in shapes}
    return big.resize(size, Image.Resampling.BOX), truth


def with_noise(image, amplitude, seed=0):
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image).astype(int) + rng.integers(-amplitude, amplitude + 1, (image.height, image.width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_colour_square_on_the_pixel_grid_is_measured_exactly():
    image, _ = draw_scene((64, 64), [("rectangle", "red", (10, 10, 30, 30))])
    (square,) = ColourDetector().measure([image], [["red square"]])[0]
    assert square.present and square.score == 1.0
    assert square.box == (10, 10, 30, 30)
    assert square.mask_area == square.box_area == 400 / 4096


def test_colour_areas_of_anti_aliased_shapes_match_the_drawing():
    shapes = [
        ("ellipse", "blue", (35.5, 30.25, 55.5, 50.25)),  # disc, r = 10, off the pixel grid
        ("polygon", "green", [(5, 60), (25, 60), (15, 40.5)]),
        ("rectangle", "purple", (40.25, 4.75, 60.5, 20.5)),
    ]
    perimeters = {"blue": 2 * math.pi * 10, "green": 20 + 2 * math.hypot(10, 19.5), "purple": 2 * (20.25 + 15.75)}
    image, truth = draw_scene((64, 64), shapes)
    results = ColourDetector().measure([image], [["a blue disc", "green triangle", "purple box"]])[0]
    for (_, colour, _), measurement in zip(shapes, results, strict=True):
        # A pixel counts when the shape covers over half of it: each boundary pixel is off by under one pixel,
        # with errors of both signs; half a pixel per pixel of perimeter bounds the total with room to spare.
        assert measurement.present
        assert abs(measurement.mask_area * 4096 - truth[colour]) <= 0.5 * perimeters[colour]
        assert 0.9 < measurement.score <= 1.0
        assert_consistent(measurement, image)


def test_colour_absent_colour_is_not_present():
    image, _ = draw_scene((64, 64), [("rectangle", "red", (10, 10, 30, 30))])
    (yellow,) = ColourDetector().measure([image], [["yellow cube"]])[0]
    assert (yellow.present, yellow.score, yellow.box, yellow.box_area, yellow.mask_area) == (False, 0.0, None, 0, 0)


def test_colour_overlapping_shapes_keep_their_visible_parts_and_no_seam_colour():
    shapes = [("rectangle", "red", (10.5, 10.25, 40.5, 40.25)), ("rectangle", "yellow", (25.25, 25.5, 55.25, 55.5))]
    image, truth = draw_scene((64, 64), shapes)
    pixels = np.asarray(image).astype(float)
    seam = np.linalg.norm(pixels - DEFAULT_PALETTE["orange"], axis=-1) < 40
    assert seam.sum() >= 10  # anti-aliasing does paint an orange line where red meets yellow
    red, yellow, orange = ColourDetector().measure([image], [["red", "yellow", "orange"]])[0]
    assert abs(red.mask_area * 4096 - truth["red"]) <= 0.5 * 4 * 30  # half a pixel per pixel of outline
    assert abs(yellow.mask_area * 4096 - truth["yellow"]) <= 0.5 * 4 * 30
    assert red.box == pytest.approx((10, 10, 41, 40), abs=1)  # the whole red square, though partly covered
    assert not orange.present


def test_colour_textured_background_makes_no_objects():
    plain, _ = draw_scene((64, 64), [], background=(200, 200, 200))
    textured = with_noise(plain, 30)
    results = ColourDetector().measure([textured], [[f"{name} thing" for name in DEFAULT_PALETTE]])[0]
    assert not any(m.present for m in results)
    image, truth = draw_scene((64, 64), [("ellipse", "cyan", (20, 20, 44, 44))], background=(200, 200, 200))
    (cyan,) = ColourDetector().measure([with_noise(image, 30, seed=1)], [["cyan ball"]])[0]
    assert abs(cyan.mask_area * 4096 - truth["cyan"]) <= 0.5 * 2 * math.pi * 12


def test_colour_needs_exactly_one_distinct_palette_colour_per_label():
    image, _ = draw_scene((32, 32), [])
    detector = ColourDetector()
    with pytest.raises(DetectorError, match="names no palette colour.*red, orange, yellow, green"):
        detector.measure([image], [["a cat"]])
    with pytest.raises(DetectorError, match="several palette colours"):
        detector.measure([image], [["red and blue cube"]])
    with pytest.raises(DetectorError, match="both red"):
        detector.measure([image], [["red cube", "small red sphere"]])
    assert detector.colour_of("A large BLUE sphere") == "blue"
    with pytest.raises(DetectorError, match="names no palette colour"):
        detector.colour_of("reddish cube")  # whole words only
    light = ColourDetector({"blue": (0, 0, 255), "light blue": (150, 200, 255)})
    assert light.colour_of("light blue cube") == "light blue" and light.colour_of("blue cube") == "blue"


def test_colour_background_too_close_to_a_palette_colour_is_refused():
    image, _ = draw_scene((32, 32), [("rectangle", "blue", (8, 8, 20, 20))], background=(250, 10, 10))
    with pytest.raises(DetectorError, match="palette colour 'red'"):
        ColourDetector().measure([image], [["blue cube"]])


def test_colour_converts_other_image_modes_and_accepts_a_given_background():
    image, truth = draw_scene((64, 64), [("rectangle", "green", (5, 5, 35, 25))], background=(30, 30, 30))
    rgb = ColourDetector().measure([image], [["green"]])
    rgba = ColourDetector(background=(30, 30, 30)).measure([image.convert("RGBA")], [["green"]])
    assert rgb == rgba and rgb[0][0].mask_area * 4096 == truth["green"] == 600
    grey = ColourDetector().measure([image.convert("L")], [["green"]])[0][0]
    assert not grey.present  # a grey image has no colours


def test_colour_palette_and_options_are_checked():
    with pytest.raises(DetectorError, match="lower-case words"):
        ColourDetector({"Red!": (255, 0, 0)})
    with pytest.raises(DetectorError, match="ints 0-255"):
        ColourDetector({"red": (300, 0, 0)})
    with pytest.raises(DetectorError, match="tolerance"):
        ColourDetector(tolerance=0)
    with pytest.raises(DetectorError, match="min_area"):
        ColourDetector(min_area=2)


def test_colour_min_area_decides_presence():
    image, _ = draw_scene((64, 64), [("rectangle", "magenta", (10, 10, 20, 20))])  # 100 px = 2.4% of the image
    assert ColourDetector(min_area=0.02).measure([image], [["magenta"]])[0][0].present
    assert not ColourDetector(min_area=0.03).measure([image], [["magenta"]])[0][0].present


def test_default_palette_colours_are_far_apart():
    colours = np.array(list(DEFAULT_PALETTE.values()), dtype=float)
    distances = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
    assert len(DEFAULT_PALETTE) == 8 and distances[~np.eye(8, dtype=bool)].min() >= 127
