"""Two gateway instances on one PostgreSQL behind the shipped nginx site's upstream.

nginx balances between two gunicorn masters in keys mode. A key disabled
through one is refused by the other at once (each reads the auth version on
every request); concurrent requests through nginx, landing on both, leave a
ledger whose rows and totals match what was answered exactly, and a budget
whose spend is their sum with nothing left reserved.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.e2e.gateway_process import ROOT
from tests.e2e.test_nginx import (
    NGINX,
    closed_port,
    gunicorn,
    local_site,
    nginx_conf,
    running,
    substitute,
    wait_for,
)
from tests.integration.tenancy import ADMIN_TOKEN, AUTH_SECRET

pytestmark = pytest.mark.slow

CLIENTS = 8
REQUESTS_EACH = 6
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PRICE = {
    "model": "fake-model",
    "input_micros_per_million": 1_000_000,
    "output_micros_per_million": 2_000_000,
}


@pytest.fixture
def two_nodes(tmp_path: Path, backend, fresh_postgres):
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/install-test-tools installs it)")
    for directory in ("logs", "temp"):
        (tmp_path / directory).mkdir()
    ports = {name: closed_port() for name in ("gateway", "gateway_2", "http", "https")}
    site = local_site(ports, tmp_path / "logs", None)
    site = substitute(
        rf"server 127\.0\.0\.1:{ports['gateway']};",
        f"server 127.0.0.1:{ports['gateway']};\n    server 127.0.0.1:{ports['gateway_2']};",
        site,
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, site))
    nginx = [NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "logs/error.log"), "-c", str(conf)]
    nginx += ["-g", f"daemon off; pid {tmp_path}/nginx.pid;"]
    nodes = []
    for name in ("gateway", "gateway_2"):
        workdir = tmp_path / name
        workdir.mkdir()
        command, environ = gunicorn(ports[name], backend.base_url, workdir)
        environ.update(
            SESSION_STORE_TYPE="postgres",
            SESSION_STORE_DSN=fresh_postgres["store_dsn"],
            GATEWAY_AUTH="keys",
            GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
            GATEWAY_AUTH_SECRET=AUTH_SECRET,
        )
        nodes.append((name, command, environ, workdir / "gunicorn.log"))
    with (
        running(nodes[0][1], nodes[0][3], cwd=ROOT, env=nodes[0][2]) as first,
        running(nodes[1][1], nodes[1][3], cwd=ROOT, env=nodes[1][2]) as second,
        running(nginx, tmp_path / "nginx.log") as proxy,
    ):
        wait_for(f"http://127.0.0.1:{ports['gateway']}/health", False, first, nodes[0][3])
        wait_for(f"http://127.0.0.1:{ports['gateway_2']}/health", False, second, nodes[1][3])
        wait_for(
            f"http://127.0.0.1:{ports['https']}/health", False, proxy, tmp_path / "logs/error.log"
        )
        yield {
            "proxy": f"http://127.0.0.1:{ports['https']}",
            "nodes": [f"http://127.0.0.1:{ports[name]}" for name in ("gateway", "gateway_2")],
            "logs": [node[3] for node in nodes],
        }


def test_a_key_disabled_on_one_node_is_refused_by_the_other_at_once(two_nodes):
    first, second = two_nodes["nodes"]
    with httpx.Client(timeout=30, trust_env=False) as client:
        key = client.post(f"{first}/v1/gateway/keys", json={"name": "k"}, headers=ADMIN).json()
        auth = {"Authorization": f"Bearer {key['secret']}"}
        assert client.get(f"{second}/v1/models", headers=auth).status_code == 200  # cached there
        disabled = client.patch(
            f"{first}/v1/gateway/keys/{key['id']}", json={"status": "disabled"}, headers=ADMIN
        )
        assert disabled.status_code == 200
        refused = client.get(f"{second}/v1/models", headers=auth)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_disabled"


def test_the_ledger_is_exact_under_load_across_both_nodes(two_nodes):
    proxy = two_nodes["proxy"]
    with httpx.Client(timeout=30, trust_env=False) as client:
        client.put(f"{proxy}/v1/gateway/prices", json={"prices": [PRICE]}, headers=ADMIN)
        key = client.post(
            f"{proxy}/v1/gateway/keys", json={"name": "load", "max_budget_usd": 100}, headers=ADMIN
        ).json()
    statuses: Counter = Counter()
    costs: list[int] = []
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(timeout=30, trust_env=False) as client:
            for _ in range(REQUESTS_EACH):
                answer = client.post(
                    f"{proxy}/v1/responses",
                    json={"model": "fake-model", "input": "count me", "store": False},
                    headers={"Authorization": f"Bearer {key['secret']}"},
                )
                usage = answer.json().get("usage") or {}
                with lock:
                    statuses[answer.status_code] += 1
                    costs.append(
                        usage.get("input_tokens", 0) * 1 + usage.get("output_tokens", 0) * 2
                    )

    threads = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses == {200: CLIENTS * REQUESTS_EACH}
    served = [log.read_text().count("POST /v1/responses") for log in two_nodes["logs"]]
    assert all(served), f"nginx sent every request to one node: {served}"
    with httpx.Client(timeout=30, trust_env=False) as client:
        summary = client.get(f"{proxy}/v1/gateway/usage/summary?group_by=key", headers=ADMIN)
        (row,) = summary.json()["data"]
        usage = client.get(f"{proxy}/v1/gateway/keys/{key['id']}", headers=ADMIN).json()["usage"]
    assert row["requests"] == CLIENTS * REQUESTS_EACH
    assert row["cost_usd"] == pytest.approx(sum(costs) / 1e6)
    assert usage["period_spend_usd"] == pytest.approx(sum(costs) / 1e6)
    assert usage["reserved_usd"] == 0
