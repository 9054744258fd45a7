"""Adapters from the ``ocpp_core`` ports to AWS services."""
