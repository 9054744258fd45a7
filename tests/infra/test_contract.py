"""infra/ spells a few of the bridge's contract strings itself (so that synthesis never imports the
bridge's runtime): they must be the bridge's own."""

from __future__ import annotations

from fargate_bridge import handshake, metrics
from fargate_bridge.settings import Env
from infra import bridge_service, network
from lambdas import observability
from lambdas import settings as lambda_settings
from ocpp_core.topics import TOPIC_ROOT_ENV


def test_the_target_group_checks_the_bridges_liveness_path() -> None:
    assert network.LIVENESS_PATH == handshake.LIVE_PATH != handshake.HEALTH_PATH


def test_metric_names_and_dimensions_are_the_bridges() -> None:
    assert bridge_service.BROKER_REACHABLE == metrics.BROKER_REACHABLE
    assert bridge_service.CONNECTED_CHARGERS == metrics.CONNECTED_CHARGERS
    assert bridge_service.BRIDGE_SERVICE == metrics.SERVICE
    assert tuple(bridge_service.bridge_dimensions("dev")) == metrics.DIMENSIONS


def test_environment_names_are_the_bridges() -> None:
    assert bridge_service.ENV_TOPIC_ROOT == Env.TOPIC_ROOT == TOPIC_ROOT_ENV == lambda_settings.TOPIC_ROOT
    assert bridge_service.ENV_CLIENT_ID_PREFIX == Env.CLIENT_ID_PREFIX
    assert bridge_service.ENV_BASIC_INGEST_RULE == Env.BASIC_INGEST_RULE
    assert bridge_service.ENV_STAGE == Env.STAGE == lambda_settings.STAGE
    assert bridge_service.ENV_MQTT_CONNECT_RATE == Env.MQTT_CONNECT_RATE
    assert bridge_service.ENV_MQTT_CONNECT_BURST == Env.MQTT_CONNECT_BURST


def test_the_handlers_metrics_carry_the_dimension_the_dashboard_searches() -> None:
    from infra.monitoring import STAGE_DIMENSION

    assert observability.STAGE_DIMENSION == STAGE_DIMENSION
    assert observability.metrics.default_dimensions == {STAGE_DIMENSION: observability.STAGE}
