"""The real Codex CLI, configured with the gateway as its Responses provider.

The fake Chat backend scripts a task: run a shell command (`exec_command`),
then add a file with `apply_patch` (a free-form `custom` tool), then answer.
Codex runs both tools for real, with `store: false` and its reasoning
carried back to the gateway as sealed `encrypted_content`.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.gateway_process import ROOT, Gateway
from tests.fakebackend import FakeBackend, text, tool_calls

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).parent / "codex" / "config.toml"
LOCAL_CODEX = ROOT / ".cache" / "codex" / "node_modules" / ".bin" / "codex"
CODEX_TIMEOUT = 120
KEY = "sk-codex-test-0123456789abcdef"
THOUGHT = "I should run a shell command first."
PATCH = '*** Begin Patch\n*** Add File: hello.py\n+print("hello from apply_patch")\n*** End Patch\n'


def codex_binary() -> str:
    found = shutil.which("codex") or (str(LOCAL_CODEX) if LOCAL_CODEX.exists() else None)
    if found is None:
        pytest.skip("Codex CLI not installed (scripts/install-test-tools installs it with npm)")
    return found


def run_codex(gateway: Gateway, tmp_path: Path, websockets: bool = False) -> tuple[Path, str]:
    """Run `codex exec` on a fresh work dir; return the dir and Codex's output."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "codex").mkdir(parents=True)
    work.mkdir()
    config = CONFIG.read_text()
    if websockets:
        config = config.replace("supports_websockets = false", "supports_websockets = true")
    (home / "codex" / "config.toml").write_text(config)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(home / "codex"),
        "GATEWAY_API_KEY": KEY,
    }
    command = [
        codex_binary(),
        "exec",
        "-c",
        f'model_providers.gateway.base_url="{gateway.url}/v1"',
        "--skip-git-repo-check",
        "--ephemeral",
        "--json",
        "-C",
        str(work),
        "Run a command that writes from_shell.txt, then add hello.py with apply_patch.",
    ]
    done = subprocess.run(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CODEX_TIMEOUT,
    )
    output = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, output + "\ngateway log:\n" + gateway.log_text()
    return work, output


def script_task(backend: FakeBackend) -> None:
    backend.enqueue(
        tool_calls(
            [
                {
                    "name": "exec_command",
                    "arguments": json.dumps({"cmd": "echo hello > from_shell.txt"}),
                }
            ],
            reasoning=THOUGHT,
        ),
        tool_calls([{"name": "apply_patch", "arguments": json.dumps({"input": PATCH})}]),
        text("Done: ran the command and created hello.py."),
    )


def tool_message_after(messages: list[dict], call_name: str) -> tuple[dict, dict]:
    """The assistant turn that called `call_name`, and the tool message answering it."""
    for index, message in enumerate(messages):
        for call in message.get("tool_calls") or ():
            if call["function"]["name"] == call_name:
                answer = messages[index + 1]
                assert answer == {**answer, "role": "tool", "tool_call_id": call["id"]}
                return message, answer
    raise AssertionError(f"no {call_name} call in {messages}")


def test_codex_runs_a_shell_command_and_an_apply_patch_through_the_gateway(
    start_gateway, backend, tmp_path
):
    gateway = start_gateway()
    script_task(backend)
    work, output = run_codex(gateway, tmp_path)

    assert (work / "from_shell.txt").read_text().strip() == "hello"
    assert 'print("hello from apply_patch")' in (work / "hello.py").read_text()
    assert "Done: ran the command and created hello.py." in output
    requests = backend.chat_requests()
    assert len(requests) == 3
    shell_turn, shell_output = tool_message_after(requests[1]["messages"], "exec_command")
    assert shell_turn["reasoning_content"] == THOUGHT  # came back sealed, through Codex
    assert "exited with code 0" in shell_output["content"]
    patch_turn, patch_output = tool_message_after(requests[2]["messages"], "apply_patch")
    patch_call = patch_turn["tool_calls"][0]["function"]
    assert json.loads(patch_call["arguments"]) == {"input": PATCH}
    assert "hello.py" in patch_output["content"]
    for request in requests:
        kinds = {tool["type"] for tool in request.get("tools", ())}
        assert kinds == {"function"}
    assert KEY not in gateway.log_text()
    with sqlite3.connect(tmp_path / "gateway.db") as database:  # store: false
        assert database.execute("SELECT COUNT(*) FROM responses").fetchone() == (0,)


def test_codex_falls_back_from_websockets_at_once(start_gateway, backend, tmp_path):
    gateway = start_gateway()
    backend.enqueue(text("Hello over plain HTTP."))
    started = time.monotonic()
    _, output = run_codex(gateway, tmp_path, websockets=True)
    assert "Hello over plain HTTP." in output
    assert time.monotonic() - started < CODEX_TIMEOUT / 2
    assert '"GET /v1/responses HTTP/1.1" 404' in gateway.log_text()
