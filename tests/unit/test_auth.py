"""Auth without a server: token format, hashes, model globs, log masks, the open-relay guard."""

from __future__ import annotations

import pytest

from app.auth import tokens
from app.auth.principal import Principal
from app.config import ConfigError, load_settings
from app.logs import mask_secrets

PEPPER = b"p" * 32


def test_a_token_is_its_lookup_id_and_secret():
    lookup, secret = tokens.new_lookup_id(), tokens.new_secret()
    token = tokens.token(lookup, secret)
    assert len(lookup) == tokens.LOOKUP_LENGTH and len(secret) == tokens.SECRET_LENGTH
    assert token.startswith(tokens.token_prefix(lookup) + "_")
    assert tokens.parse(token) == (lookup, secret)
    assert tokens.new_secret() != secret


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "sk-abc",
        "gw-ABCDEFGH_" + "a" * 43,  # the lookup id is lowercase
        "gw-abcdefg_" + "a" * 43,
        "gw-abcdefgh_" + "a" * 42,
        "gw-abcdefgh_" + "a" * 44,
        "gw-abcdefgh-" + "a" * 43,
        "gw-abcdefgh_" + "a" * 42 + "=",
        " gw-abcdefgh_" + "a" * 43,
    ],
)
def test_anything_else_is_not_a_token(presented):
    assert tokens.parse(presented) is None


def test_only_the_secret_with_that_hash_matches():
    secret = tokens.new_secret()
    stored = tokens.secret_hash(PEPPER, secret)
    assert secret not in stored
    assert tokens.matches(PEPPER, secret, stored)
    assert not tokens.matches(PEPPER, tokens.new_secret(), stored)
    assert not tokens.matches(b"q" * 32, secret, stored)
    assert not tokens.matches(PEPPER, secret, None)


def test_derived_keys_differ_by_use_and_by_server_secret():
    derived = {
        tokens.derive(b"s" * 32, label)
        for label in (tokens.KEY_PEPPER, tokens.PASSTHROUGH_OWNER, tokens.IDEMPOTENCY)
    }
    assert len(derived) == 3
    assert tokens.derive(b"s" * 32, tokens.KEY_PEPPER) != tokens.derive(
        b"t" * 32, tokens.KEY_PEPPER
    )


def test_a_passthrough_owner_is_an_hmac_of_the_key_never_the_key():
    owner = tokens.owner_of_key(PEPPER, "sk-client-key-0123456789")
    assert owner.startswith(tokens.OWNER_PREFIX) and "sk-client" not in owner
    assert owner == tokens.owner_of_key(PEPPER, "sk-client-key-0123456789")
    assert owner != tokens.owner_of_key(PEPPER, "sk-client-key-0123456780")
    assert owner != tokens.owner_of_key(b"q" * 32, "sk-client-key-0123456789")


@pytest.mark.parametrize(
    ("allowed", "model", "may"),
    [
        (None, "anything", True),
        ((), "anything", False),
        (("gpt-4o*",), "gpt-4o-mini", True),
        (("gpt-4o*",), "gpt-4", False),
        (("llama-?b",), "llama-8b", True),
        (("Qwen/*",), "qwen/x", False),  # case matters, as in model names
        (("a", "b*"), "bee", True),
    ],
)
def test_allowed_models_are_case_sensitive_globs(allowed, model, may):
    assert Principal(allowed_models=allowed).may_use(model) is may


def test_virtual_keys_are_masked_wherever_they_appear_in_a_log_line():
    token = tokens.token(tokens.new_lookup_id(), tokens.new_secret())
    line = mask_secrets(f"refused {token} twice, then Bearer {token}")
    assert token not in line and line.count(token[:6]) == 2


def test_passthrough_lending_backend_keys_beyond_loopback_refuses_to_start():
    exposed = {"HOST_PORT": "0.0.0.0:8080", "OPENAI_API_KEY": "sk-operator-0123456789"}
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=exposed)
    message = str(refused.value)
    assert message.startswith("GATEWAY_AUTH:") and "GATEWAY_ALLOW_OPEN_RELAY" in message
    assert "sk-operator" not in message
    for allowed in (
        {**exposed, "GATEWAY_AUTH": "keys"},
        {**exposed, "GATEWAY_ALLOW_OPEN_RELAY": "true"},
        {**exposed, "HOST_PORT": "127.0.0.1:8080"},
        {**exposed, "HOST_PORT": "[::1]:8080"},
        {"HOST_PORT": "0.0.0.0:8080"},  # no key of its own: clients bring theirs
    ):
        assert load_settings(environ=allowed)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"GATEWAY_AUTH": "tokens"}, "GATEWAY_AUTH"),
        ({"GATEWAY_ADMIN_TOKEN": "short"}, "GATEWAY_ADMIN_TOKEN"),
        ({"GATEWAY_AUTH_SECRET": "short"}, "GATEWAY_AUTH_SECRET"),
        ({"GATEWAY_STORE_SHARING": "everyone"}, "GATEWAY_STORE_SHARING"),
        ({"GATEWAY_ALLOW_OPEN_RELAY": "maybe"}, "GATEWAY_ALLOW_OPEN_RELAY"),
    ],
)
def test_bad_auth_settings_name_their_variable(environ, named):
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=environ)
    assert str(refused.value).startswith(f"{named}:")


def test_auth_secrets_stay_out_of_the_settings_repr():
    settings = load_settings(
        environ={"GATEWAY_ADMIN_TOKEN": "admin-0123456789abcdef", "GATEWAY_AUTH_SECRET": "s" * 20}
    )
    assert "admin-0123456789abcdef" not in repr(settings) and "s" * 20 not in repr(settings)
