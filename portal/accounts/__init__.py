"""Organisations, people, memberships, roles, invitations, sessions, SSO and API tokens."""
