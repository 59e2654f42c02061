#!/usr/bin/env python3
"""check-manifests.py — deploy/kserve/*.yaml against the fields KServe documents for a
ServingRuntime (serving.kserve.io/v1alpha1) and an InferenceService (serving.kserve.io/v1beta1),
and against each other. Prints, one per line, what a test needs next:
  ARGS <the runtime container's args, {{.Name}} and $(VAR) filled in, one per line after>
  PROBE <path>      (readiness, liveness and the Prometheus path)
  MODEL <the model name in /v2/models/NAME/infer>
  PORT <containerPort>
Exits 1 with one line per problem.
    check-manifests.py DIR"""
import re
import sys

import yaml

problems = []


def need(cond, what):
    if not cond:
        problems.append(what)
    return cond


docs = {}
for name in ("servingruntime.yaml", "inferenceservice.yaml"):
    with open(f"{sys.argv[1]}/{name}") as f:
        docs[name] = yaml.safe_load(f)
rt, isvc = docs["servingruntime.yaml"], docs["inferenceservice.yaml"]

need(rt.get("apiVersion") == "serving.kserve.io/v1alpha1", "ServingRuntime: apiVersion is not serving.kserve.io/v1alpha1")
need(rt.get("kind") == "ServingRuntime", "ServingRuntime: kind")
spec = rt.get("spec", {})
formats = [f.get("name") for f in spec.get("supportedModelFormats", [])]
need(formats and all(formats), "ServingRuntime: spec.supportedModelFormats needs named formats")
need("v2" in spec.get("protocolVersions", []), "ServingRuntime: protocolVersions must list v2 (OIP)")
containers = spec.get("containers", [])
need(len(containers) == 1 and containers[0].get("name") == "kserve-container",
     "ServingRuntime: one container named kserve-container")
c = containers[0] if containers else {}
need(c.get("image"), "ServingRuntime: the container has no image")
args = [str(a) for a in c.get("args", [])]
need(args[:1] == ["serve"], "ServingRuntime: the container's args must start with serve (the entrypoint is gpux)")
ports = [p.get("containerPort") for p in c.get("ports", [])]
need(len(ports) == 1, "ServingRuntime: one container port")
need(any(c.get(p, {}).get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe")),
     "ServingRuntime: readiness/liveness probes with httpGet paths")

need(isvc.get("apiVersion") == "serving.kserve.io/v1beta1", "InferenceService: apiVersion is not serving.kserve.io/v1beta1")
need(isvc.get("kind") == "InferenceService", "InferenceService: kind")
model = isvc.get("spec", {}).get("predictor", {}).get("model", {})
need(model.get("runtime") == rt.get("metadata", {}).get("name"), "InferenceService: runtime is not the ServingRuntime's name")
need(model.get("modelFormat", {}).get("name") in formats, "InferenceService: modelFormat is not one the runtime supports")
need(model.get("protocolVersion") == "v2", "InferenceService: protocolVersion v2")
env = {e["name"]: e.get("value") for e in c.get("env", []) + model.get("env", [])}
name = isvc.get("metadata", {}).get("name", "")
image = env.get("GPUX_IMAGE") or ""
need(image, "InferenceService: env GPUX_IMAGE (the gpux image to serve) is not set")
last = image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
need(last == name, f"InferenceService: its name '{name}' is not the served image's name '{last}' (the v2 URL's model name)")

filled = []
for a in args:
    a = a.replace("{{.Name}}", name)
    a = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
    need("$(" not in a and "{{" not in a, f"ServingRuntime: argument '{a}' refers to a variable nobody sets")
    filled.append(a)

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("MODEL", name)
print("PORT", ports[0])
for p in ("readinessProbe", "livenessProbe"):
    print("PROBE", c[p]["httpGet"]["path"])
print("PROBE", spec.get("annotations", {}).get("prometheus.kserve.io/path", "/metrics"))
print("ARGS")
print("\n".join(filled))
