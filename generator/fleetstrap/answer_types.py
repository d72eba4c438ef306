"""The types of answers: one check per type, each returning why a value is refused (or None).

Answers are the boundary of fleetstrap: every value in a generated file comes from one of them, so each is held to
the grammar of the place it ends up (a URL Flux and Argo CD fetch, a DNS name an Ingress serves, an OCI repository a
registry accepts, a branch git accepts) and nothing more. The checks are deliberately narrower than the grammars
where the grammar admits characters that mean something to YAML or a shell (quotes, `$`, backticks, `;`): the
templates quote every value as well (templates/quote.jinja), but a value that needs quoting to be safe is almost
always a mistake or an attack, and refusing it names the problem before anything is written.

Each check takes a label naming the answer ("answer 'registry'", "cluster 'edge': server") and returns the one line
the user sees, or None when the value is of the type.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

Check = Callable[[str, str], "str | None"]

MAX_URL = 2048
MAX_DNS = 253
MAX_EMAIL = 254
MAX_BRANCH = 244  # refs/heads/ + 244 stays within git's 255-byte ref component budget on every filesystem
MAX_CONTEXT = 253
MAX_REPOSITORY = 255  # the OCI distribution spec's limit for a repository name

_DNS_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_LOWER_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*$")
# OCI distribution reference grammar (the registry part: a domain with optional port; then path components).
_OCI_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_OCI_DOMAIN = re.compile(rf"^{_OCI_DOMAIN_COMPONENT}(?:\.{_OCI_DOMAIN_COMPONENT})*(?::[0-9]+)?$")
_OCI_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_CONTEXT = re.compile(r"^[A-Za-z0-9._:/@+-]+$")
# Characters git allows in a branch that mean something to a shell or to YAML: fleetstrap writes the branch into
# workflow files and manifests, so it takes only the plain ones.
_BRANCH_CHARS = re.compile(r"^[A-Za-z0-9._/+-]+$")
# RFC 3986 characters of a scheme, authority and path, without the sub-delimiters a shell or YAML reads
# (! $ & ' ( ) * , ; =) and without query and fragment (meaningless for a Git remote or an API server).
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/\[\]@%+-]")


_USERINFO = re.compile(r"[^\s/@]*:[^\s/@]*@")


def _shown(value: str) -> str:
    """A refused value as the message shows it: a password before '@' masked (a message is printed and logged)."""
    return repr(_USERINFO.sub("***@", value))


def _text_problem(value: str, key: str, limit: int) -> str | None:
    """Shared by every text type: no whitespace or control characters, ASCII only, bounded length."""
    if not value:
        return f"{key} must not be empty"
    if len(value) > limit:
        return f"{key} is longer than {limit} characters"
    for ch in value:
        if ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"{key} must not contain whitespace or control characters (found {ch!r})"
        if not ch.isascii():
            return f"{key} must be ASCII (found {ch!r}; write an internationalized domain in punycode)"
    return None


def dns_name_problem(value: str, key: str, *, lowercase: bool = True, min_labels: int = 1) -> str | None:
    """An RFC 1123 host name: dot-separated labels of letters, digits and '-', at most 253 characters."""
    problem = _text_problem(value, key, MAX_DNS)
    if problem:
        return problem
    labels = value.split(".")
    pattern = _LOWER_DNS_LABEL if lowercase else _DNS_LABEL
    rule = "lowercase letters, digits and '-'" if lowercase else "letters, digits and '-'"
    if len(labels) < min_labels or not all(pattern.match(label) for label in labels):
        dots = " with at least one dot" if min_labels > 1 else ""
        return (f"{key}: {_shown(value)} is not a DNS name (RFC 1123: labels of {rule}, 1-63 characters, "
                f"not starting or ending with '-', separated by dots{dots})")
    return None


def _host_problem(host: str, key: str) -> str | None:
    """A host: a DNS name, an IPv4 address or a bracketed IPv6 address."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{key}: {host!r} is not an IPv6 address"
        return None
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{key}: {host!r} is not an IPv4 address"
        return None
    return dns_name_problem(host.lower(), key, lowercase=True)


