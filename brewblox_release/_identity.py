"""Who signs a release (docs/signing.md): a cosign key and its password, or GitHub's OIDC
identity (keyless). Both variables are secrets: masked, and handed to cosign alone."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import CredentialsError
from ._run import run
from ._secret import Secret

if TYPE_CHECKING:
    from ._dockerconfig import DockerConfig


KEY_VAR, PASSWORD_VAR = "COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD"
#: GitHub's OIDC request variables: keyless signing asks them for a token.
OIDC_VARS = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


@dataclass(frozen=True)
class Identity:
    key: Secret | None = None
    password: Secret = field(default_factory=lambda: Secret(""))
    oidc: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: The service's ``secret-vars``, which a KMS key's provider reads (``AWS_*``): cosign's.
    provider: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], secret_vars: Sequence[str] = ()) -> Identity | None:
        """The run's signer, if any; ``secret_vars``, the service's (a KMS provider's)."""
        if env.get(KEY_VAR):
            return cls(Secret(env[KEY_VAR]), Secret(env.get(PASSWORD_VAR) or ""),
                       provider={name: env[name] for name in secret_vars if name in env})
        if env.get("GITHUB_ACTIONS") == "true" and all(env.get(v) for v in OIDC_VARS):
            return cls(oidc={v: env[v] for v in OIDC_VARS})
        return None

    @property
    def key_ref(self) -> str:
        """What cosign's ``--key`` is given: a KMS reference or a key file as it is; anything
        else through its variable, as the key's text (never on a command line)."""
        assert self.key is not None
        text = self.key.reveal()
        if "\n" not in text.strip():
            with contextlib.suppress(OSError, ValueError):  # a name too long to be a file's
                if "://" in text or text.startswith("pkcs11:") or Path(text).is_file():
                    return text
        return f"env://{KEY_VAR}"

    def env(self, docker_config: DockerConfig | None = None) -> dict[str, str]:
        """cosign's environment: the identity's secrets and the run's docker config (its login)."""
        env = dict(self.oidc)
        if self.key is not None:
            env |= {KEY_VAR: self.key.reveal(), PASSWORD_VAR: self.password.reveal()}
            if "://" in self.key_ref and not self.key_ref.startswith("env://"):  # a KMS key
                env |= self.provider
        if docker_config is not None and docker_config.path is not None:
            env["DOCKER_CONFIG"] = str(docker_config.path)
        return env

    @functools.cached_property
    def public_key(self) -> str:
        """The key's public half (which also shows that the password opens the key: cosign
        says so without signing anything); asked of cosign once per identity."""
        result = run(["cosign", "public-key", "--key", self.key_ref], env=self.env(),
                     echo=False, stream=False, check=False)
        found = re.search(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----",
                          result.output, re.DOTALL)
        if result.returncode != 0 or found is None:
            if "decrypt" in result.output:
                raise CredentialsError(f"{PASSWORD_VAR} does not open {KEY_VAR} (cosign "
                                       "public-key failed): set the password the key was made "
                                       "with, or make the pair again (docs/signing.md)")
            why = next((line for line in reversed(result.lines) if line.strip()), "no answer")
            raise CredentialsError(
                f"cosign cannot read {KEY_VAR} as a key ({why.strip()}): give the text of "
                "cosign.key, a path to it, or a KMS reference (docs/signing.md)")
        return found.group() + "\n"
