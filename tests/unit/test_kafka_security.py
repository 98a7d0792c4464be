"""Engine-free checks of the local stack's Kafka security: the certificates it makes, the SCRAM credential it
formats the node with, and the settings it refuses before starting anything."""

from __future__ import annotations

import base64
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import SecretStr

from ray_app.config import load_settings
from ray_app.kafka_clients import client_config
from ray_app.stack.kafka import KafkaService, _scram_credential
from ray_app.stack.processes import StackError
from ray_app.stack.tls import ensure_server_certificate
from ray_app.testing.stack import REPO


def test_the_server_certificate_is_signed_by_the_stack_authority_for_the_listener_host(tmp_path: Path) -> None:
    files = ensure_server_certificate(tmp_path / "tls", "10.1.2.3", "kafka")
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.1.2.3") in sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    # what a TLS client does: trust only the authority, load the server's chain and key (OpenSSL checks they match)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca_cert))
    context.load_cert_chain(str(files.cert), str(files.key))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(files.keystore))  # the one-file PEM keystore Kafka reads holds key and chain too
    for private in (files.key, files.ca_key, files.keystore):
        assert private.stat().st_mode & 0o077 == 0, private


def test_certificates_are_kept_while_valid_and_remade_for_another_host(tmp_path: Path) -> None:
    first = ensure_server_certificate(tmp_path, "127.0.0.1", "kafka")
    pem = first.cert.read_bytes()
    assert ensure_server_certificate(tmp_path, "127.0.0.1", "kafka").cert.read_bytes() == pem
    moved = ensure_server_certificate(tmp_path, "kafka-1.internal", "kafka")
    assert moved.cert.read_bytes() != pem
    sans = (
        x509.load_pem_x509_certificate(moved.cert.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert "kafka-1.internal" in sans.get_values_for_type(x509.DNSName)
    first.ca_cert.write_text("not a certificate")  # a damaged authority is made again, not trusted
    assert ensure_server_certificate(tmp_path, "kafka-1.internal", "kafka").ca_cert.read_text().startswith("-----")


def _sasl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str | None):
    """Settings for the local stack's Kafka with SASL_SSL; a None in ``env`` leaves that key at its default."""
    values = {
        "STATE_DIR": str(tmp_path),
        "KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA__SASL_USERNAME": "ray-app",
        "KAFKA__SASL_PASSWORD": "p,w=d]x",
        "KAFKA__SSL_CA_LOCATION": str(tmp_path / "ca.pem"),
        **env,
    }
    for key, value in values.items():
        if value is not None:
            monkeypatch.setenv(f"RAY_APP_{key}", value)
    return load_settings()


def test_the_scram_credential_is_salted_and_never_carries_the_password(tmp_path, monkeypatch) -> None:
    settings = _sasl(tmp_path, monkeypatch)
    argument = _scram_credential(settings, {"mechanism": "SCRAM-SHA-512", "username": "ray-app"})
    assert "p,w=d]x" not in argument
    mechanism, body = argument.split("=", 1)
    assert mechanism == "SCRAM-SHA-512" and body.startswith("[") and body.endswith("]")
    fields = dict(part.split("=", 1) for part in body[1:-1].split(","))  # the storage tool splits on ',' too
    assert set(fields) == {"name", "iterations", "salt", "saltedpassword"}
    assert fields["name"] == "ray-app" and int(fields["iterations"]) >= 4096
    assert len(base64.b64decode(fields["saltedpassword"])) == 64  # SHA-512's size
    other = _scram_credential(settings, {"mechanism": "SCRAM-SHA-512", "username": "ray-app"})
    assert other != argument  # a fresh salt each time


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"KAFKA__SECURITY_PROTOCOL": "SSL"}, "kafka.security_protocol is SSL"),
        ({"KAFKA__SASL_MECHANISM": "PLAIN"}, "kafka.sasl_mechanism"),
        ({"KAFKA__SASL_USERNAME": "a,b"}, "kafka.sasl_username"),
        ({"KAFKA__SSL_CA_LOCATION": None}, "kafka.ssl_ca_location"),
    ],
)
def test_security_the_local_stack_cannot_run_is_refused_naming_the_key(tmp_path, monkeypatch, env, says) -> None:
    settings = _sasl(tmp_path, monkeypatch, **env)
    with pytest.raises(StackError, match=says.replace(".", r"\.")):
        KafkaService(settings)._security()


def test_ssl_ca_location_expands_the_home_folder(tmp_path, monkeypatch) -> None:
    settings = _sasl(tmp_path, monkeypatch, KAFKA__SSL_CA_LOCATION="~/kafka-ca.pem")
    assert settings.kafka.ssl_ca_location == Path.home() / "kafka-ca.pem"
    assert client_config(settings)["ssl.ca.location"] == str(Path.home() / "kafka-ca.pem")
    assert isinstance(settings.kafka.sasl_password, SecretStr)


def test_the_sasl_ssl_preset_loads_with_the_password_from_the_environment(tmp_path, monkeypatch) -> None:
    from ray_app.config import ConfigError

    preset = REPO / "configs" / "local-sasl-ssl.yaml"
    monkeypatch.setenv("RAY_APP_STATE_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="sasl_password"):
        load_settings(preset)
    monkeypatch.setenv("RAY_APP_KAFKA__SASL_PASSWORD", "from-the-environment")
    client = client_config(load_settings(preset))
    assert client["security.protocol"] == "SASL_SSL" and client["sasl.mechanism"] == "SCRAM-SHA-512"
    assert client["sasl.password"] == "from-the-environment"
    assert client["ssl.ca.location"] == str(Path.home() / ".ray-app" / "tls" / "kafka-ca.pem")