def _port_problem(port: str, key: str) -> str | None:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{key}: port {port!r} is not a number from 1 to 65535"
    return None


def url_problem(value: str, key: str, schemes: tuple[str, ...], *, user_schemes: tuple[str, ...] = ()) -> str | None:
    """A URL: scheme from `schemes`, a host, an optional port 1-65535, no credentials.

    A user name alone is accepted for `user_schemes` (ssh://git@host: the user is not a secret); a password never
    is, and for every other scheme no userinfo at all (a token in a URL would be written into the repo)."""
    problem = _text_problem(value, key, MAX_URL)
    if problem:
        return problem
    bad = next((ch for ch in value if not _URL_CHARS.match(ch)), None)
    if bad is not None:
        return (f"{key}: URL contains {bad!r}; fleetstrap takes letters, digits and . _ ~ : / [ ] @ % + - "
                "(no query, fragment, quotes or shell characters: percent-encode anything else)")
    scheme, sep, _ = value.partition("://")
    if not sep or scheme.lower() not in schemes:
        return f"{key} must be an {' or '.join(s + '://' for s in schemes)} URL (got {_shown(value)})"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return f"{key}: {_shown(value)} is not a URL (port must be a number from 1 to 65535)"
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        if ":" in userinfo or parts.scheme.lower() not in user_schemes:
            return f"{key}: URL must not carry credentials (user or password before '@'); " \
                   "give the credentials to the cluster as a Secret, not in the URL"
        if not re.fullmatch(r"[A-Za-z0-9._-]+", userinfo):
            return f"{key}: URL user name {userinfo!r} may hold only letters, digits, '.', '_' and '-'"
    host = parts.netloc.rpartition("@")[2]
    host = host.rsplit(":", 1)[0] if port is not None or host.endswith(":") else host
    if not host:
        return f"{key}: {_shown(value)} has no host"
    problem = _host_problem(host, key)
    if problem:
        return problem
    if port is not None and not 1 <= port <= 65535:
        return f"{key}: port {port} is not a number from 1 to 65535"
    if parts.netloc.endswith(":"):
        return f"{key}: {_shown(value)} has an empty port"
    return None


def https_url_problem(value: str, key: str) -> str | None:
    return url_problem(value, key, ("https",))


def git_url_problem(value: str, key: str) -> str | None:
    """A URL Flux and Argo CD clone: ssh:// (user name allowed, e.g. git@), https:// or http:// (local servers)."""
    if re.match(r"^[A-Za-z0-9._-]+@[^/:]+:", value) and "://" not in value:
        return f"{key}: scp-like {_shown(value)} is not a URL Flux accepts; write ssh://{value.replace(':', '/', 1)}"
    return url_problem(value, key, ("ssh", "https", "http"), user_schemes=("ssh",))


def email_problem(value: str, key: str) -> str | None:
    """An e-mail address: a plain local part (letters, digits, '.', '_', '%', '+', '-'), '@', a DNS domain."""
    problem = _text_problem(value, key, MAX_EMAIL)
    if problem:
        return problem
    local, at, domain = value.rpartition("@")
    if not at or not local or len(local) > 64 or not _EMAIL_LOCAL.match(local):
        return (f"{key}: {_shown(value)} is not an e-mail address (a local part of letters, digits, "
                "'.', '_', '%', '+' and '-', then '@' and a domain)")
    return dns_name_problem(domain.lower(), key, min_labels=2)


