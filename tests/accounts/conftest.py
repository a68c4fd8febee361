"""Fixtures for the account tests: the real OpenID Connect provider the single sign-on tests sign in against."""

from tests.sso_support import oidc_idp  # noqa: F401  (a fixture, used by name)
