"""Use cases (responses, conversations, background runs, health, sweeps, models) and their context.

Each use case module glues protocol, backends and store for one job;
`inputs` and `prepare` are the steps the response use cases share.
`init_app` makes the `ServiceContext` they are all given.
"""

from app.services.context import init_app

__all__ = ["init_app"]
