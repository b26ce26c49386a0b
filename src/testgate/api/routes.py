"""``install(app)``: the REST API under ``/api/v1``, its error handling, request ids and the first-owner setup page.

Every route below ``/api/v1/organizations/{org}/environments/{env}`` authenticates with a bearer token,
dispatches exactly one operation and serializes its output model:

    GET    /workflows                          list_workflows (selector, text)
    POST   /workflows                          create_workflow (YAML, or JSON {"definition"}) -> 201
    GET    /workflows/{name}                   get_workflow
    PUT    /workflows/{name}                   update_workflow (YAML, or JSON {"definition"})
    DELETE /workflows/{name}                   delete_workflow (delete_executions)
    GET    /workflows/{name}/definition        get_workflow_definition (application/yaml)
    POST   /workflows/{name}/executions        run_workflow ({config, tags}) -> 201
    GET    /workflows/{name}/metrics           get_workflow_metrics (last)
    GET    /workflow-schema                    get_workflow_schema
    GET    /labels                             list_labels
    GET    /executions                         list_executions (workflow, status*, tags, since, text, limit, cursor)
    GET    /executions/{id}                    get_execution
    GET    /executions/{id}/logs               fetch_execution_logs (tail, start, end, step, grep, context, ...)
    POST   /executions/{id}/abort              abort_execution
    PATCH  /executions/{id}/tags               update_execution_tags ({tags, replace})
    GET    /executions/{id}/results            get_execution_results (status*, include_trace, limit, cursor)
    GET    /executions/{id}/artifacts          list_artifacts
    GET    /executions/{id}/artifacts/{path}   read_artifact (start_line, end_line, grep, ...; download=1)
    POST   /wait                               wait_for_executions ({ids, timeout})
    POST   /results                            upload_results (multipart files + workflow + tags, or JSON) -> 201
    GET    /test-cases                         list_test_cases (text, selector, limit, cursor)
    POST   /test-cases                         create_test_case -> 201
    POST   /test-cases/bulk-delete             bulk_delete_test_cases ({ids})
    GET    /test-cases/{id}                    get_test_case
    PATCH  /test-cases/{id}                    update_test_case
    DELETE /test-cases/{id}                    delete_test_case
    GET    /dashboard-url                      build_dashboard_url (kind, ref)

Destructive operations are reached only through DELETE or the bulk-delete POST: the request is itself the
caller's explicit confirmation.
"""

from __future__ import annotations

from fastapi import FastAPI

from testgate.api import (
    access,
    artifacts,
    audit,
    bindings,
    environments,
    invite,
    openapi,
    problems,
    setup,
    uploads,
    workflows,
)
from testgate.api.routing import env_router


def install(app: FastAPI) -> None:
    """Mount the REST API and the setup page on ``app``."""
    problems.install(app)
    openapi.install(app)
    app.include_router(workflows.router)
    app.include_router(uploads.router)
    app.include_router(artifacts.router)
    generated = env_router()
    for binding in bindings.BINDINGS:
        bindings.add(generated, binding)
    app.include_router(generated)
    app.include_router(access.router)
    app.include_router(environments.router)
    app.include_router(audit.router)
    app.include_router(setup.router)
    app.include_router(invite.router)
