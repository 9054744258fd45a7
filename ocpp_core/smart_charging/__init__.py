"""Smart charging (1.6 Smart Charging profile; 2.0.1 / 2.1 block K): sharing a site's limit.

The profiles the balancing sends have ids of their own range, one per connector (1.6) or EVSE
(2.x): ``BALANCING_PROFILE_ID_BASE + connector or EVSE id``, at ``BALANCING_STACK_LEVEL``, purpose
``TxProfile``. A new one for the same connector replaces the previous one on the charger (same id,
same stack level and purpose: 1.6 §3.13.2 / 2.0.1 K01.FR.05), so nothing piles up.
"""

#: chargingProfileId of the balancing's profile on connector / EVSE ``n``: this + n (below 2**31)
BALANCING_PROFILE_ID_BASE = 900_000_000
BALANCING_STACK_LEVEL = 1


def is_balancing_profile(charging_profile_id: object) -> bool:
    return (
        isinstance(charging_profile_id, int)
        and not isinstance(charging_profile_id, bool)
        and BALANCING_PROFILE_ID_BASE <= charging_profile_id < BALANCING_PROFILE_ID_BASE + 1_000_000
    )
