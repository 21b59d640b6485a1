"""The card of the fixture task: what bench needs to list it, show its metric and check its claim."""
from bench.card import Metric, Paper, TaskCard
from bench.claims import AtLeast, Claim, Value

CARD = TaskCard(
    name="lsq_digits",
    version="1",
    paper=Paper("Least-squares classification of 8×8 handwritten digits (bench's fixture task)",
                "bench tests", "tests/fixture_task"),
    preset="lsq_digits/tiny",
    metrics=(Metric("accuracy", "test accuracy", ".3f", True, columns=("labels",)),),
    claims=(
        Claim("linearly_separable", "A linear least-squares classifier recognises 8×8 digits (accuracy ≥ 0.9)",
              paper="accuracy ≈ 0.95 (sklearn digits, ridge least squares)",
              check=AtLeast(Value("accuracy"), 0.9)),
    ),
    # declared with the preset: its targets (every claim it can measure), seeds and held-out digits
    targets={"lsq_digits/tiny": ("linearly_separable",)},
    seeds={"lsq_digits/tiny": (0, 1, 2)},
    items={"lsq_digits/tiny": 797},
)
