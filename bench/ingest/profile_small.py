import cProfile, pstats, sys, time, tempfile, pathlib
import numpy as np
from shoal.common.settings import ShoalSettings
from shoal.app import build_server
from shoal.client import Client
from shoal.sdk import UploadColumns
from shoal.ingest.v1 import ingest_pb2 as pb

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
tmp = pathlib.Path(tempfile.mkdtemp())
s = ShoalSettings(port=0, data_dir=tmp, insecure_dev_mode=True, readiness_interval_seconds=0.5)
server = build_server(s); port = server.start()
c = Client(f"127.0.0.1:{port}")
while c.health_status() != "SERVING": time.sleep(0.1)
c.ingest.CreateProject(pb.CreateProjectRequest(project=pb.Project(name="b", task_type=1, classes=[pb.ClassDef(id=i, name=str(i)) for i in range(10)],
  embedding_spaces=[pb.EmbeddingSpace(name="e", dimension=128, metric=1, level=1, model_name="m", model_version="1")])))
c.ingest.CreateDataset(pb.CreateDatasetRequest(project="b", dataset=pb.Dataset(name="d", kind=1)))
c.ingest.CreateInferenceSet(pb.CreateInferenceSetRequest(project="b", inference_set=pb.InferenceSet(name="i", dataset="d", model_name="m", model_version="1")))
rng = np.random.default_rng(0)
probs = rng.dirichlet(np.ones(10), size=n).astype(np.float32); probs /= probs.sum(1, keepdims=True)
cols = UploadColumns(frame_ids=[f"f{i}" for i in range(n)], class_ids=rng.integers(0, 10, n), inference_set="i", probabilities=probs,
                     embeddings={"e": rng.normal(size=(n, 128)).astype(np.float32)})
prof = cProfile.Profile()
t = time.time()
prof.enable()
r = c.upload("b", "d", cols, progress=False)
t_send = time.time() - t
st = c.wait_for_upload("b", r.upload_id, poll=0.1)
prof.disable()
total = time.time() - t
print(f"n={n} send={t_send:.1f}s total={total:.1f}s fps={n/total:.0f} state={st.state}")
pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
server.stop(grace=1)
