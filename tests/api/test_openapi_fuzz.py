"""Schemathesis over the OpenAPI document: no input makes the server fail (5xx).

Driven through hypothesis directly (schemathesis' pytest plugin does not load
under pytest 9), one property per operation.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


def test_no_server_errors(env):
    schema = schemathesis.openapi.from_asgi("/openapi.json", env["app"])
    headers = {"Authorization": f"Bearer {env['tokens']['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=50, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        def no_5xx(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        no_5xx()
