"""The names the demo's steps and its report share: the services it checks, and the project,
datasets, inference sets and embedding spaces it creates."""

from __future__ import annotations

import logging

#: the demo's one logger: its lines read ``shoal.demo`` whichever step writes them
log = logging.getLogger("shoal.demo")

SERVICES = {
    "ingest": "shoal.ingest.v1.IngestService",
    "analysis": "shoal.analysis.v1.AnalysisService",
    "sampler": "shoal.sampler.v1.SamplerService",
    "labeling_bridge": "shoal.labeling_bridge.v1.LabelingBridgeService",
}

PROJECT = "digits"
DATASET = "digits"
SPACE = "mlp-hidden"
#: raw pixel intensities: the space the neighbour and map jobs run in (under cosine distance the
#: network's hidden layer hardly sets the planted images apart, an outlier AUROC near 0.6: it never
#: saw anything like them, and its activations for an inverted digit point the way a digit's do)
PIXEL_SPACE = "pixels"
INFERENCE_SET = "mlp-oof"
POOL = "digits-pool"
POOL_INFERENCE_SET = "mlp-pool"
#: the second unlabeled pool, which a standing campaign watches while frames stream in
STREAM = "digits-stream"
