"""Schemathesis against the OpenAPI schema: for generated requests to every operation (as an admin,
on a warm pipeline with stored anomalies and alerts), no 5xx and every response conforms to the
documented status codes, content types, headers and body schemas.

Schemathesis' pytest plugin (``from_fixture``) does not run under pytest 9.2, so each operation is
driven here with Hypothesis directly over ``operation.as_strategy()``."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tocsin.api import AuthConfig, KeyStore, create_app
from tocsin.spec import parse_spec
from tests.api.conftest import EVENTS, WARM_EVENTS, spec_dict

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance, response_headers_conformance]
MAX_EXAMPLES = 30


def _operation_labels() -> list[str]:
    spec = parse_spec(spec_dict("sqlite:///:memory:", "/nonexistent"))
    schema = create_app(spec, AuthConfig(keys=KeyStore(None))).openapi()
    return [f"{method.upper()} {path}" for path, methods in schema["paths"].items() for method in methods]


@pytest.fixture
def api_schema(spec, auth, warm_pipeline, records):
    app = create_app(spec, auth, pipeline=warm_pipeline)
    app.state.service.score(records[WARM_EVENTS:EVENTS])  # stored anomalies and alerts for the reads to find
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("label", _operation_labels())
def test_the_api_conforms_to_its_schema(api_schema, keys, label: str) -> None:
    operation = api_schema.find_operation_by_label(label)
    headers = {"X-API-Key": keys.admin}

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def conforms(case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    conforms()
