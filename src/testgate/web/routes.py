"""``install(app)``: the web console, server-rendered, under ``/ui`` (the paths ``build_dashboard_url`` hands out).

    GET  /                                             to the console
    GET  /login, POST /login                           sign in (password; SSO button when configured); a
                                                       rate-limited post gets the form back (429)
    POST /ui/logout                                    sign out
    GET  /ui, /ui/{org}/{env}                          to the first visible environment's workflows
    GET  /ui/{org}/{env}/workflows[/{name}]            POST .../workflows/{name}/run
    GET  /ui/{org}/{env}/executions[/{id}]             POST .../executions/{id}/abort
    GET  /ui/{org}/{env}/executions/{id}/logs/stream   live log lines (Server-Sent Events)
    GET  /ui/{org}/{env}/executions/{id}/artifacts/{path}[?download=1]
    GET  /ui/{org}/{env}/test-cases[/new|/{id}[/edit|/delete]]   and their posts
    GET  /ui/{org}/{env}/tokens, POST .../tokens[/{id}/rotate|/{id}/revoke]
    GET  /ui/{org}/{env}/audit[/export]
    GET  /ui/_static/*                                 the stylesheet and the script
    *    /ui/... (any other path)                      the console's 404 page

Every page reads and writes through ``dispatch`` with transport ``web``: authorized and audited like the
REST API and the MCP tools. Sessions, CSRF and confirmation values are described in ``web.session``.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from testgate.web import artifacts, audit, auth, executions, once, routing, stream, testcases, tokens, workflows
from testgate.web.pages import STATIC
from testgate.web.session import LOGIN_PATH

# What the rate limit answers a browser's form post with, by path, when its address is over the limit.
LIMITED_PAGES = {LOGIN_PATH: auth.rate_limited}


def install(app: FastAPI) -> once.Ledger:
    """Mount the console on ``app``: its static files first, so no page route shadows them; a path under
    ``/ui`` that no route serves answers with the console's 404 page.

    Returns the ledger of single-use forms (``web.once``) for the application's lifespan to close.
    """
    settings = app.state.settings
    ledger = app.state.console_forms = once.ledger_for(settings.shared_redis_url, settings.http.rate_limit_prefix)
    app.mount(STATIC, StaticFiles(packages=[("testgate", "web/static")]), name="console-static")
    for module in (auth, workflows, executions, stream, artifacts, testcases, tokens, audit):
        app.include_router(module.router)
    app.router.default = routing.unmatched(app.router.default)
    return ledger
