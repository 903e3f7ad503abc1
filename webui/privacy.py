"""Masking and size caps for everything a task event carries.

Every event goes through one `Redactor` before anything is written, and the same object is used wherever
data is shown or exported, so the rules live here and nowhere else. Celery sends `args`, `kwargs`,
`result`, `exception` and `traceback` as Python repr strings (`"{'password': 'hunter2'}"`), so the rules
work on text:

- **By key.** A key that contains a mask word (case-insensitive substring; `_`, `-` and space are
  interchangeable, so `api_key` also covers `apikey` and `X-Api-Key`) has its value replaced by `***`, in
  the three forms that appear in reprs and messages: dict items (`'password': 'x'`, `"token": "y"`,
  `b'token': b'z'`), keyword style (`password=x`, `token="a b"`) and header style
  (`Authorization: Bearer x`, to the end of the line or the closing quote). Quoted values keep their
  quotes (`'password': '***'`); a container value is masked whole, found by bracket matching that skips
  quoted strings and never crosses the end of the enclosing structure.
- **By value.** Luhn-valid card numbers starting with an issuer digit 2-6 (13-19 digits, single spaces or
  dashes allowed), `Bearer <token>`, `Basic <base64>`, the password of `scheme://user:password@host` URLs,
  and every match of the configured regular expressions become `***`.
- **Caps**, after masking: text longer than its cap keeps its first `cap` characters plus
  `TRUNCATED_MARKER`; tracebacks keep their first third and last two thirds (the last frames and the
  exception line matter most).

Nothing else is changed: HTML in a payload passes through as is, since escaping is the templates' job.
This runs on the collector's hot path, so each rule first makes a cheap check (a substring search in the
lowered text, a digit count) and the expensive scans run only when something could match.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_MASK_KEYS: tuple[str, ...] = (
    "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_key", "private_key",
    "authorization", "credentials", "cookie", "session_id",
)
TRUNCATED_MARKER = " …[truncated {n} chars]"
MASK = "***"

# The settings `Redactor.from_settings` reads, named as the constructor's keywords.
SETTING_NAMES: tuple[str, ...] = (
    "store_args", "store_results", "mask_keys", "mask_patterns", "mask_card_numbers",
    "max_args_size", "max_result_size", "max_traceback_size",
)

_MARKER_RE = re.compile(re.escape(TRUNCATED_MARKER).replace(r"\{n\}", r"\d+"))

# --- Masking by key ----------------------------------------------------------------------------------------

# An opening string delimiter, with an optional literal prefix (b'', r'', u''). A backslash-escaped delimiter
# (\') means the string sits inside another string, as in a repr of a repr.
_STRING_START_RE = re.compile(r"""[bBrRuU]{0,2}(\\?['"])""")
_STRING_BODY_RE = {
    "'": re.compile(r"[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL),
    '"': re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL),
}
# Characters that matter when scanning an unquoted or container value; everything else is skipped in C.
_SCAN_RE = re.compile(r"""[\s,;&'"\\()\[\]{}]""")
_OPENERS = {")": "(", "]": "[", "}": "{"}
# A header-style value runs to the end of the line, a closing quote, or a `\n` escape (a line end in a repr).
_HEADER_VALUE_RE = re.compile(r"""[^'"\\\r\n]*(?:\\(?![nr]).[^'"\\\r\n]*)*""", re.DOTALL)
# `InvalidTokenError: expired` in a traceback is an exception line, not a header: keep it readable.
_EXCEPTION_NAME_SUFFIXES = ("Error", "Exception", "Warning")
# A quoted key then a colon. The key cannot span a quote, so a match cannot run from one string into the next.
_DICT_KEY_RE = re.compile(r"""(\\?['"])[^'"\\\n]*\1[ \t]*:[ \t]*""")
# An identifier then `=` or `:`; `==` is a comparison, and `::`, `:/` (URLs), `:=` are not separators.
_BARE_KEY_RE = re.compile(r"([\w-]+)[ \t]*(=(?!=)|:(?![:/=]))[ \t]*")
_MAX_KEY_LENGTH = 256

_DICT, _KEYWORD, _HEADER = 0, 1, 2

# --- Masking by value --------------------------------------------------------------------------------------

_AUTH_RE = re.compile(r"\b((?i:bearer)[ \t]+)[A-Za-z0-9\-._~+/]+=*|\b((?i:basic)[ \t]+)([A-Za-z0-9+/]+=*)")
_BASE64_HINT_RE = re.compile(r"[A-Z0-9+/=]")
_URL_PASSWORD_RE = re.compile(r"""(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'"]*:)[^\s/@'"]+@""")
# A run of at least 13 digits where single spaces or dashes may separate groups, as cards are printed. A
# search starts at the first digit of a run and the greedy repeat takes the rest, so each run is judged whole.
# ASCII digits only: the Luhn check does arithmetic on them.
_CARD_RUN_RE = re.compile(r"[0-9](?:[ -]?[0-9]){12,}")
# A group of 3 or more digits inside a run: the building block of a printed card number.
_CARD_GROUP_RE = re.compile(r"(?<![0-9])[0-9]{3,}(?![0-9])")
_NO_DIGITS = str.maketrans("", "", "0123456789")
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")

# Huge texts (a hostile event, a RecursionError traceback) are masked only in the windows that can survive
# the cap. The slack lets a secret that crosses a window's edge still be recognised whole; the last _EDGE
# characters of a window are never shown, so nothing cut at the edge (half a card number) can leak.
_SLACK = 16384
_EDGE = 64


def is_truncated(text: str | None) -> bool:
    """Whether a cap shortened this text (the marker sits at the end, or mid-text for tracebacks)."""
    return isinstance(text, str) and _MARKER_RE.search(text) is not None


class Redactor:
    """Applies the privacy settings to events and to any free text; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        store_args: bool = True,
        store_results: bool = True,
        mask_keys: Sequence[str] = DEFAULT_MASK_KEYS,
        mask_patterns: Sequence[str] = (),
        mask_card_numbers: bool = True,
        max_args_size: int = 10000,
        max_result_size: int = 10000,
        max_traceback_size: int = 65536,
    ) -> None:
        # A bare string would be taken letter by letter ("token" masking every key with a "t"): refuse it.
        if isinstance(mask_keys, str) or isinstance(mask_patterns, str):
            raise TypeError("mask_keys and mask_patterns must be sequences of strings, not a string")
        for name, cap in (("max_args_size", max_args_size), ("max_result_size", max_result_size),
                          ("max_traceback_size", max_traceback_size)):
            if not isinstance(cap, int) or cap < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {cap!r}")
        self.store_args = store_args
        self.store_results = store_results
        self.mask_keys = tuple(k.strip().lower() for k in mask_keys if k.strip())
        self.mask_patterns = tuple(mask_patterns)
        self.mask_card_numbers = mask_card_numbers
        self.max_args_size = max_args_size
        self.max_result_size = max_result_size
        self.max_traceback_size = max_traceback_size

        self._patterns = tuple(_compile_pattern(p) for p in self.mask_patterns)
        # Mask words are looked for in the lowered text: a plain alternation is many times faster than an
        # IGNORECASE one. The case-insensitive twin serves the rare text whose length lower() changes.
        words = _words_alternation(self.mask_keys)
        self._words_re = re.compile(words) if words else None
        self._words_ci_re = re.compile(f"(?i:{words})") if words else None
        # (event key, cap, keep the tail too, stored at all)
        self._fields = (
            ("args", max_args_size, False, store_args),
            ("kwargs", max_args_size, False, store_args),
            ("result", max_result_size, False, store_results),
            ("exception", max_traceback_size, False, True),
            ("traceback", max_traceback_size, True, True),
        )

    @classmethod
    def from_settings(cls, settings: Any) -> Redactor:
        """Build from a settings object that has an attribute for each of `SETTING_NAMES`."""
        return cls(**{name: getattr(settings, name) for name in SETTING_NAMES})

    def clean_event(self, event: Mapping[str, Any], *, copy: bool = True) -> dict[str, Any]:
        """A copy of `event` with its payload fields masked and capped; every other key is copied as is.

        `copy=False` cleans a dict the caller owns in place (the collector's hot path saves a copy per event).
        """
        cleaned = dict(event) if copy or not isinstance(event, dict) else event
        for key, cap, keep_tail, stored in self._fields:
            if key in cleaned:
                cleaned[key] = self._clean(cleaned[key], cap, keep_tail) if stored else None
        return cleaned

    def clean_text(self, text: str | None, max_size: int) -> str | None:
        """Mask then cap any free text (a log line, an export cell)."""
        if max_size < 0:
            raise ValueError(f"max_size must be non-negative, got {max_size!r}")
        return self._clean(text, max_size, False)

    def mask(self, text: str) -> str:
        """Apply the masking rules only, without a cap."""
        # Cheap checks first, so a text with nothing to hide costs a lower() and a few substring searches.
        low = text.lower()
        has_auth = "bearer" in low or "basic" in low
        has_url = "://" in text
        if self._words_re is not None:
            text = self._mask_keys(text, low)
        if has_auth:
            text = _AUTH_RE.sub(_mask_auth, text)
        if has_url:
            text = _URL_PASSWORD_RE.sub(r"\1***@", text)
        if self.mask_card_numbers and len(text) >= 13 and len(text) - len(text.translate(_NO_DIGITS)) >= 13:
            text = _CARD_RUN_RE.sub(_mask_card_run, text)
        for pattern in self._patterns:
            text = pattern.sub(MASK, text)
        return text

    def _clean(self, value: object, cap: int, keep_tail: bool) -> str | None:
        if value is None:
            return None
        # Hostile events can carry any JSON (with pickle, any) value: never let one crash the writer.
        text = value if isinstance(value, str) else _safe_repr(value)
        if len(text) > 2 * (cap + _SLACK):
            return self._clean_huge(text, cap, keep_tail)
        text = self.mask(text)
        return _cap_head_and_tail(text, cap) if keep_tail else _cap_head(text, cap)

    def _clean_huge(self, text: str, cap: int, keep_tail: bool) -> str:
        head = cap // 3 if keep_tail else cap
        tail = cap - head
        head_window = self.mask(text[: head + _SLACK])
        tail_window = self.mask(text[len(text) - tail - _SLACK:]) if tail else ""
        head_kept = head_window[: max(0, min(head, len(head_window) - _EDGE))]
        tail_length = max(0, min(tail, len(tail_window) - _EDGE))
        tail_kept = tail_window[len(tail_window) - tail_length:]
        never_masked = len(text) - (head + _SLACK) - (tail + _SLACK if tail else 0)
        removed = never_masked + len(head_window) - len(head_kept) + len(tail_window) - len(tail_kept)
        return head_kept + TRUNCATED_MARKER.format(n=removed) + tail_kept

    def _mask_keys(self, text: str, low: str) -> str:
        if len(low) == len(text):
            haystack, words = low, self._words_re
        else:  # lower() changed some letter's length: positions in `low` would be wrong
            haystack, words = text, self._words_ci_re
        assert words is not None
        found = words.search(haystack)
        if found is None:
            return text
        out: list[str] = []
        pos = 0
        while found is not None:
            key = _key_around(text, found.start(), found.end())
            if key is None:  # the word is prose or part of a value, not a key
                found = words.search(haystack, found.end())
                continue
            start, mode, quote = key
            end, replacement = _masked_value(text, start, mode, quote)
            if end > start:
                out += (text[pos:start], replacement)
                pos = end
            found = words.search(haystack, end)
        out.append(text[pos:])
        return "".join(out)


def _compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid mask pattern {pattern!r}: {exc}") from None


def _words_alternation(keys: Sequence[str]) -> str:
    """The lowercase mask words as one alternation, where `_`, `-` and space match each other or nothing."""
    alternatives = {r"[-_ ]?".join(re.escape(p) for p in re.split(r"[-_ ]+", key) if p) for key in keys}
    alternatives.discard("")
    return "|".join(sorted(alternatives, key=len, reverse=True))


def _key_around(text: str, word_start: int, word_end: int) -> tuple[int, int, str] | None:
    """If the mask word at `word_start` lies in a key, where that key's value starts, its form and quote."""
    lowest = max(0, word_start - _MAX_KEY_LENGTH)
    # Dict item: the word sits between the key's quotes, so the nearest quote before it opens the key.
    quote = max(text.rfind("'", lowest, word_start), text.rfind('"', lowest, word_start))
    if quote >= 0:
        if quote > 0 and text[quote - 1] == "\\":
            quote -= 1
        item = _DICT_KEY_RE.match(text, quote)
        if item is not None:
            return item.end(), _DICT, item.group(1)
    # Keyword or header style: the word is part of an identifier followed by `=` or `:`.
    start = word_start
    while start > lowest and (text[start - 1].isalnum() or text[start - 1] in "_-"):
        start -= 1
    bare = _BARE_KEY_RE.match(text, start)
    if bare is None or bare.end(1) < word_end:
        return None
    if bare.group(2) == "=":
        return bare.end(), _KEYWORD, ""
    if bare.group(1).endswith(_EXCEPTION_NAME_SUFFIXES):
        return None
    return bare.end(), _HEADER, ""


def _masked_value(text: str, start: int, mode: int, quote: str) -> tuple[int, str]:
    """Where the value starting at `start` ends, and what replaces it."""
    string = _STRING_START_RE.match(text, start)
    if string is not None:
        delimiter = string.group(1)
        return _string_end(text, string.end(), delimiter), text[start: string.end()] + MASK + delimiter
    if mode == _HEADER and text[start: start + 1] not in ("(", "[", "{"):
        end = _HEADER_VALUE_RE.match(text, start).end()  # type: ignore[union-attr]  # matches empty
    else:
        end = _unquoted_end(text, start, stop_at_space=mode == _KEYWORD)
    return end, quote + MASK + quote


def _string_end(text: str, start: int, delimiter: str) -> int:
    """The index after the string whose body starts at `start`; an unterminated string runs to the end."""
    if len(delimiter) == 2:
        end = text.find(delimiter, start)
        return len(text) if end < 0 else end + 2
    body = _STRING_BODY_RE[delimiter].match(text, start)
    return len(text) if body is None else body.end()


def _unquoted_end(text: str, start: int, *, stop_at_space: bool) -> int:
    """The end of a number, name or container value: brackets are matched and quoted strings skipped."""
    stack: list[str] = []
    pos = start
    scan = _SCAN_RE.search
    while (found := scan(text, pos)) is not None:
        i = found.start()
        char = text[i]
        if char in "([{":
            stack.append(char)
            pos = i + 1
        elif char in ")]}":
            if not stack or stack[-1] != _OPENERS[char]:
                return i  # the end of the enclosing structure: never cross it
            stack.pop()
            pos = i + 1
        elif char in "'\"" or (char == "\\" and text[i + 1: i + 2] in ("'", '"')):
            if not stack:
                return i  # a quote after a bare value closes the string it sits in
            delimiter = text[i: i + 2] if char == "\\" else char
            pos = _string_end(text, i + len(delimiter), delimiter)
        elif char == "\\":
            pos = i + 2
        elif stack:
            pos = i + 1
        elif char in ",\r\n" or (stop_at_space and (char in ";&" or char.isspace())):
            return i
        else:
            pos = i + 1
    return len(text)


# --- Masking by value --------------------------------------------------------------------------------------

def _mask_auth(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return match.group(1) + MASK
    token = match.group(3)
    # "Basic plan" is prose, not credentials: base64 of "user:pass" has capitals, digits or padding.
    if _BASE64_HINT_RE.search(token, 1) is None:
        return match.group()
    return match.group(2) + MASK


def _luhn_valid(digits: str) -> bool:
    # Every second digit from the right is doubled (a doubled digit over 9 counts its digit sum); the table
    # does that per character so both sums stay in C.
    doubled = digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(map(int, digits[-1::-2])) + sum(map(int, doubled))) % 10 == 0


def _is_card_number(digits: str) -> bool:
    # Issuers' first digits are 2-6 (Mastercard, Amex/Diners, Visa, Mastercard, Discover/UnionPay). Without
    # this, one in ten 13-digit millisecond timestamps (which start with 1) would pass Luhn and be masked.
    return digits[:1] in _CARD_FIRST_DIGITS and _luhn_valid(digits)


_CARD_FIRST_DIGITS = frozenset("23456")


def _mask_card_run(match: re.Match[str]) -> str:
    run = match.group()
    digits = run.replace(" ", "").replace("-", "")
    if len(digits) <= 19 and _is_card_number(digits):
        return MASK
    # A card printed next to other numbers (`4111 1111 1111 1111 12 25`): try spans of whole groups, longest
    # first. Printed cards group their digits by 3 to 6, so spans are made of groups of 3 or more digits:
    # this bounds the work, and a hostile run like `1 1 1 1 ...` costs nothing.
    groups = [(g.start(), g.end()) for g in _CARD_GROUP_RE.finditer(run)]
    out: list[str] = []
    pos = first = 0
    while first < len(groups):
        last, total = first, groups[first][1] - groups[first][0]
        while (last + 1 < len(groups) and groups[last + 1][0] == groups[last][1] + 1
               and total + groups[last + 1][1] - groups[last + 1][0] <= 19):
            last += 1
            total += groups[last][1] - groups[last][0]
        while last >= first and total >= 13:
            if total <= 19 and _is_card_number("".join(run[a:b] for a, b in groups[first: last + 1])):
                out += (run[pos: groups[first][0]], MASK)
                pos, first = groups[last][1], last
                break
            total -= groups[last][1] - groups[last][0]
            last -= 1
        first += 1
    out.append(run[pos:])
    return "".join(out)


# --- Caps --------------------------------------------------------------------------------------------------

def _already_capped(text: str, cap: int) -> bool:
    # Shown and exported data goes through the redactor again: a capped text must not be cut a second time.
    marker = _MARKER_RE.search(text)
    return marker is not None and len(text) - (marker.end() - marker.start()) <= cap


def _cap_head(text: str, cap: int) -> str:
    removed = len(text) - cap
    if removed <= 0 or _already_capped(text, cap):
        return text
    return text[:cap] + TRUNCATED_MARKER.format(n=removed)


def _cap_head_and_tail(text: str, cap: int) -> str:
    removed = len(text) - cap
    if removed <= 0 or _already_capped(text, cap):
        return text
    head = cap // 3
    return text[:head] + TRUNCATED_MARKER.format(n=removed) + text[head + removed:]


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ in a pickled object must not stop the collector
        return f"<unrepresentable {type(value).__name__}>"
