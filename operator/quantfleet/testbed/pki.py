"""The local cluster's PKI: one CA, the API server's serving cert, an admin client cert and the
service-account signing key, written as PEM files (what kwokctl and envtest generate)."""

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The admin kubeconfig's user: its client certificate's common name (system:masters).
ADMIN_USER = "quantfleet-admin"
# Long enough for any test run or demo, short enough that a leaked key from a temp folder is moot.
VALIDITY = datetime.timedelta(days=7)

# The API server's names inside and outside the cluster; the first service IP is the in-cluster
# `kubernetes` Service, which pods (and so the operator's client) dial.
SERVING_DNS_NAMES = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
]


@dataclass(frozen=True)
class PkiPaths:
    """Where the PEM files of one cluster live."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path

    @classmethod
    def under(cls, folder: Path) -> "PkiPaths":
        return cls(
            ca_cert=folder / "ca.crt",
            ca_key=folder / "ca.key",
            serving_cert=folder / "apiserver.crt",
            serving_key=folder / "apiserver.key",
            admin_cert=folder / "admin.crt",
            admin_key=folder / "admin.key",
            service_account_key=folder / "sa.key",
            service_account_pub=folder / "sa.pub",
        )


def write_pki(folder: Path, first_service_ip: str) -> PkiPaths:
    """Generate a fresh PKI into `folder` (created, private) and return its paths."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    paths = PkiPaths.under(folder)
    now = _now()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("quantfleet-testbed-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    serving_key = ec.generate_private_key(ec.SECP256R1())
    addresses = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address(first_service_ip)]
    serving_cert = (
        _builder(_name("kube-apiserver"), ca_name, serving_key.public_key(), now)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in SERVING_DNS_NAMES]
                + [x509.IPAddress(address) for address in addresses]
            ),
            critical=False,
        )
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    # O=system:masters is the group the API server maps to cluster-admin, bypassing RBAC.
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
        ]
    )
    admin_cert = (
        _builder(admin_name, ca_name, admin_key.public_key(), now)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    # RSA because every consumer of service-account tokens accepts RS256.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    _write_cert(paths.ca_cert, ca_cert)
    _write_key(paths.ca_key, ca_key)
    _write_cert(paths.serving_cert, serving_cert)
    _write_key(paths.serving_key, serving_key)
    _write_cert(paths.admin_cert, admin_cert)
    _write_key(paths.admin_key, admin_key)
    _write_key(paths.service_account_key, sa_key)
    paths.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return paths


def issue_cert(
    pki: PkiPaths,
    cert_path: Path,
    common_name: str,
    *,
    organization: str | None = None,
    server_names: tuple[str, ...] = (),
) -> tuple[Path, Path]:
    """A cert and key signed by the cluster's CA, written beside `cert_path` (`.crt`/`.key`):
    a client cert for `common_name` (in `organization`), or a serving cert when `server_names`
    (DNS names or IP addresses) are given. Returns (cert, key)."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(x509.Name(attributes), ca_cert.subject, key.public_key(), _now())
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in server_names]),
            critical=False,
        )
    cert_path, key_path = cert_path.with_suffix(".crt"), cert_path.with_suffix(".key")
    _write_cert(cert_path, builder.sign(ca_key, hashes.SHA256()))
    _write_key(key_path, key)
    return cert_path, key_path


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def write_kubeconfig(
    path: Path, server: str, ca_cert: Path, cert: Path, key: Path, user: str = ADMIN_USER
) -> None:
    """A self-contained kubeconfig (certs inlined) for `server`, as `user`'s client cert."""

    def inline(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "quantfleet",
                "cluster": {"server": server, "certificate-authority-data": inline(ca_cert)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": inline(cert),
                    "client-key-data": inline(key),
                },
            }
        ],
        "contexts": [{"name": "quantfleet", "context": {"cluster": "quantfleet", "user": user}}],
        "current-context": "quantfleet",
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # Back-dated a minute so a clock that is a little behind still accepts the certs.
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
