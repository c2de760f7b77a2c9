"""Copies kubernetes-validate's JSON schemas for one Kubernetes version into the cache, with
their "/api/_definitions.json" references pointed at the file beside them (kubeconform cannot
resolve the absolute one). Run by scripts/check-deploy.sh: VERSION DEST."""

import os, pathlib, shutil, sys, urllib.request
import kubernetes_validate
version, dest = sys.argv[1], pathlib.Path(sys.argv[2])
name = f"v{version}-local-strict"
src = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / name
if not src.is_dir():
    have = sorted(p.name for p in src.parent.iterdir() if p.name.endswith("-local-strict"))
    sys.exit(f"kubernetes-validate has no {name}; it has: {' '.join(have)}")
out = dest / name
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
definitions = "file://" + urllib.request.pathname2url(str(out / "_definitions.json"))
for f in src.glob("*.json"):
    text = f.read_text()
    (out / f.name).write_text(text.replace('"/api/_definitions.json#', f'"{definitions}#'))
(out / ".done").touch()
