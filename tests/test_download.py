"""A failed download says why in one line: a certificate this Python cannot verify (a python.org
Python on macOS before "Install Certificates.command") is not blamed on the network.

The server is a real HTTPS server on 127.0.0.1 with a self-signed certificate made for the test, so the
failure is the one urllib and Keras meet, and trusting the certificate makes the same download work."""

import socket

import pytest

from catdog.data.download import _download
from catdog.data.errors import DataError
from tests.helpers.https import ARCHIVE

NETWORK = "is the network reachable"


def test_an_unverifiable_certificate_is_named_not_the_network(https_server, tmp_path):
    base, _certificate = https_server
    target = tmp_path / "x.zip"
    with pytest.raises(DataError) as error:
        _download(f"{base}/x.zip", target, None)
    message = str(error.value)
    assert "certificate" in message and "Install Certificates.command" in message, message
    assert NETWORK not in message and "\n" not in message, message
    assert message.startswith(f"could not download {base}/x.zip: "), message
    assert not target.exists() and not target.with_suffix(".part").exists()


def test_once_the_certificate_is_trusted_the_same_download_works(https_server, tmp_path, monkeypatch):
    """What "Install Certificates.command" does, in small: give OpenSSL the CA it lacked."""
    base, certificate = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    target = tmp_path / "x.zip"
    _download(f"{base}/x.zip", target, None)
    assert target.read_bytes() == ARCHIVE and not target.with_suffix(".part").exists()


def test_a_refused_connection_still_asks_about_the_network(tmp_path):
    target = tmp_path / "x.zip"
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused, and no one can take the port
        with pytest.raises(DataError) as error:
            _download(f"https://127.0.0.1:{unused.getsockname()[1]}/x.zip", target, None)
    message = str(error.value)
    assert NETWORK in message and "certificate" not in message and "\n" not in message, message
    assert not target.exists() and not target.with_suffix(".part").exists()


def test_the_weights_download_names_the_certificate_too(https_server, tmp_path, monkeypatch):
    """Keras's get_file wraps the URLError in a bare Exception: the certificate is still found."""
    from catdog import config
    from catdog.models.architectures import backbone_weights_path
    from catdog.models.model4 import WeightsUnavailable

    base, _certificate = https_server
    monkeypatch.setattr(config, "BACKBONE_WEIGHTS_URL", f"{base}/{config.BACKBONE_WEIGHTS_FILE}")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path), raising=False)
    with pytest.raises(WeightsUnavailable) as error:
        backbone_weights_path()
    message = str(error.value)
    assert "Install Certificates.command" in message and "\n" not in message, message
    assert not (tmp_path / "models" / config.BACKBONE_WEIGHTS_FILE).exists()
