#!/usr/bin/env python3
"""Writes charts/hookguard/values.schema.json: the chart's own keys, with `policy` referring to
the policy schema (schema/policy.schema.json) embedded under $defs. `--check` fails when the
committed file is stale (the policy schema changed)."""
import json, sys, pathlib

root = pathlib.Path(__file__).resolve().parents[2]
policy = json.loads((root / "schema/policy.schema.json").read_text())
defs = {f"policy.{k}": v for k, v in policy.get("$defs", {}).items()}
policy_top = {k: v for k, v in policy.items() if k not in ("$schema", "$defs")}
text = json.dumps(policy_top)
for k in policy.get("$defs", {}):
    text = text.replace(f'"#/$defs/{k}"', f'"#/$defs/policy.{k}"')
defs_text = json.dumps(defs)
for k in policy.get("$defs", {}):
    defs_text = defs_text.replace(f'"#/$defs/{k}"', f'"#/$defs/policy.{k}"')
defs = json.loads(defs_text)
defs["policy"] = json.loads(text)

s = lambda **kw: dict(kw)
string, boolean, obj = {"type": "string"}, {"type": "boolean"}, {"type": "object"}
integer = {"type": "integer", "minimum": 0}
port = {"type": "integer", "minimum": 1, "maximum": 65535}
strings = {"type": "array", "items": {"type": "string"}}
resources = {"type": "object", "properties": {"requests": obj, "limits": obj}, "additionalProperties": False}
failure = {"enum": ["Fail", "Ignore"]}

def closed(props, required=()):
    return {"type": "object", "properties": props, "additionalProperties": False,
            **({"required": list(required)} if required else {})}

schema = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "hookguard chart values",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "image": closed({"repository": {"type": "string", "minLength": 1}, "tag": string,
                         "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}, ["repository"]),
        "imagePullSecrets": {"type": "array"},
        "nameOverride": string, "fullnameOverride": string,
        "replicaCount": {"type": "integer", "minimum": 1},
        "priorityClassName": string,
        "podAnnotations": obj, "podLabels": obj, "nodeSelector": obj,
        "tolerations": {"type": "array"}, "affinity": obj,
        "topologySpread": closed({"enabled": boolean, "maxSkew": {"type": "integer", "minimum": 1},
                                  "topologyKey": string,
                                  "whenUnsatisfiable": {"enum": ["ScheduleAnyway", "DoNotSchedule"]}}),
        "podDisruptionBudget": closed({"enabled": boolean, "minAvailable": {"type": ["integer", "string"]}}),
        "logFormat": {"enum": ["plain", "json"]},
        "logLevel": string,
        "webhook": closed({"port": port, "adminPort": port, "resources": resources, "extraArgs": strings}),
        "finalizer": closed({
            "enabled": boolean, "adminPort": port,
            "kinds": {**strings, "minItems": 1},
            "rbacResources": {"type": "array", "minItems": 1, "items": closed(
                {"apiGroup": string, "resource": {"type": "string", "minLength": 1}}, ["apiGroup", "resource"])},
            "leaseName": {"type": "string", "minLength": 1},
            "resources": resources, "extraArgs": strings}),
        "service": closed({"port": port}),
        "serviceAccount": closed({"annotations": obj}),
        "webhooks": closed({
            "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 30},
            "validating": closed({"failurePolicy": failure}),
            "mutating": closed({"failurePolicy": failure, "reinvocationPolicy": {"enum": ["Never", "IfNeeded"]}}),
            "operations": {"type": "array", "minItems": 1, "items": {"enum": ["CREATE", "UPDATE", "DELETE", "CONNECT", "*"]}},
            "rules": {"type": "array", "minItems": 1, "items": closed({
                "apiGroups": strings, "apiVersions": strings,
                "resources": {"type": "array", "items": {"type": "string", "pattern": "^[^/]+$"}}},
                ["apiGroups", "apiVersions", "resources"])},
            "excludeNamespaces": strings,
            "optOutLabel": {"type": "string", "minLength": 1},
            "matchConditions": boolean}),
        "policy": {"$ref": "#/$defs/policy"},
        "certificates": closed({
            "mode": {"enum": ["selfManaged", "certManager", "secret"]},
            "secretName": string, "caBundle": string,
            "selfManaged": closed({"days": {"type": "integer", "minimum": 2},
                                   "renewBeforeDays": {"type": "integer", "minimum": 1}}),
            "certManager": closed({"issuerRef": obj, "duration": string, "renewBefore": string})}),
        "hookJobs": closed({"resources": resources, "backoffLimit": integer}),
        "uninstall": closed({"enabled": boolean}),
        "serviceMonitor": closed({"enabled": boolean, "interval": string, "labels": obj}),
    },
    "$defs": defs,
}
out = json.dumps(schema, indent=2, sort_keys=True) + "\n"
path = root / "charts/hookguard/values.schema.json"
if "--check" in sys.argv:
    if path.read_text() != out:
        sys.exit(f"{path} is stale: run tests/chart/values-schema.py")
else:
    path.write_text(out)
