"""PII masking: e-mail and IP addresses in text items are replaced with tags.

Follows datatrove's `PIIFormatter`: its e-mail pattern (with the RFC 5321 length limits
on each part, which keep it linear), IPv4 candidates checked
with `ipaddress`, and by default only public (globally routable) addresses are
replaced, since 127.0.0.1 or 192.168.1.1 identify no one. Differences: the tag is one
fixed string per kind (datatrove cycles through fake addresses); IPv6 is masked too;
IPv4 candidates must stand alone, so a dotted run of five or more numbers (a version
like 1.2.3.4.5) is left whole where datatrove would mask its first four parts.
Three-part versions such as 1.2.3 are never addresses. Never drops a document;
`stats()` counts "emails", "ips" and "docs_masked" (the ledger's "step_stats").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator

from vloom.curate.base import Step
from vloom.curate.registry import register
from vloom.doc import Document

# Every pattern is bounded so that masking is linear in the text's length: unbounded
# `[...]+` parts re-scanned from every start made a base64 blob with one "@" quadratic
# (11.8 s at 80 KB). Limits are RFC 5321's: local part <= 64 characters, a domain label
# <= 63, at most 127 labels (a domain is <= 253); IP candidates are at most 45 characters.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(
    # an "@" within 64 local characters, checked first in O(64) before anything else runs
    rf"\b(?=(?:{_LOCAL}|\.){{1,64}}+@)"
    # possessive: a local character or dot never ends a local part, so giving one back
    # cannot help; only the address's own characters are ever re-read
    rf"{_LOCAL}{{1,64}}+(?:\.{_LOCAL}{{1,64}}+)*+@"
    rf"(?:(?:{_LABEL}\.){{1,126}}{_LABEL}"
    r"|\[(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]{0,63}[A-Za-z0-9]:)])"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?!\w)")
# a candidate; ipaddress decides. Not after a word char, a colon or a dot ("std::max").
# The two colons are looked for within the candidate's own 45 characters.
IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f:.]{0,43}:[0-9A-Fa-f:.]{0,43}:)[0-9A-Fa-f:.]{1,44}[0-9A-Fa-f:](?![\w:])"
)


@register("pii")
class PiiMask(Step):
    """Replace e-mail addresses with `email_tag` and IP addresses with `ip_tag`."""

    def __init__(
        self,
        emails: bool = True,
        ips: bool = True,
        only_public_ips: bool = True,
        email_tag: str = "<EMAIL_ADDRESS>",
        ip_tag: str = "<IP_ADDRESS>",
    ) -> None:
        super().__init__()
        self.emails = emails
        self.ips = ips
        self.only_public_ips = only_public_ips
        self.email_tag = email_tag
        self.ip_tag = ip_tag

    def _ip(self, m: re.Match[str]) -> str:
        try:
            ip = ipaddress.ip_address(m.group(0))
        except ValueError:
            return m.group(0)
        if self.only_public_ips and not ip.is_global:
            return m.group(0)
        self.counts["ips"] += 1
        return self.ip_tag

    def stats(self) -> dict[str, int]:
        """Replacement counts so far (summed over shards into the ledger's step_stats)."""
        return {k: self.counts[k] for k in ("emails", "ips", "docs_masked")}

    def mask(self, text: str) -> str:
        """The text with addresses replaced (counted in `counts`)."""
        if self.emails and "@" in text:
            text, n = EMAIL.subn(self.email_tag, text)
            self.counts["emails"] += n
        if self.ips:
            if "." in text:
                text = IPV4.sub(self._ip, text)
            if ":" in text:
                text = IPV6.sub(self._ip, text)
        return text

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        for doc in docs:
            before = self.counts["emails"] + self.counts["ips"]
            doc.texts = [None if t is None else self.mask(t) for t in doc.texts]
            if self.counts["emails"] + self.counts["ips"] > before:
                self.counts["docs_masked"] += 1
            yield doc
