"""The datasets bench/detection.py runs on, each split as the pipeline splits it.

A dataset's reference period is split three ways: a third held out (stratified by the
label, seeded) for the stable windows, and the rest split as the prepare stage splits
(``data.split``): the model (the project's factory and ``train`` settings) fits on the
training split, the test split scored by it is the reference set, and the training
split's features are the extra reference rows data drift compares against
(``drift.reference: all``). The permutation importance is the evaluate stage's.

- ``employment``: the project's own data (data/raw/reference_2015.parquet, the 2015 ACS
  PUMS employment table), features and target from params.yaml.
- ``randhie``: the RAND Health Insurance Experiment, 20,190 person-years, shipped inside
  the statsmodels wheel (``statsmodels.datasets.randhie``; Deb & Trivedi 2002). Target:
  any outpatient visit in the year (``mdvis > 0``); the three health-status dummies are
  one categorical ``health`` (excellent, good, fair, poor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml

from pipeline.labels import normalize_labels
from pipeline.metrics import permutation_importance
from pipeline.model import build_model
from pipeline.schema import coerce_features
from pipeline.settings import PROJECT_ROOT, Settings, parse_settings
from testbeds.drift_data import score

HOLDOUT = 1 / 3


@dataclass(frozen=True)
class Watch:
    """Where the shifts go: columns a user of that data would watch."""

    numeric: str  # mean shift and scale
    categorical: str  # frequency change
    category: str  # the category whose share grows
    pair: tuple[str, str]  # correlation flip: the second's rank pairing is reversed
    subpopulation: str  # where labels flip, in words
    where: Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Testbed:
    name: str
    source: str
    settings: Settings
    model: Any
    reference: pd.DataFrame  # the test split, scored, with labels
    inputs: pd.DataFrame  # the training split's features
    holdout: pd.DataFrame  # features and labels of held-out rows of the same period
    importance: dict[str, float]
    watch: Watch

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A window as the drift job sees it: features, predictions, labels."""
        return score(self.model, frame, self.settings)


def _fit(name: str, source: str, raw: pd.DataFrame, settings: Settings, watch: Watch) -> Testbed:
    from sklearn.model_selection import train_test_split

    data = settings.data
    labels = normalize_labels(raw[data.target])
    rest, holdout = train_test_split(
        raw, test_size=HOLDOUT, stratify=labels, random_state=data.seed
    )
    train, test = train_test_split(
        rest,
        test_size=data.split.test_size,
        stratify=normalize_labels(rest[data.target]),
        random_state=data.seed,
    )
    model = build_model(data.features, settings.train, data.seed)
    model.fit(coerce_features(train, data), normalize_labels(train[data.target]))
    reference = score(model, test, settings)
    evaluate = settings.evaluate
    importance = permutation_importance(
        model,
        reference[data.features.all],
        reference[data.target],
        settings.promote.metric,
        evaluate.importance_repeats,
        data.seed,
        evaluate.importance_rows,
    )
    kept = holdout[[data.id, *data.features.all, data.target]].reset_index(drop=True)
    kept[data.target] = normalize_labels(kept[data.target])
    inputs = coerce_features(train, data).reset_index(drop=True)
    return Testbed(name, source, settings, model, reference, inputs, kept, importance, watch)


def employment() -> Testbed:
    from pipeline.settings import load_settings

    settings = load_settings(PROJECT_ROOT / "params.yaml")
    raw = pd.read_parquet(PROJECT_ROOT / "data" / "raw" / "reference_2015.parquet")
    watch = Watch(
        numeric="AGEP",
        categorical="MAR",
        category="5",  # never married
        pair=("AGEP", "SCHL"),  # age and educational attainment (ordinal codes 1-24)
        subpopulation="ages 40-59",
        where=lambda f: f["AGEP"].between(40, 59),
    )
    source = "data/raw/reference_2015.parquet (ACS PUMS 2015, shipped with the project)"
    return _fit("employment", source, raw, settings, watch)


def randhie_frame() -> pd.DataFrame:
    """The RAND HIE table from the statsmodels wheel, with an id, a target and ``health``."""
    from statsmodels.datasets import randhie

    raw = randhie.load_pandas().data
    health = pd.Series("excellent", index=raw.index)
    for dummy, level in (("hlthg", "good"), ("hlthf", "fair"), ("hlthp", "poor")):
        health[raw[dummy] == 1] = level
    return pd.DataFrame(
        {
            "id": range(len(raw)),
            "lncoins": raw["lncoins"],
            "lpi": raw["lpi"],
            "fmde": raw["fmde"],
            "disea": raw["disea"],
            "idp": raw["idp"].astype(int).astype(str),
            "physlm": (raw["physlm"] > 0).astype(int).astype(str),
            "health": health,
            "visited": (raw["mdvis"] > 0).astype(int),
        }
    )


def randhie() -> Testbed:
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    raw["data"] = {
        **raw["data"],
        "path": "randhie.parquet",  # never read: the frame comes from statsmodels
        "target": "visited",
        "drop": [],
        "features": {
            "numerical": ["lncoins", "lpi", "fmde", "disea"],
            "categorical": ["idp", "physlm", "health"],
        },
        "ranges": {},
    }
    settings = parse_settings(raw, root=PROJECT_ROOT)
    watch = Watch(
        numeric="disea",  # count of chronic diseases
        categorical="health",
        category="fair",
        pair=("lpi", "fmde"),  # the two insurance-plan measures (Spearman 0.62)
        subpopulation="disea > 15 (a sixth of the rows)",
        where=lambda f: f["disea"] > 15,
    )
    source = "statsmodels.datasets.randhie (RAND Health Insurance Experiment, in the wheel)"
    return _fit("randhie", source, randhie_frame(), settings, watch)


DATASETS: dict[str, Callable[[], Testbed]] = {"employment": employment, "randhie": randhie}
