"""``make demo``: the main job on the embedded defaults.

Starts ``shoal serve`` (all four services, embedded stores) as a separate process, as a user
would, with a fresh administrator key; checks every service over gRPC (health and reflection);
builds the digits dataset (images, out-of-fold predictions, embeddings, flipped labels with the
truth kept in ``truth.json``, and planted non-digit images listed in ``outliers.json``), uploads
it through the SDK and reads the counts back from both stores; computes the metrics, runs the
label-issue, neighbour and embedding-map jobs and scores what they found against what was
planted; writes ``summary.json`` and a self-contained ``report.html``; stops the server with
SIGTERM.

- :mod:`shoal.demo.run`: the server process, the steps in order, and what the run writes;
- :mod:`shoal.demo.dataset`: the digits and the unlabeled pool, built and uploaded;
- :mod:`shoal.demo.score`: the analysis jobs, each scored against what was planted;
- :mod:`shoal.demo.shapes` and :mod:`shoal.demo.streets`: an instance segmentation set and a semantic
  segmentation set, drawn with a fixed seed, with label errors planted and scored;
- :mod:`shoal.demo.scenes` and :mod:`shoal.demo.audio`: point clouds with 3-D cuboids and audio clips
  with sound events, drawn with a fixed seed, each with a detector that never sees the labels, and
  label errors planted and scored;
- :mod:`shoal.demo.report`: ``summary.json`` and its frames as HTML (the template ``report.html``).
"""

from shoal.demo.run import run_demo

__all__ = ["run_demo"]
