"""MQTT topics of one stage (DESIGN §2 and §8, a contract), defined once.

Every stage has a topic root (default ``ocpp``, what the local stack uses); its chargers' topics are
``<root>/<cp>/in``, ``<root>/<cp>/out`` and ``<root>/<cp>/events``. Two stages in one account use
different roots, so their rules, policies and subscriptions never see each other's frames. The
bridge, the Lambdas, the IoT rules, the IoT policy and the local rule emulator all build their
topics from a :class:`Topics` value, never from a string of their own.

Pure string functions: no I/O, no environment (the settings modules read ``TOPIC_ROOT_ENV``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .errors import CoreError

DEFAULT_ROOT = "ocpp"

#: The environment variable every component reads the topic root from (bridge, Lambdas, local stack).
TOPIC_ROOT_ENV = "OCPP_TOPIC_ROOT"

#: Levels of letters, digits, ``_`` and ``-`` separated by ``/``: valid in an IoT topic, a topic
#: filter, an IAM resource ARN and a rule's ``FROM`` clause, and never an MQTT wildcard or ``$``.
_ROOT = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}")

Direction = Literal["in", "out", "events"]
DIRECTIONS: tuple[Direction, ...] = ("in", "out", "events")


class TopicRootError(CoreError, ValueError):
    """A topic root that is not a valid topic prefix."""


def check_root(root: str) -> str:
    if not isinstance(root, str) or not _ROOT.fullmatch(root):
        raise TopicRootError(
            f"topic root {root!r} is not 1 to 4 levels of A-Z a-z 0-9 _ - separated by '/' (e.g. 'ocpp' or 'prod/ocpp')"
        )
    return root


@dataclass(frozen=True, slots=True)
class Topics:
    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        check_root(self.root)

    def topic(self, charge_point_id: str, direction: Direction) -> str:
        return f"{self.root}/{charge_point_id}/{direction}"

    def inbound(self, charge_point_id: str) -> str:
        """Frames from the charger, wrapped in an envelope, for the processor."""
        return f"{self.root}/{charge_point_id}/in"

    def outbound(self, charge_point_id: str) -> str:
        """OCPP-J frames for the charger, forwarded verbatim."""
        return f"{self.root}/{charge_point_id}/out"

    def events(self, charge_point_id: str) -> str:
        """``connected`` / ``disconnected`` events (the latter is also the MQTT will)."""
        return f"{self.root}/{charge_point_id}/events"

    def filter(self, direction: Direction) -> str:
        """The topic filter for every charger of the stage: ``<root>/+/<direction>``."""
        return f"{self.root}/+/{direction}"

    def charger_level(self) -> int:
        """The 1-based topic level that holds the charger id (IoT SQL ``topic(n)``)."""
        return self.root.count("/") + 2

    def iam_resource(self, direction: Direction, *, filter_: bool = False) -> str:
        """The IoT policy resource suffix: ``topic/<root>/*/<direction>`` or ``topicfilter/...``."""
        return f"{'topicfilter' if filter_ else 'topic'}/{self.root}/*/{direction}"

    def parse(self, topic: str) -> tuple[str, Direction] | None:
        """``(charger id, direction)`` of one of this stage's topics, else None."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix) :]
        cp, sep, direction = rest.rpartition("/")
        if not sep or not cp or "/" in cp or direction not in DIRECTIONS:
            return None
        return cp, direction


def basic_ingest_topic(rule_name: str, topic: str) -> str:
    """The Basic Ingest form of ``topic`` for rule ``rule_name``: ``$aws/rules/<rule>/<topic>``.

    AWS IoT Core hands a message published there straight to that rule, without the messaging
    charge (https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html).
    """
    return f"$aws/rules/{rule_name}/{topic}"


DEFAULT_TOPICS = Topics()
