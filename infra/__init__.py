"""The CDK app's constructs: ``app.py`` builds :class:`infra.stack.CsmsStack` from the context."""
