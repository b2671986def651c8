"""Keys mode against passthrough: the cost of virtual keys, limits, budgets and the ledger.

A second gateway of this code runs with `GATEWAY_AUTH=keys`; its key has
a requests and a tokens limit, a parallel limit and a budget (all far
above what the run uses, so every check is made and none refuses), and a
price, so every request is reserved, settled and written to the ledger.
Both gateways take the same rounds at c=32 (and c=1), stored and not.
The issue's target: keys mode keeps at least 80% of passthrough's rps.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bench.markdown import section, table, verdict
from bench.services import HOST, start_gunicorn
from bench.targets import MODEL, RAMP_PER_CONNECTION, TARGETS, load

if TYPE_CHECKING:
    from bench.run import Context

ADMIN_TOKEN = "bench-admin-token-0123456789"
KEYS_ENV = {
    "GATEWAY_AUTH": "keys",
    "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    "GATEWAY_AUTH_SECRET": "bench-auth-secret-0123456789",
}
SHARE_OF_PASSTHROUGH = 0.80
CONCURRENCIES = (1, 32)
KINDS = ("gateway store", "gateway no-store")


def _admin(port: int, method: str, path: str, body: Any) -> dict:
    import http.client

    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"}
        connection.request(method, f"/v1/gateway{path}", json.dumps(body), headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status >= 300:
            raise RuntimeError(f"admin {method} {path}: {answer}")
        return answer
    finally:
        connection.close()


def run(context: Context) -> dict:
    keyed = start_gunicorn("gateway-keys", "wsgi:app", context.workdir, context.backend, KEYS_ENV)
    context.started.append(keyed)
    price = {"model": MODEL, "input_micros_per_million": 1, "output_micros_per_million": 1}
    _admin(keyed.port, "PUT", "/prices", {"prices": [price]})
    limits = {
        "rpm_limit": 2**31 - 1,
        "tpm_limit": 2**31 - 1,
        "max_parallel_requests": 100_000,
        "max_budget_usd": 1e9,
        "budget_period": "monthly",
    }
    key = _admin(keyed.port, "POST", "/keys", {"name": "bench", **limits})["secret"]
    mode = context.mode
    rows = []
    for concurrency in CONCURRENCIES:
        for kind in KINDS:
            runs: dict[str, list[float]] = {"passthrough": [], "keys": []}
            for _ in range(mode.repeats):
                for name, service, target in (
                    ("passthrough", context.gateway, TARGETS[kind]),
                    ("keys", keyed, replace(TARGETS[kind], key=key)),
                ):
                    result = load(
                        service,
                        target,
                        concurrency,
                        duration=mode.duration,
                        warmup=mode.warmup,
                        # Spread over both workers, as the throughput rounds do.
                        ramp=min(concurrency * RAMP_PER_CONNECTION, mode.warmup * 0.8),
                    )
                    if result["errors"]:
                        raise RuntimeError(f"{name} {kind}: {result['error_kinds']}")
                    runs[name].append(result["rps"])
            median = {name: sorted(values)[len(values) // 2] for name, values in runs.items()}
            rows.append({"kind": kind, "concurrency": concurrency, **median, "runs": runs})
            print(f"tenancy c={concurrency} {kind}: {median}", flush=True)
    ledger = _admin(keyed.port, "GET", "/usage/summary", None)["data"][0]["requests"]
    return {"tenancy": {"rows": rows, "ledger_rows": ledger}}


def report(results: dict) -> list[str]:
    if "tenancy" not in results:
        return []
    rows = [
        [
            row["concurrency"],
            row["kind"],
            row["passthrough"],
            row["keys"],
            f"{row['keys'] / row['passthrough']:.0%}",
        ]
        for row in results["tenancy"]["rows"]
    ]
    return section(
        "Keys mode against passthrough",
        table(["c", "answers", "passthrough rps", "keys rps", "keys / passthrough"], rows),
        "",
        f"Ledger rows written by the keys gateway: {results['tenancy']['ledger_rows']}.",
    )


def targets(results: dict) -> list[list[Any]]:
    if "tenancy" not in results:
        return []
    at_32 = [row for row in results["tenancy"]["rows"] if row["concurrency"] == 32]
    worst = min(row["keys"] / row["passthrough"] for row in at_32)
    return [
        [
            "keys mode rps at c=32",
            f">= {SHARE_OF_PASSTHROUGH:.0%} of passthrough",
            f"{worst:.0%}",
            verdict(worst >= SHARE_OF_PASSTHROUGH),
        ]
    ]
