"""A page title made from a file name, for pages that name no title of their own.

``ssl-setup.md`` becomes "SSL setup", not "Ssl setup": the name's words are kept as written
(``OAuth_flow`` stays "OAuth flow"), only the first letter is raised, and words that are
known acronyms are written as people write them.
"""

from __future__ import annotations

import re

# Lower-case word -> how docs write it. Only words that are never ordinary English words.
ACRONYMS = {
    word.lower(): word
    for word in (
        "API", "APIs", "AWS", "CI", "CLI", "CORS", "CPU", "CSV", "DB", "DNS", "FAQ",
        "GCP", "GPU", "GUI", "HTML", "HTTP", "HTTPS", "ID", "IDs", "IP", "JSON", "JWT", "LDAP",
        "MFA", "OAuth", "OIDC", "PDF", "RBAC", "REST", "SAML", "SDK", "SDKs", "SMTP", "SQL",
        "SSH", "SSL", "SSO", "TCP", "TLS", "TOTP", "UDP", "UI", "URL", "URLs", "UUID", "VPN",
        "XML", "YAML", "2FA",
    )
}  # fmt: skip
_SEPARATORS = re.compile(r"[-_\s]+")


def title_from_name(stem: str) -> str:
    """The file name's words as a title ("" when it has none)."""
    words = [ACRONYMS.get(word.lower(), word) for word in _SEPARATORS.split(stem) if word]
    if not words:
        return ""
    first = words[0]
    words[0] = first[:1].upper() + first[1:]
    return " ".join(words)
