"""A property-based run against the OpenAPI document (schemathesis's Hypothesis
strategies): whatever a client sends that the document describes, for every operation,
the server never answers 5xx.

The strategies are driven from a plain test rather than schemathesis's pytest plugin,
which does not load with the pytest this project pins.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from api.security import Role
from tests.integration.api.conftest import PASSWORD, ApiEnv, seed

EXAMPLES_PER_OPERATION = 12


def _credentials(env: ApiEnv, method: str, path: str) -> dict[str, str]:
    # The role that may call the operation, so that fuzzing reaches the handler.
    if path.endswith("/reviews") and method == "POST":
        return env.headers[Role.INSPECTOR]
    if path == "/api/v1/images" and method == "POST":
        return env.headers[Role.DEVICE]
    if path == "/api/v1/auth/logout":
        # A session of its own to end: the shared tokens must outlive the run.
        response = env.client.post(
            "/api/v1/auth/token", json={"username": "viewer-user", "password": PASSWORD}
        )
        return {"Authorization": f"Bearer {response.json()['access_token']}"}
    return env.headers[Role.ADMIN]


def _send(env: ApiEnv, case: Any, headers: dict[str, str]) -> tuple[int, str]:
    """Send a generated case through the test client (httpx), not schemathesis's own
    requests-based transport: the project's venv may hold urllib3-future (pulled in by
    grafana-client), which breaks requests' connection handling."""
    kwargs = case.as_transport_kwargs(base_url=str(env.client.base_url), headers=dict(headers))
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif isinstance(kwargs.get("data"), bytes | str):
        body["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        body["data"] = kwargs["data"]
    response = env.client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs.get("headers"),
        cookies=kwargs.get("cookies") or None,
        follow_redirects=False,
        **body,
    )
    return response.status_code, response.text


def _runner(
    env: ApiEnv, operation: Any, headers: dict[str, str], failures: list[str], statuses: list[int]
) -> Any:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        status, text = _send(env, case, headers)
        statuses.append(status)
        if status >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} {case.query} -> {status} {text[:200]}"
            )

    return run


def test_no_operation_answers_a_server_error(env: ApiEnv) -> None:
    seed(env)
    schema = schemathesis.openapi.from_asgi(
        "/api/v1/openapi.json", env.client.app, headers=dict(env.headers[Role.ADMIN])
    )
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 40
    failures: list[str] = []
    statuses: list[int] = []
    # Operations that end sessions go last: a generated user name may be a shared one.
    operations.sort(key=lambda op: op.path.endswith("/logout"))
    for operation in operations:
        headers = _credentials(env, operation.method.upper(), operation.path)
        _runner(env, operation, headers, failures, statuses)()
    assert not failures, "\n".join(failures[:20])
    # The run reached the handlers: most answers are successes or validation refusals.
    assert len(statuses) >= 3 * len(operations)
    assert sum(1 for s in statuses if s < 300) >= len(operations)