def image_repository_problem(value: str, key: str) -> str | None:
    """A registry with an optional repository path, in the OCI reference grammar: `ghcr.io/acme`,
    `registry.example.com:5000/team/images`. The registry host must be explicit (images are `<value>/<service>`,
    and the release workflow logs in to the host part)."""
    problem = _text_problem(value, key, MAX_REPOSITORY)
    if problem:
        return problem
    domain, _, path = value.partition("/")
    if not _OCI_DOMAIN.match(domain) or not ("." in domain or ":" in domain or domain == "localhost"):
        return (f"{key}: {_shown(value)} must start with a registry host (e.g. ghcr.io/acme, "
                "registry.example.com:5000/team): the OCI reference grammar's domain[:port]")
    if ":" in domain:
        problem = _port_problem(domain.rsplit(":", 1)[1], key)
        if problem:
            return problem
    if path and not all(_OCI_PATH_COMPONENT.match(c) for c in path.split("/")):
        return (f"{key}: {_shown(value)}: repository path components must be lowercase letters and digits, "
                "separated by '.', '_', '__' or '-' (OCI reference grammar)")
    return None


def endpoint_problem(value: str, key: str) -> str | None:
    """A `host:port` endpoint (the OTLP gRPC exporter's form): a DNS name or IP address and a port."""
    problem = _text_problem(value, key, MAX_DNS + 8)
    if problem:
        return problem
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        return f"{key}: {_shown(value)} must be host:port (e.g. tempo.observability.svc.cluster.local:4317)"
    return _host_problem(host, key) or _port_problem(port, key)


def branch_problem(value: str, key: str) -> str | None:
    """A branch name by `git check-ref-format --branch` rules, in letters, digits, '.', '_', '/', '+', '-'."""
    problem = _text_problem(value, key, MAX_BRANCH)
    if problem:
        return problem
    if not _BRANCH_CHARS.match(value):
        bad = next(ch for ch in value if not _BRANCH_CHARS.match(ch))
        return (f"{key}: branch {_shown(value)} contains {bad!r}; fleetstrap takes letters, digits, "
                "'.', '_', '/', '+' and '-' (the branch is written into workflows and manifests)")
    rules = (
        (value.startswith("-"), "must not start with '-'"),
        (value.startswith("/") or value.endswith("/") or "//" in value, "must not start or end with '/' or hold '//'"),
        (".." in value, "must not contain '..'"),
        (value.endswith("."), "must not end with '.'"),
        (any(c.startswith(".") or c.endswith(".lock") for c in value.split("/")),
         "no path component may start with '.' or end with '.lock'"),
        (value == "HEAD", "HEAD is not a branch name"),
    )
    for broken, rule in rules:
        if broken:
            return f"{key}: branch {_shown(value)} {rule} (git check-ref-format)"
    return None


def context_problem(value: str, key: str) -> str | None:
    """A kubeconfig context name as the clouds write them (`kind-dev`, `gke_proj_zone_name`, `admin@cluster`,
    `arn:aws:eks:region:account:cluster/name`): letters, digits and . _ : / @ + -."""
    problem = _text_problem(value, key, MAX_CONTEXT)
    if problem:
        return problem
    if not _CONTEXT.match(value):
        return (f"{key}: kube context {_shown(value)} may hold only letters, digits and "
                "'.', '_', ':', '/', '@', '+', '-'")
    return None


# ---------------------------------------------------------------- reserved names

# cargo refuses these as binary target names ("the binary target name `build` is forbidden"): they are the
# directories of target/<profile>/.
CARGO_RESERVED_TARGETS = frozenset({"build", "deps", "examples", "incremental"})
# Rust's strict and reserved keywords (2015-2024 editions): cargo refuses a package named after one.
RUST_KEYWORDS = frozenset({
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod",
    "move", "mut", "override", "priv", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
})
# cargo refuses package names that shadow a built-in library.
RUST_BUILTIN_CRATES = frozenset({"alloc", "core", "proc-macro", "proc_macro", "std", "test"})
# Windows device names: cargo refuses them as package names (a checkout on Windows could not hold the directory).
WINDOWS_DEVICE_NAMES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                                  *(f"lpt{i}" for i in range(1, 10))})


