"""Single sign-on per organisation through OpenID Connect."""
