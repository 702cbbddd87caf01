"""IAM: subjects (users, service accounts) and their folders, IAM tokens, authorized keys and the JWT exchange."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.emulator.base import StateBase
from local.emulator.errors import PERMISSION_DENIED, UNAUTHENTICATED, ApiError, invalid
from local.emulator.records import AuthorizedKey, Subject, TokenInfo, rfc3339

IAM_AUDIENCE = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
MAX_JWT_LIFETIME = 3600.0
CLOCK_SKEW = 300.0
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class AuthPart(StateBase):
    """Who may call: `authenticate` a Bearer token, `check_folder` a subject's access, `exchange_jwt` for a token."""

    def add_subject(self, subject_id: str, folders: Iterable[str], *, read_only: bool = False) -> Subject:
        with self.lock:
            subject = Subject(subject_id, set(folders), read_only)
            self.subjects[subject_id] = subject
            return subject

    def grant(self, subject_id: str, *folder_ids: str) -> None:
        with self.lock:
            self.subjects[subject_id].folders.update(folder_ids)

    def add_token(self, token: str, subject_id: str, *, expires_at: float | None = None) -> str:
        with self.lock:
            if subject_id not in self.subjects:
                raise KeyError(f"unknown subject {subject_id}")
            self.tokens[token] = TokenInfo(subject_id, expires_at)
            return token

    def issue_token(self, subject_id: str, lifetime: float | None = None) -> tuple[str, float]:
        """A new `t1.` token for the subject; lifetime in clock seconds (None: the state's token_lifetime)."""
        with self.lock:
            body = "".join(self._id_rng.choice(_B64URL) for _ in range(22))
            sig = "".join(self._id_rng.choice(_B64URL) for _ in range(86))
            token = f"t1.{body}.{sig}"
            expires = self.now() + (self.token_lifetime if lifetime is None else lifetime)
            self.add_token(token, subject_id, expires_at=expires)
            return token, expires

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def register_key(self, key_id: str, service_account_id: str, public_key_pem: str) -> AuthorizedKey:
        with self.lock:
            if service_account_id not in self.subjects:
                self.add_subject(service_account_id, [])
            key = AuthorizedKey(key_id, service_account_id, public_key_pem)
            self.keys[key_id] = key
            return key

    def create_authorized_key(self, service_account_id: str, folders: Iterable[str] | None = None) -> dict[str, str]:
        """Generate an RSA-2048 key pair, register it and return the key JSON as `yc iam key create` writes it."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public_pem = (
            private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        with self.lock:
            if folders is not None:
                if service_account_id in self.subjects:
                    self.grant(service_account_id, *folders)
                else:
                    self.add_subject(service_account_id, folders)
            key_id = self.new_id("aje")
            self.register_key(key_id, service_account_id, public_pem)
            return {
                "id": key_id,
                "service_account_id": service_account_id,
                "created_at": rfc3339(self.now()),
                "key_algorithm": "RSA_2048",
                "public_key": public_pem,
                "private_key": private_pem,
            }

    def authenticate(self, authorization: str | None) -> Subject:
        """`Authorization: Bearer <token>` -> the subject; 401 UNAUTHENTICATED when missing/unknown/expired."""
        with self.lock:
            if not authorization:
                raise ApiError(UNAUTHENTICATED, "The token is missing: send Authorization: Bearer <IAM token>.")
            scheme, _, token = authorization.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise ApiError(UNAUTHENTICATED, "Unsupported authorization scheme: expected Bearer <IAM token>.")
            info = self.tokens.get(token)
            if info is None or (info.expires_at is not None and self.now() >= info.expires_at):
                raise ApiError(UNAUTHENTICATED, "Token is invalid or has expired.")
            subject = self.subjects.get(info.subject_id)
            if subject is None:
                raise ApiError(UNAUTHENTICATED, "Token is invalid or has expired.")
            return subject

    def exchange_jwt(self, token: Any) -> tuple[str, float]:
        """POST /iam/v1/tokens: verify a PS256 JWT signed by a registered authorized key; issue an IAM token."""
        if not isinstance(token, str) or not token:
            raise invalid("jwt: a signed JWT is required", "jwt")
        if len(token) > 8000:
            raise invalid("jwt: longer than 8000 characters", "jwt")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise invalid(f"jwt: malformed JWT ({exc})", "jwt") from exc
        if header.get("alg") != "PS256":
            raise ApiError(UNAUTHENTICATED, "JWT: the only supported algorithm is PS256")
        with self.lock:
            key = self.keys.get(str(header.get("kid", "")))
            if key is None:
                raise ApiError(UNAUTHENTICATED, "JWT: unknown key id (kid)")
            try:
                claims = jwt.decode(
                    token,
                    key.public_key,
                    algorithms=["PS256"],
                    audience=IAM_AUDIENCE,
                    options={
                        "verify_exp": False,  # checked below against the emulator's clock
                        "verify_iat": False,
                        "verify_nbf": False,
                        "require": ["iss", "aud", "iat", "exp"],
                    },
                )
            except jwt.InvalidAudienceError as exc:
                raise ApiError(UNAUTHENTICATED, f"JWT: aud must be {IAM_AUDIENCE}") from exc
            except jwt.InvalidSignatureError as exc:
                raise ApiError(UNAUTHENTICATED, "JWT: signature verification failed") from exc
            except jwt.PyJWTError as exc:
                raise ApiError(UNAUTHENTICATED, f"JWT: invalid ({exc})") from exc
            now = self.now()
            try:
                iat, exp = float(claims["iat"]), float(claims["exp"])
            except (TypeError, ValueError) as exc:
                raise ApiError(UNAUTHENTICATED, "JWT: iat and exp must be numbers") from exc
            if claims.get("iss") != key.service_account_id:
                raise ApiError(UNAUTHENTICATED, "JWT: iss is not the key's service account")
            if exp <= now:
                raise ApiError(UNAUTHENTICATED, "JWT: expired")
            if iat > now + CLOCK_SKEW:
                raise ApiError(UNAUTHENTICATED, "JWT: issued in the future")
            if exp <= iat or exp - iat > MAX_JWT_LIFETIME:
                raise ApiError(UNAUTHENTICATED, "JWT: exp must be after iat and at most one hour later")
            return self.issue_token(key.service_account_id)

    def check_folder(self, subject: Subject, folder_id: str, *, write: bool = False) -> None:
        if folder_id not in subject.folders:
            raise ApiError(PERMISSION_DENIED, f"Permission denied to folder {folder_id}")
        if write and subject.read_only:
            raise ApiError(PERMISSION_DENIED, f"Permission denied: {subject.id} may not modify folder {folder_id}")