def reserved_name_problem(value: str, what: str, *, rust: bool = False) -> str | None:
    """Why a name the toolchain forbids is refused; None when it is free. `rust`: the name is also a cargo
    package and binary (services)."""
    if value.startswith("kube-"):
        return f"{what} {value!r}: the 'kube-' prefix is reserved for Kubernetes system namespaces"
    if not rust:
        return None
    if value in CARGO_RESERVED_TARGETS:
        return f"{what} {value!r} is reserved: cargo forbids it as a binary target name (a target/ directory)"
    crate = value.replace("-", "_")
    if crate in RUST_KEYWORDS:
        return f"{what} {value!r} is reserved: it is a Rust keyword, which cargo refuses as a package name"
    if value in RUST_BUILTIN_CRATES or crate in RUST_BUILTIN_CRATES:
        return f"{what} {value!r} is reserved: cargo refuses a package named after a Rust built-in library"
    if value in WINDOWS_DEVICE_NAMES:
        return f"{what} {value!r} is reserved: a Windows device name, which cargo refuses as a package name"
    return None


# One word of `fleetstrap_pip`: what pip takes on its command line (requirements, URLs, options), nothing a shell
# would read as syntax. The workflows quote each word.
_PIP_WORD = re.compile(r"^[A-Za-z0-9_.,:/@+=~<>!%\[\]-]+$")
MAX_PIP = 1024


def pip_args_problem(value: str, key: str) -> str | None:
    """`fleetstrap_pip`: pip install arguments ending with what installs fleetstrap (a requirement, a git or wheel
    URL), optionally after index options; empty means the release that rendered the fleet."""
    if len(value) > MAX_PIP:
        return f"{key}: longer than {MAX_PIP} characters"
    words = value.split()
    bad = next((w for w in words if not _PIP_WORD.match(w)), None)
    if bad is not None:
        return f"{key}: {_shown(bad)} is not a pip argument (letters, digits and ._-:/@+=~<>!%[] only)"
    if words and (words[-1].startswith("-") or "fleetstrap" not in words[-1].lower()):
        return (f"{key} must end with what installs fleetstrap (a requirement, a git URL or a wheel naming "
                "fleetstrap)")
    return None


# A semver range as Flux's ImagePolicy (`spec.policy.semver.range`) and Argo CD Image Updater (the constraint after
# ':' in `imageName`) both read it: Masterminds semver v3 constraints. fleetstrap takes comparators (`>=1.0.0-rc.0`,
# `~1.2`, `^1`, `1.x`) joined by spaces or commas (and) and `||` (or); not the hyphen form `1.2 - 1.4`, which reads
# like a prerelease to a person.
_SEMVER_OP = r"(?:!=|>=|<=|=>|=<|~>|[=<>~^])?"
_SEMVER_PART = r"(?:0|[1-9][0-9]*|[xX*])"
_SEMVER_COMPARATOR = re.compile(
    rf"^{_SEMVER_OP}v?{_SEMVER_PART}(?:\.{_SEMVER_PART}){{0,2}}(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$")
MAX_SEMVER_RANGE = 128


def semver_range_problem(value: str, key: str) -> str | None:
    """A semver range both image automations read the same way (Masterminds semver v3 constraints)."""
    if not value.strip():
        return f"{key} must not be empty"
    if len(value) > MAX_SEMVER_RANGE:
        return f"{key} is longer than {MAX_SEMVER_RANGE} characters"
    if any(ch in value for ch in "\t\n\r\v\f"):
        return f"{key} must not contain tabs or line breaks"
    for alternative in value.split("||"):
        comparators = [c for c in re.split(r"[\s,]+", alternative.strip()) if c]
        if not comparators:
            return f"{key}: {_shown(value)} has an empty alternative around '||'"
        bad = next((c for c in comparators if not _SEMVER_COMPARATOR.match(c)), None)
        if bad is not None:
            return (f"{key}: {_shown(bad)} is not a semver comparator (e.g. >=1.0.0-rc.0, ~1.2, ^1, 1.x; "
                    "joined by spaces or commas, alternatives by ||)")
    return None
