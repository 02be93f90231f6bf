from tests.reliability.conftest import fast_retries  # noqa: F401
