"""The dashboard's pages as HTML strings: the shell, the login and the disabled notice.

Every interpolated value goes through `e()`; the pages carry no script and no style
attribute, so the strict CSP the router sends holds.
"""

from __future__ import annotations

from html import escape


def e(value: object) -> str:
    """Text or an attribute value, escaped for HTML."""
    return escape(str(value), quote=True)


def document(*, title: str, stylesheet: str, body: str, main_class: str = "") -> str:
    """A complete page around `body` (already escaped markup)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f'<title>{e(title)}</title><link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{e(stylesheet)}"></head>'
        f'<body><main class="{e(main_class)}">{body}</main></body></html>'
    )


def login(*, stylesheet: str, message: str | None = None) -> str:
    """The login form: one password field for the admin token."""
    notice = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    return document(
        title="Sign in · calltrack dashboard",
        stylesheet=stylesheet,
        main_class="login",
        body=(
            '<h1><span class="brand">calltrack</span> dashboard</h1>'
            f"{notice}"
            '<form method="post" action="/dashboard/login">'
            '<label for="token">Admin token</label>'
            '<input id="token" name="token" type="password" required autofocus '
            'autocomplete="current-password" maxlength="512">'
            '<button type="submit">Sign in</button></form>'
            '<p class="muted">The token is the service\'s <code>CALLTRACK_ADMIN_TOKEN</code>. '
            "A sign-in lasts eight hours.</p>"
        ),
    )


def disabled(*, stylesheet: str) -> str:
    """The notice shown while no admin token is configured."""
    return document(
        title="Dashboard disabled · calltrack",
        stylesheet=stylesheet,
        main_class="login",
        body=(
            '<h1><span class="brand">calltrack</span> dashboard</h1>'
            '<p class="error" role="alert">The dashboard is disabled: set '
            "<code>CALLTRACK_ADMIN_TOKEN</code> to enable it (and the ops API).</p>"
        ),
    )
