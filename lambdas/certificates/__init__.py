"""The chargers' certificate authority (DESIGN §9): CSR review and signing, the local development
CA, the KMS signer for AWS. ``ocpp_core.certificates`` uses it through ``CertificateSigner``."""
