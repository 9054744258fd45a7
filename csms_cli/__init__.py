"""``python -m csms_cli``: the operator API from a terminal (see docs/operator_api.md).

Talks to the local stack (``http://127.0.0.1:9001``) by default, or to a deployed API given
with ``--api-url`` / ``OCPP_API_URL``, signing requests with SigV4 (``execute-api``) from the
default AWS credential chain.
"""
