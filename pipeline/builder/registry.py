"""Does an image tag exist in its registry? The OCI distribution API, with the user's credentials.

One HEAD of /v2/<repository>/manifests/<tag> answers it: 200 yes, 404 no. A 401 names a token
service (`WWW-Authenticate: Bearer realm=...`): flash asks it for a pull token, with the user's
docker or podman login when there is one (~/.docker/config.json, containers' auth.json), and asks
again. Credentials are read, sent to the registry's own token service, and never printed.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Reference:
    host: str  # the registry's address, e.g. ghcr.io or 127.0.0.1:5000
    repository: str
    tag: str

    @property
    def api(self) -> str:
        return "registry-1.docker.io" if self.host == "docker.io" else self.host


def parse(image: str) -> Reference:
    """host/repository:tag, with Docker Hub's defaults (docker.io, library/, latest)."""
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
    else:
        host, repository = "docker.io", name if "/" in name else f"library/{name}"
    return Reference(host, repository, tag or "latest")


def exists(image: str, *, insecure: bool = False, timeout: float = 15.0) -> bool | None:
    """True or False from the registry; None when it could not say (unreachable, no access)."""
    import requests

    ref = parse(image)
    url = f"{'http' if insecure else 'https'}://{ref.api}/v2/{ref.repository}/manifests/{ref.tag}"
    headers = {"Accept": MANIFEST_TYPES}
    try:
        answer = requests.head(url, headers=headers, timeout=timeout)
        if answer.status_code == 401:
            token = _token(answer.headers.get("WWW-Authenticate", ""), ref, timeout)
            if token is None:
                return None
            answer = requests.head(url, headers={**headers, "Authorization": f"Bearer {token}"}, timeout=timeout)
    except requests.RequestException:
        return None
    if answer.status_code == 200:
        return True
    if answer.status_code == 404:
        return False
    return None


def _token(challenge: str, ref: Reference, timeout: float) -> str | None:
    import requests

    if not challenge.lower().startswith("bearer "):
        return None
    fields = dict(_CHALLENGE.findall(challenge))
    if "realm" not in fields:
        return None
    params = {"service": fields.get("service", ""), "scope": fields.get("scope", f"repository:{ref.repository}:pull")}
    login = credentials(ref.host)
    try:
        answer = requests.get(fields["realm"], params=params, auth=login, timeout=timeout)
        data: dict[str, Any] = answer.json() if answer.ok else {}
    except (requests.RequestException, ValueError):
        return None
    token = data.get("token") or data.get("access_token")
    return str(token) if token else None


def credentials(host: str) -> tuple[str, str] | None:
    """The user's login for a registry from docker's or podman's auth file, if any."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    files = [
        Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json",
        *([Path(runtime) / "containers" / "auth.json"] if runtime else []),
        Path.home() / ".config" / "containers" / "auth.json",
    ]
    keys = (
        {host, f"https://{host}", "https://index.docker.io/v1/"} if host == "docker.io" else {host, f"https://{host}"}
    )
    for path in files:
        try:
            auths = json.loads(path.read_text(encoding="utf-8")).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        for key in keys:
            encoded = auths.get(key, {}).get("auth") if isinstance(auths.get(key), dict) else None
            if encoded:
                try:
                    user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
                except (ValueError, UnicodeDecodeError):
                    continue
                return user, password
    return None
