"""JSON schemas for the custom resources the overlays use, which kubernetes-validate (built-in kinds only)
cannot check: Prometheus Operator's ServiceMonitor (monitoring.coreos.com/v1) and KEDA's ScaledObject and
TriggerAuthentication (keda.sh/v1alpha1).

Written from the CRDs' published OpenAPI schemas (prometheus-operator's ``monitoring.coreos.com_servicemonitors``,
KEDA's ``keda.sh_scaledobjects`` / ``keda.sh_triggerauthentications`` and its Kafka scaler's documented
metadata), restricted to the fields a tocsin deployment needs: an unknown field here is a typo or a field
this file must learn, so ``additionalProperties`` is false where the CRD's is.
"""

from __future__ import annotations

from typing import Any

DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "required": ["key", "operator"], "additionalProperties": False,
            "properties": {"key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                                                   "labels": {"type": "object"}, "annotations": {"type": "object"}}}
RELABELING = {"type": "object", "additionalProperties": False, "properties": {
    "action": {"type": "string"}, "modulus": {"type": "integer"}, "regex": {"type": "string"}, "replacement": {"type": "string"},
    "separator": {"type": "string"}, "sourceLabels": {"type": "array", "items": {"type": "string"}}, "targetLabel": {"type": "string"}}}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": METADATA, "spec": spec},
    }


SERVICE_MONITOR = _resource("monitoring.coreos.com/v1", "ServiceMonitor", {
    "type": "object",
    "required": ["selector"],
    "additionalProperties": False,
    "properties": {
        "selector": LABEL_SELECTOR,
        "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
            "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
        "jobLabel": {"type": "string"},
        "targetLabels": {"type": "array", "items": {"type": "string"}},
        "podTargetLabels": {"type": "array", "items": {"type": "string"}},
        "sampleLimit": {"type": "integer", "minimum": 0},
        "endpoints": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "port": {"type": "string"},
                "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "path": {"type": "string", "pattern": "^/"},
                "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                "interval": DURATION,
                "scrapeTimeout": DURATION,
                "honorLabels": {"type": "boolean"},
                "honorTimestamps": {"type": "boolean"},
                "params": {"type": "object"},
                "tlsConfig": {"type": "object"},
                "bearerTokenSecret": {"type": "object"},
                "authorization": {"type": "object"},
                "basicAuth": {"type": "object"},
                "relabelings": {"type": "array", "items": RELABELING},
                "metricRelabelings": {"type": "array", "items": RELABELING},
            },
        }},
    },
})

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
"""KEDA's trigger metadata is map[string]string: a bare number in YAML is rejected by the API server."""

KAFKA_METADATA = {
    "type": "object",
    "required": ["bootstrapServers", "consumerGroup", "topic"],
    "additionalProperties": False,
    "properties": {key: {"type": "string"} for key in (
        "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold", "offsetResetPolicy",
        "allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag",
        "partitionLimitation", "ensureEvenDistributionOfPartitions", "version", "sasl", "tls", "unsafeSsl",
        "awsRegion")},
}

SCALED_OBJECT = _resource("keda.sh/v1alpha1", "ScaledObject", {
    "type": "object",
    "required": ["scaleTargetRef", "triggers"],
    "additionalProperties": False,
    "properties": {
        "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
            "name": {"type": "string"}, "kind": {"type": "string"}, "apiVersion": {"type": "string"},
            "envSourceContainerName": {"type": "string"}}},
        "pollingInterval": {"type": "integer", "minimum": 1},
        "cooldownPeriod": {"type": "integer", "minimum": 0},
        "initialCooldownPeriod": {"type": "integer", "minimum": 0},
        "idleReplicaCount": {"type": "integer", "minimum": 0},
        "minReplicaCount": {"type": "integer", "minimum": 0},
        "maxReplicaCount": {"type": "integer", "minimum": 1},
        "fallback": {"type": "object", "required": ["failureThreshold", "replicas"], "properties": {
            "failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"}}},
        "advanced": {"type": "object", "additionalProperties": False, "properties": {
            "restoreToOriginalReplicaCount": {"type": "boolean"},
            "horizontalPodAutoscalerConfig": {"type": "object", "additionalProperties": False, "properties": {
                "name": {"type": "string"},
                "behavior": {"type": "object", "additionalProperties": False, "properties": {
                    direction: {"type": "object", "additionalProperties": False, "properties": {
                        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
                        "policies": {"type": "array", "items": {
                            "type": "object", "required": ["type", "value", "periodSeconds"], "additionalProperties": False,
                            "properties": {"type": {"enum": ["Pods", "Percent"]}, "value": {"type": "integer", "minimum": 1},
                                           "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800}}}},
                    }} for direction in ("scaleUp", "scaleDown")}}}},
            "scalingModifiers": {"type": "object"}}},
        "triggers": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["type", "metadata"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string"},
                "name": {"type": "string"},
                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                "useCachedMetrics": {"type": "boolean"},
                "authenticationRef": {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                    "name": {"type": "string"}, "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]}}},
                "metadata": STRING_MAP,
            },
            "if": {"properties": {"type": {"const": "kafka"}}},
            "then": {"properties": {"metadata": KAFKA_METADATA}},
        }},
    },
})

TRIGGER_AUTHENTICATION = _resource("keda.sh/v1alpha1", "TriggerAuthentication", {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "secretTargetRef": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
            "properties": {"parameter": {"type": "string"}, "name": {"type": "string"}, "key": {"type": "string"}}}},
        "env": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name"], "additionalProperties": False,
            "properties": {"parameter": {"type": "string"}, "name": {"type": "string"}, "containerName": {"type": "string"}}}},
        "podIdentity": {"type": "object", "required": ["provider"], "properties": {"provider": {"type": "string"}}},
    },
})

SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): TRIGGER_AUTHENTICATION,
}
