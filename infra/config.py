"""Stage configuration: the CDK context, validated once, before any construct exists.

Pure Python (no ``aws_cdk`` import), so it is tested without synthesizing.

Every value is resolved the same way, first match wins:

1. a top-level context key: ``cdk deploy -c min_tasks=3`` (a string) or a top-level key of
   ``cdk.json``'s ``context`` (a JSON value);
2. the stage's entry in the ``stages`` map of ``cdk.json`` (``-c stage=prod`` picks the entry,
   ``dev`` by default);
3. the default of the field below.

``account`` and ``region`` fall back to ``CDK_DEFAULT_ACCOUNT`` / ``CDK_DEFAULT_REGION`` (which
the CDK CLI sets from the credentials) and otherwise stay unset: the stack is then
environment-agnostic, which keeps synthesis offline (no availability-zone or VPC look-ups).

A bad value raises one :class:`ConfigError` whose message names the key and the value, so
``app.py`` can print it as a single line.

Stages in one account (DESIGN §8): each stage gets its own MQTT topic root (``ocpp-<stage>`` unless
``topic_root`` says otherwise) and MQTT client-id prefix (``ocpp-<stage>.``; a stage name has no
``.``, so no stage's prefix is the start of another's), and the roots of the stages in
``cdk.json`` are checked to be disjoint. IoT Core's CONNECT quota is per account and region; each
task's MQTT CONNECT rate is the account budget shared by the stages, divided by ``max_tasks``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ocpp_core.topics import TopicRootError, Topics

DEFAULT_STAGE = "dev"

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

# Fargate task sizes: CPU units -> allowed memory (MiB). From the ECS task definition limits.
FARGATE_MEMORY_BY_CPU: Mapping[int, frozenset[int]] = {
    256: frozenset({512, 1024, 2048}),
    512: frozenset(range(1024, 4096 + 1, 1024)),
    1024: frozenset(range(2048, 8192 + 1, 1024)),
    2048: frozenset(range(4096, 16384 + 1, 1024)),
    4096: frozenset(range(8192, 30720 + 1, 1024)),
    8192: frozenset(range(16384, 61440 + 1, 4096)),
    16384: frozenset(range(32768, 122880 + 1, 8192)),
}

UNKNOWN_CHARGER_POLICIES = ("accept", "reject", "pending")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
BRIDGE_ARCHITECTURES = ("x86_64", "arm64")

# ECS allows at most 120 s between SIGTERM and SIGKILL on Fargate; the bridge must be done
# draining before that, with this much slack for flushing MQTT and exiting.
FARGATE_MAX_STOP_TIMEOUT_S = 120
STOP_TIMEOUT_SLACK_S = 15

#: IoT Core's default "Connect requests per second per account" (adjustable in Service Quotas:
#: https://docs.aws.amazon.com/general/latest/gr/iot-core.html).
IOT_DEFAULT_CONNECT_QUOTA = 500
#: The bridge refuses a CONNECT rate below this (BRIDGE_MQTT_CONNECT_RATE).
MIN_CONNECT_RATE = 0.01

_STAGE_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?")
_ACCOUNT_RE = re.compile(r"\d{12}")
_REGION_RE = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CERT_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:acm:([a-z0-9-]+):(\d{12}):certificate/[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}"
)
#: a complete Secrets Manager ARN (with the 6-character suffix ECS needs to name a JSON field)
_SECRET_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):(\d{12}):secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}"
)
_VPC_ID_RE = re.compile(r"vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_EMAIL_RE = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[A-Za-z]{2,}")
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_IOT_ENDPOINT_RE = re.compile(r"[a-z0-9]+(?:-ats)?\.iot\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?")
_INT_RE = re.compile(r"[+-]?\d+")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_PYTHON_RE = re.compile(r"3\.(\d{1,2})")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ConfigError(ValueError):
    """An invalid context value; the message is one line naming ``key=value``."""


def _show(raw: object) -> str:
    if isinstance(raw, str) and raw.isprintable():
        return raw
    return repr(raw)


def _fail(name: str, raw: object, expected: str) -> ConfigError:
    return ConfigError(f"invalid context value {name}={_show(raw)}: expected {expected}")


# --- value parsers: (key name, raw context value) -> typed value -------------------------------

Parser = Callable[[str, Any], Any]


def _is_unset(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "null"))


def _optional(parser: Parser) -> Parser:
    def parse(name: str, raw: Any) -> Any:
        return None if _is_unset(raw) else parser(name, raw)

    return parse


def _bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _fail(name, raw, "true or false")


def _int(low: int, high: int) -> Parser:
    def parse(name: str, raw: Any) -> int:
        # bool is an int subclass: `true` for a count is a mistake, not 1
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and _INT_RE.fullmatch(raw.strip()):
            value = int(raw.strip())
        else:
            raise _fail(name, raw, f"a whole number from {low} to {high}")
        if not low <= value <= high:
            raise _fail(name, raw, f"a whole number from {low} to {high}")
        return value

    return parse


def _number(low: float, high: float) -> Parser:
    def parse(name: str, raw: Any) -> float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
        elif isinstance(raw, str) and _NUMBER_RE.fullmatch(raw.strip()):
            value = float(raw.strip())
        else:
            raise _fail(name, raw, f"a number from {low:g} to {high:g}")
        if not low <= value <= high:
            raise _fail(name, raw, f"a number from {low:g} to {high:g}")
        return value

    return parse


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Parser:
    def parse(name: str, raw: Any) -> str:
        if isinstance(raw, str):
            word = raw.strip().upper() if upper else raw.strip().lower()
            if word in options:
                return word
        raise _fail(name, raw, "one of " + ", ".join(options))

    return parse


def _one_of_ints(options: frozenset[int], what: str) -> Parser:
    parse_int = _int(min(options), max(options))

    def parse(name: str, raw: Any) -> int:
        try:
            value = parse_int(name, raw)
        except ConfigError:
            value = None
        if value not in options:
            raise _fail(name, raw, what)
        return value

    return parse


def _regex(pattern: re.Pattern[str], what: str, *, lower: bool = False) -> Parser:
    def parse(name: str, raw: Any) -> str:
        if isinstance(raw, str):
            text = raw.strip().lower() if lower else raw.strip()
            if pattern.fullmatch(text):
                return text
        raise _fail(name, raw, what)

    return parse


def _domain(name: str, raw: Any) -> str:
    if isinstance(raw, str):
        text = raw.strip().lower().rstrip(".")
        labels = text.split(".")
        if len(text) <= 253 and len(labels) >= 2 and all(_LABEL_RE.fullmatch(label) for label in labels):
            if not labels[-1].isdigit():  # an IP address is not a domain name for a certificate
                return text
    raise _fail(name, raw, "a DNS name such as ocpp.example.com")


def _iot_endpoint(name: str, raw: Any) -> str:
    if isinstance(raw, str):
        text = raw.strip().lower().removeprefix("https://").rstrip("/")
        if _IOT_ENDPOINT_RE.fullmatch(text):
            return text
    raise _fail(name, raw, "the IoT data endpoint host, such as abc123-ats.iot.us-east-1.amazonaws.com")


def _topic_root(name: str, raw: Any) -> str:
    if isinstance(raw, str):
        try:
            return Topics(raw.strip()).root
        except TopicRootError:
            pass
    raise _fail(name, raw, "1 to 4 topic levels of A-Z a-z 0-9 _ - separated by '/', such as ocpp-prod")


def _python(name: str, raw: Any) -> tuple[int, int]:
    match = _PYTHON_RE.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        raise _fail(name, raw, "a Python version such as 3.12")
    return (3, int(match.group(1)))


def _modules(name: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        items = [item.strip() for item in raw.split(",") if item.strip()]
    elif isinstance(raw, (list, tuple)) and all(isinstance(item, str) for item in raw):
        items = [item.strip() for item in raw]
    else:
        raise _fail(name, raw, "comma-separated Python module names")
    for item in items:
        if not _MODULE_RE.fullmatch(item):
            raise _fail(name, raw, f"comma-separated Python module names ({item!r} is not one)")
    return tuple(items)


# --- the configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageConfig:
    """Everything that differs between deployments. Build it with :meth:`from_context`."""

    stage: str
    account: str | None = None
    region: str | None = None
    #: charger endpoint: a DNS name you control and an ACM certificate for it (same region)
    domain_name: str | None = None
    certificate_arn: str | None = None
    #: existing VPC to deploy into (needs account and region: it is looked up at synth time)
    vpc_id: str | None = None
    #: NAT gateways of the new VPC; 0 puts the bridge tasks in public subnets with public IPs
    nat_gateways: int = 1
    #: plain ws:// listener: unset means on without a certificate, off with one (Basic-auth
    #: passwords would travel in clear); ``true`` keeps it next to TLS on purpose
    plain_listener: bool | None = None
    plain_port: int = 80
    tls_port: int = 443
    #: security profile 3 (DESIGN §9): a Secrets Manager secret, JSON ``{"cert", "key", "ca"}``:
    #: the bridge's own TLS server certificate chain and key, and the CA client certificates must
    #: chain to (``GET /ca``). Unset: no profile-3 listener.
    profile3_secret_arn: str | None = None
    #: the NLB's TCP listener (TLS passed through to the bridge) for profile 3
    profile3_port: int = 9443
    bridge_cpu: int = 512
    bridge_memory_mib: int = 1024
    bridge_architecture: str = "x86_64"
    min_tasks: int = 1
    max_tasks: int = 4
    #: target of the connected-chargers scaling policy (per task). Measured (``bench bridge-tls``):
    #: 99 KB of RSS per charger with its MQTT session over TLS, so a 1 GiB task holds about 7,000
    #: and a 2 GiB one about 14,000 at 70 % of memory; the defaults leave CPU for TLS handshakes.
    chargers_per_task: int = 5000
    #: MQTT topic root of the stage (DESIGN §8); unset: ``ocpp-<stage>``
    topic_root: str | None = None
    #: inbound frames through Basic Ingest (``$aws/rules/<rule>/...``): no IoT messaging charge
    basic_ingest: bool = True
    #: the account's IoT Core CONNECT quota per second (raise it after a quota increase)
    iot_connect_quota: int = IOT_DEFAULT_CONNECT_QUOTA
    #: share of that quota the bridges of every stage may use together (the rest is headroom)
    iot_connect_budget_percent: int = 80
    #: how many stages share the account and region (and so the CONNECT budget)
    stages_per_account: int = 2
    #: share of the tasks a deployment replaces at once (ECS maximum percent above 100)
    deployment_batch_percent: int = 25
    #: Lambda runtime; unset: the Python that synthesizes (see infra/bundling.py)
    lambda_python: tuple[int, int] | None = None
    #: hard cap the bridge enforces per task (BRIDGE_MAX_CONNECTIONS)
    max_connections_per_task: int = 6000
    cpu_target_percent: int = 60
    #: how long the bridge may take to close its sockets after SIGTERM (BRIDGE_DRAIN_TIMEOUT)
    drain_timeout_seconds: int = 45
    unknown_chargers: str = "reject"
    require_password: bool = True
    heartbeat_interval: int = 300
    #: how long an operator-initiated call waits for the charger's answer
    call_timeout: int = 30
    extensions: tuple[str, ...] = ()
    log_level: str = "INFO"
    log_retention_days: int = 30
    alarm_email: str | None = None
    processor_reserved_concurrency: int | None = None
    processor_memory_mib: int = 512
    deletion_protection: bool = False
    #: keep the table and log groups when the stack is deleted
    retain_data: bool = False
    xray: bool = False
    #: skip the DescribeEndpoint custom resource by giving the IoT data-ATS host
    iot_endpoint: str | None = None
    #: width of the anomaly band below which the connected-chargers alarm fires
    connected_drop_std_devs: float = 3.0
    #: days the EventBridge archive of the stage's bus keeps the domain events (0: for ever)
    events_archive_days: int = 30
    #: the example rule: TransactionEnded events to an SQS queue of the stage (docs/deployment.md)
    events_queue: bool = False

    # ------------------------------------------------------------------
    @property
    def tls(self) -> bool:
        return self.certificate_arn is not None

    @property
    def profile3(self) -> bool:
        return self.profile3_secret_arn is not None

    @property
    def plain_listener_enabled(self) -> bool:
        """Secure by default: with a certificate, no plain listener unless asked for."""
        return (not self.tls) if self.plain_listener is None else self.plain_listener

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_root or default_topic_root(self.stage))

    @property
    def client_id_prefix(self) -> str:
        """MQTT client id = prefix + charger id (BRIDGE_CLIENT_ID_PREFIX): client ids are account-wide."""
        return f"ocpp-{self.stage}."

    @property
    def connect_budget_per_second(self) -> float:
        """CONNECT/s this stage's bridges may use together: its share of the account budget."""
        return self.iot_connect_quota * self.iot_connect_budget_percent / 100 / self.stages_per_account

    @property
    def mqtt_connect_rate_per_task(self) -> float:
        """BRIDGE_MQTT_CONNECT_RATE: at ``max_tasks`` tasks all reconnecting at once (after an IoT
        Core outage, or a redeploy), the stage stays within its budget."""
        return round(self.connect_budget_per_second / self.max_tasks, 2)

    @property
    def mqtt_connect_burst_per_task(self) -> int:
        """BRIDGE_MQTT_CONNECT_BURST: at most one second's worth, so a burst keeps to the budget too."""
        return max(1, int(self.mqtt_connect_rate_per_task))

    @property
    def full_task_reconnect_seconds(self) -> float:
        """How long one task at the scaling target takes to reconnect all its chargers' sessions."""
        return self.chargers_per_task / self.mqtt_connect_rate_per_task

    @property
    def deployment_max_percent(self) -> int:
        """ECS ``maximumPercent``: start this share of new tasks, then stop as many old ones.

        With ``minimumHealthyPercent`` 100 ECS replaces about ``deployment_batch_percent`` of
        the tasks at a time; and at least one task, even at ``min_tasks`` (ECS rounds the
        maximum down: 125 % of one task is one task, which could never start a new one).
        """
        one_more = -(-100 * (self.min_tasks + 1) // self.min_tasks)  # ceil
        return min(200, max(100 + self.deployment_batch_percent, one_more))

    @property
    def stop_timeout_seconds(self) -> int:
        return self.drain_timeout_seconds + STOP_TIMEOUT_SLACK_S

    @property
    def deregistration_delay_seconds(self) -> int:
        # ECS sends SIGTERM only once the target has drained from the NLB; keeping the delay no
        # shorter than the bridge's drain time covers a task that is stopped outside that flow.
        return self.stop_timeout_seconds

    @property
    def bridge_unknown_chargers(self) -> str:
        # The bridge only knows "let it in" or "refuse it"; "pending" is the processor's business
        # (BootNotification answered Pending), so the socket must be let in for it.
        return "reject" if self.unknown_chargers == "reject" else "accept"

    # ------------------------------------------------------------------
    @classmethod
    def from_context(cls, context: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> StageConfig:
        environ = environ or {}
        stage = _resolve_stage(context)
        stages = context.get("stages") or {}
        if not isinstance(stages, Mapping):
            raise _fail("stages", stages, "a map of stage name to settings in cdk.json")
        stage_values = stages[stage]
        if not isinstance(stage_values, Mapping):
            raise _fail(f"stages.{stage}", stage_values, "a map of settings")

        known = {f.name for f in fields(cls)}
        for key, raw in stage_values.items():
            if key not in known or key == "stage":
                raise ConfigError(f"unknown context key stages.{stage}.{key}={_show(raw)}")
        for key, raw in context.items():
            # CDK's own keys carry ':' or '@' or '-'; a plain snake_case key is meant for us.
            if re.fullmatch(r"[a-z][a-z0-9_]*", key) and key not in known and key != "stages":
                raise ConfigError(f"unknown context key {key}={_show(raw)}")

        values: dict[str, Any] = {"stage": stage}
        for name, parser in _PARSERS.items():
            if name in context:
                raw = context[name]
            elif name in stage_values:
                raw = stage_values[name]
            elif name == "account" and environ.get("CDK_DEFAULT_ACCOUNT"):
                raw = environ["CDK_DEFAULT_ACCOUNT"]
            elif name == "region" and environ.get("CDK_DEFAULT_REGION"):
                raw = environ["CDK_DEFAULT_REGION"]
            else:
                continue  # the dataclass default
            values[name] = parser(name, raw)
        config = cls(**values)
        config._check_combinations()
        check_disjoint_roots(stage, config.topics.root, stages)
        return config

    def _check_combinations(self) -> None:
        if (self.domain_name is None) != (self.certificate_arn is None):
            if self.domain_name is None:
                raise ConfigError(
                    f"invalid context value certificate_arn={self.certificate_arn}: "
                    "needs domain_name too (the charger URL must match the certificate)"
                )
            raise ConfigError(
                f"invalid context value domain_name={self.domain_name}: needs certificate_arn too (TLS at the NLB)"
            )
        if self.certificate_arn is not None:
            match = _CERT_ARN_RE.fullmatch(self.certificate_arn)
            assert match is not None  # parsed by the regex already
            self._check_home(
                "certificate_arn", self.certificate_arn, *match.groups(), "the certificate", " (an NLB needs it local)"
            )
        if self.plain_listener is False and not self.tls:
            raise ConfigError(
                "invalid context value plain_listener=false: without domain_name and certificate_arn "
                "the plain listener is the only way in"
            )
        if self.plain_listener_enabled and self.tls and self.plain_port == self.tls_port:
            raise ConfigError(f"invalid context value tls_port={self.tls_port}: equals plain_port")
        if self.profile3_secret_arn is not None:
            self._check_profile3()
        if self.vpc_id is not None and (self.account is None or self.region is None):
            raise ConfigError(
                f"invalid context value vpc_id={self.vpc_id}: looking up a VPC needs account and region "
                "(-c account=... -c region=..., or run through the CDK CLI with credentials)"
            )
        if self.bridge_memory_mib not in FARGATE_MEMORY_BY_CPU[self.bridge_cpu]:
            allowed = sorted(FARGATE_MEMORY_BY_CPU[self.bridge_cpu])
            raise ConfigError(
                f"invalid context value bridge_memory_mib={self.bridge_memory_mib}: with bridge_cpu={self.bridge_cpu} "
                f"Fargate allows {allowed[0]} to {allowed[-1]} in its steps"
            )
        if self.max_tasks < self.min_tasks:
            raise ConfigError(
                f"invalid context value max_tasks={self.max_tasks}: must be at least min_tasks={self.min_tasks}"
            )
        if self.max_connections_per_task < self.chargers_per_task:
            raise ConfigError(
                f"invalid context value max_connections_per_task={self.max_connections_per_task}: "
                f"must be at least chargers_per_task={self.chargers_per_task} (the scaling target)"
            )
        if self.mqtt_connect_rate_per_task < MIN_CONNECT_RATE:
            raise ConfigError(
                f"invalid context value max_tasks={self.max_tasks}: the CONNECT budget of "
                f"{self.connect_budget_per_second:g}/s leaves each task {self.mqtt_connect_rate_per_task:g}/s "
                f"(at least {MIN_CONNECT_RATE:g}); raise iot_connect_quota after a quota increase"
            )

    def _check_home(self, key: str, arn: str, region: str, account: str, what: str, why: str = "") -> None:
        """An ARN's resource must be in the stack's region and account (when they are given)."""
        if self.region is not None and region != self.region:
            raise ConfigError(
                f"invalid context value {key}={arn}: {what} is in {region}, the stack in region={self.region}{why}"
            )
        if self.account is not None and account != self.account:
            raise ConfigError(
                f"invalid context value {key}={arn}: belongs to account {account}, not account={self.account}"
            )

    def _check_profile3(self) -> None:
        assert self.profile3_secret_arn is not None
        match = _SECRET_ARN_RE.fullmatch(self.profile3_secret_arn)
        assert match is not None  # parsed by the regex already
        self._check_home("profile3_secret_arn", self.profile3_secret_arn, *match.groups(), "the secret")
        taken = {self.plain_port: "plain_port"} if self.plain_listener_enabled else {}
        if self.tls:
            taken[self.tls_port] = "tls_port"
        if self.profile3_port in taken:
            raise ConfigError(
                f"invalid context value profile3_port={self.profile3_port}: equals {taken[self.profile3_port]}"
            )


def default_topic_root(stage: str) -> str:
    return f"ocpp-{stage}"


def _levels_overlap(a: str, b: str) -> bool:
    """Equal roots, or one the first levels of the other: IAM's ``*`` spans levels, so the policy
    of ``a`` (``topic/a/*/in``) would also match ``b``'s topics."""
    return a == b or b.startswith(a + "/") or a.startswith(b + "/")


def check_disjoint_roots(stage: str, root: str, stages: Mapping[str, Any]) -> None:
    """The stage's topic root shares no level prefix with another stage's root in ``cdk.json``."""
    for other, values in stages.items():
        if other == stage or not isinstance(values, Mapping):
            continue
        raw = values.get("topic_root")
        other_root = raw.strip() if isinstance(raw, str) and raw.strip() else default_topic_root(other)
        if _levels_overlap(root, other_root):
            raise ConfigError(
                f"invalid context value topic_root={root}: overlaps stage {other}'s topic root {other_root} "
                "(stages in one account must never see each other's topics)"
            )


def _resolve_stage(context: Mapping[str, Any]) -> str:
    raw = context.get("stage", DEFAULT_STAGE)
    if not isinstance(raw, str) or not _STAGE_RE.fullmatch(raw):
        raise _fail("stage", raw, "a stage name of lower-case letters, digits and '-' (at most 20)")
    stages = context.get("stages") or {}
    if not isinstance(stages, Mapping) or raw not in stages:
        known = ", ".join(sorted(stages)) if isinstance(stages, Mapping) and stages else "none"
        raise ConfigError(f"unknown stage={raw}: the stages map in cdk.json defines {known}")
    return raw


_PARSERS: dict[str, Parser] = {
    "account": _optional(_regex(_ACCOUNT_RE, "a 12-digit AWS account id")),
    "region": _optional(_regex(_REGION_RE, "an AWS region such as eu-west-1", lower=True)),
    "domain_name": _optional(_domain),
    "certificate_arn": _optional(
        _regex(_CERT_ARN_RE, "an ACM certificate ARN, arn:aws:acm:<region>:<account>:certificate/<uuid>")
    ),
    "vpc_id": _optional(_regex(_VPC_ID_RE, "a VPC id such as vpc-0123456789abcdef0", lower=True)),
    "nat_gateways": _int(0, 3),
    "plain_listener": _optional(_bool),
    "plain_port": _int(1, 65535),
    "tls_port": _int(1, 65535),
    "profile3_secret_arn": _optional(
        _regex(
            _SECRET_ARN_RE,
            "a complete Secrets Manager ARN, arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>",
        )
    ),
    "profile3_port": _int(1, 65535),
    "bridge_cpu": _one_of_ints(frozenset(FARGATE_MEMORY_BY_CPU), "one of 256, 512, 1024, 2048, 4096, 8192, 16384"),
    "bridge_memory_mib": _int(512, 122880),
    "bridge_architecture": _choice(BRIDGE_ARCHITECTURES),
    "min_tasks": _int(1, 1000),
    "max_tasks": _int(1, 1000),
    "chargers_per_task": _int(1, 100_000),
    "topic_root": _optional(_topic_root),
    "basic_ingest": _bool,
    "iot_connect_quota": _int(1, 1_000_000),
    "iot_connect_budget_percent": _int(1, 100),
    "stages_per_account": _int(1, 100),
    "deployment_batch_percent": _int(1, 100),
    "lambda_python": _optional(_python),
    "max_connections_per_task": _int(1, 100_000),
    "cpu_target_percent": _int(10, 95),
    "drain_timeout_seconds": _int(1, FARGATE_MAX_STOP_TIMEOUT_S - STOP_TIMEOUT_SLACK_S),
    "unknown_chargers": _choice(UNKNOWN_CHARGER_POLICIES),
    "require_password": _bool,
    "heartbeat_interval": _int(10, 86_400),
    "call_timeout": _int(1, 3600),
    "extensions": _modules,
    "log_level": _choice(LOG_LEVELS, upper=True),
    "log_retention_days": _one_of_ints(
        LOG_RETENTION_DAYS, "a CloudWatch Logs retention: " + ", ".join(map(str, sorted(LOG_RETENTION_DAYS)))
    ),
    "alarm_email": _optional(_regex(_EMAIL_RE, "an e-mail address")),
    "processor_reserved_concurrency": _optional(_int(1, 100_000)),
    "processor_memory_mib": _int(128, 10_240),
    "deletion_protection": _bool,
    "retain_data": _bool,
    "xray": _bool,
    "iot_endpoint": _optional(_iot_endpoint),
    "connected_drop_std_devs": _number(0.5, 20),
    "events_archive_days": _int(0, 3650),
    "events_queue": _bool,
}

# Every field but the stage has a parser (checked at import, cheaply).
assert set(_PARSERS) | {"stage"} == {f.name for f in fields(StageConfig)}
