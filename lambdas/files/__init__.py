"""Where files live: a :class:`~lambdas.files.host.FileHost` (S3 on AWS, a directory locally)."""
