"""What the redactor does to task payloads before anything is written, shown or exported."""
from __future__ import annotations

import copy
import time
from types import SimpleNamespace

import pytest

from webui.privacy import DEFAULT_MASK_KEYS, SETTING_NAMES, TRUNCATED_MARKER, Redactor, is_truncated

redactor = Redactor()


def mask(text: str) -> str:
    masked = redactor.clean_text(text, 100_000)
    assert masked is not None
    return masked


# --- Masking by key: dict items -----------------------------------------------------------------------------


def test_a_dict_value_is_masked_and_its_neighbours_are_kept() -> None:
    assert mask("{'password': 'x', 'user': 'bob'}") == "{'password': '***', 'user': 'bob'}"


def test_json_style_double_quoted_keys_keep_their_quote_style() -> None:
    assert mask('{"api_key": "y", "user": "bob"}') == '{"api_key": "***", "user": "bob"}'


def test_a_key_nested_in_another_dict_is_masked() -> None:
    kwargs = "{'password': 'hunter2', 'nested': {'token': 'abc'}, 'user': 'bob'}"
    assert mask(kwargs) == "{'password': '***', 'nested': {'token': '***'}, 'user': 'bob'}"


def test_a_container_value_is_masked_whole() -> None:
    assert mask("{'secret': {'a': 1, 'b': [2, 3]}, 'user': 'bob'}") == "{'secret': '***', 'user': 'bob'}"


def test_brackets_inside_strings_do_not_end_a_container_value() -> None:
    text = "{'credentials': {'a': '}]', 'b': \"{\"}, 'user': 'bob'}"
    assert mask(text) == "{'credentials': '***', 'user': 'bob'}"


def test_a_value_never_runs_past_the_end_of_its_enclosing_structure() -> None:
    assert mask("{'k': [1, {'token': 5}], 'z': 2}") == "{'k': [1, {'token': '***'}], 'z': 2}"


def test_bytes_keys_and_values_are_masked_and_stay_bytes_literals() -> None:
    assert mask("{b'token': b'z', b'id': 7}") == "{b'token': b'***', b'id': 7}"


def test_a_value_with_escaped_quotes_is_masked_whole() -> None:
    kwargs = repr({"password": "it's \"quoted\"", "user": "bob"})
    assert kwargs == """{'password': 'it\\'s "quoted"', 'user': 'bob'}"""
    assert mask(kwargs) == "{'password': '***', 'user': 'bob'}"


def test_numbers_and_none_are_masked_too() -> None:
    assert mask("{'pwd': 1234, 'session_id': None, 'n': 5}") == "{'pwd': '***', 'session_id': '***', 'n': 5}"


def test_a_dict_inside_a_string_inside_a_repr_is_masked() -> None:
    # A repr of a string that itself holds a dict repr with both kinds of quotes: delimiters are escaped.
    text = repr("""{'password': 'x', 'user': "bob"}""")
    assert mask(text) == repr("""{'password': '***', 'user': "bob"}""")


def test_an_unterminated_value_is_masked_to_the_end() -> None:
    # saferepr cuts long reprs: what follows the key is still the secret.
    assert mask("{'user': 'bob', 'password': 'hunter2hunter2...") == "{'user': 'bob', 'password': '***'"


# --- Masking by key: keyword and header style ---------------------------------------------------------------


def test_keyword_style_values_are_masked_up_to_the_next_separator() -> None:
    text = 'login password=hunter2 token="abc def" user=bob'
    assert mask(text) == 'login password=*** token="***" user=bob'


def test_keyword_arguments_in_an_object_repr_are_masked() -> None:
    assert mask("User(name='bob', password='x', db_password=None)") == (
        "User(name='bob', password='***', db_password=***)"
    )


def test_query_string_values_are_masked() -> None:
    assert mask("GET /cb?code=1&access_key=abc&state=ok") == "GET /cb?code=1&access_key=***&state=ok"


def test_a_header_value_is_masked_to_the_end_of_the_line() -> None:
    text = "Authorization: Bearer abc.def\nAccept: text/html"
    assert mask(text) == "Authorization: ***\nAccept: text/html"


def test_a_header_value_in_an_exception_is_masked_to_the_closing_quote() -> None:
    assert mask("PermissionError('Cookie: a=1; b=2')") == "PermissionError('Cookie: ***')"


def test_keys_are_matched_case_insensitively_and_as_substrings() -> None:
    text = "{'PASSWORD': 'x', 'session_token': 'y', 'db_password': 'z', 'Token': 1, 'user': 'bob'}"
    assert mask(text) == (
        "{'PASSWORD': '***', 'session_token': '***', 'db_password': '***', 'Token': '***', 'user': 'bob'}"
    )


def test_underscore_dash_and_nothing_are_interchangeable_in_mask_words() -> None:
    assert mask("{'X-Api-Key': 'k', 'sessionid': 's', 'user': 'bob'}") == (
        "{'X-Api-Key': '***', 'sessionid': '***', 'user': 'bob'}"
    )


def test_a_mask_word_inside_a_value_is_not_a_key() -> None:
    text = "{'note': 'I forgot my password', 'field': 'token'}"
    assert mask(text) == text


def test_an_exception_line_named_after_a_mask_word_stays_readable() -> None:
    line = "jwt.exceptions.InvalidTokenError: Signature has expired"
    assert mask(line) == line


def test_custom_mask_keys_replace_the_defaults() -> None:
    only_ssn = Redactor(mask_keys=("ssn",))
    assert only_ssn.clean_text("{'ssn': '078-05-1120', 'password': 'x'}", 1000) == (
        "{'ssn': '***', 'password': 'x'}"
    )


def test_text_whose_lowercase_changes_length_is_still_masked() -> None:
    # 'İ'.lower() is two characters, so positions found in the lowered text would be off.
    assert mask("{'İİ': 1, 'PASSWORD': 'x'}") == "{'İİ': 1, 'PASSWORD': '***'}"


def test_masking_masked_text_changes_nothing() -> None:
    once = mask("{'password': 'x'} token=abc Authorization: Bearer q 4111 1111 1111 1111")
    assert mask(once) == once


# --- Masking by value ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"])
def test_luhn_valid_card_numbers_are_masked(card: str) -> None:
    assert mask(f"('{card}', 42)") == "('***', 42)"


def test_numbers_that_fail_luhn_are_kept() -> None:
    assert mask("('order', 1234567890123)") == "('order', 1234567890123)"


def test_a_card_next_to_other_numbers_is_found() -> None:
    assert mask("pay 4111 1111 1111 1111 12 25") == "pay *** 12 25"


def test_card_masking_can_be_turned_off() -> None:
    keep_cards = Redactor(mask_card_numbers=False)
    assert keep_cards.clean_text("4111 1111 1111 1111", 100) == "4111 1111 1111 1111"


def test_non_ascii_digits_are_left_alone() -> None:
    text = "('١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦',)"
    assert mask(text) == text


def test_bearer_and_basic_credentials_are_masked_anywhere() -> None:
    text = "sent Bearer eyJhbGciOi.eyJzdWIi.sig and Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ== ok"
    assert mask(text) == "sent Bearer *** and Basic *** ok"


def test_basic_followed_by_a_plain_word_is_prose() -> None:
    assert mask("{'plan': 'Basic monthly'}") == "{'plan': 'Basic monthly'}"


def test_the_password_in_a_url_is_masked() -> None:
    assert mask("('postgres://app:hunter2@db:5432/app',)") == "('postgres://app:***@db:5432/app',)"


def test_custom_patterns_mask_each_match() -> None:
    emails = Redactor(mask_patterns=[r"[\w.+-]+@example\.com"])
    assert emails.clean_text("('bob@example.com', 'alice@other.org')", 100) == "('***', 'alice@other.org')"


def test_an_invalid_pattern_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"invalid mask pattern '\(unclosed'"):
        Redactor(mask_patterns=["ok", "(unclosed"])


# --- Events -------------------------------------------------------------------------------------------------


def failed_event(**fields: object) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "task-failed", "uuid": "d9b1c6a2-6d0e-4bb8-9d43-5c1e1e0e4f11", "hostname": "celery@w1",
        "timestamp": 1700000000.5, "clock": 7, "args": "('bob', 42)",
        "kwargs": "{'password': 'hunter2', 'nested': {'token': 'abc'}}", "result": "'ok'",
        "exception": "ValueError('bad password=hunter2')",
        "traceback": (
            'Traceback (most recent call last):\n  File "t.py", line 3, in f\nValueError: token=abc\n'
        ),
    }
    event.update(fields)
    return event


def test_an_event_is_cleaned_field_by_field() -> None:
    cleaned = redactor.clean_event(failed_event())
    assert cleaned["args"] == "('bob', 42)"
    assert cleaned["kwargs"] == "{'password': '***', 'nested': {'token': '***'}}"
    assert cleaned["result"] == "'ok'"
    assert cleaned["exception"] == "ValueError('bad password=***')"
    assert cleaned["traceback"].endswith("ValueError: token=***\n")


def test_other_fields_are_copied_as_they_are() -> None:
    event = failed_event(extra={"password": "x"}, retries=2)
    cleaned = redactor.clean_event(event)
    for key in ("type", "uuid", "hostname", "timestamp", "clock", "retries"):
        assert cleaned[key] == event[key]
    assert cleaned["extra"] is event["extra"]


def test_the_input_event_is_not_mutated() -> None:
    event = failed_event(args=["list", "arg"], kwargs={"password": "x"})
    before = copy.deepcopy(event)
    cleaned = redactor.clean_event(event)
    assert event == before
    assert cleaned is not event


def test_fields_the_event_lacks_are_not_added() -> None:
    started = {"type": "task-started", "uuid": "u"}
    assert redactor.clean_event(started) == started


def test_with_store_args_off_args_and_kwargs_become_none() -> None:
    cleaned = Redactor(store_args=False).clean_event(failed_event())
    assert cleaned["args"] is None
    assert cleaned["kwargs"] is None
    assert cleaned["result"] == "'ok'"


def test_with_store_results_off_the_result_goes_but_the_failure_stays_masked() -> None:
    cleaned = Redactor(store_results=False).clean_event(failed_event())
    assert cleaned["result"] is None
    assert cleaned["exception"] == "ValueError('bad password=***')"
    assert "token=***" in cleaned["traceback"]
    assert cleaned["args"] == "('bob', 42)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (42, "42"),
        (["a", 1], "['a', 1]"),
        ({"password": "x", "user": "bob"}, "{'password': '***', 'user': 'bob'}"),
        (4111111111111111, "***"),
    ],
)
def test_hostile_non_strings_are_repr_then_cleaned(value: object, expected: str | None) -> None:
    cleaned = redactor.clean_event({"args": value, "kwargs": value, "result": value, "traceback": value})
    assert cleaned == {"args": expected, "kwargs": expected, "result": expected, "traceback": expected}


def test_a_value_whose_repr_fails_does_not_crash() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert redactor.clean_event({"result": Broken()}) == {"result": "<unrepresentable Broken>"}


def test_html_passes_through_untouched_since_escaping_is_the_templates_job() -> None:
    payload = "('<script>alert(1)</script>', '<img src=x onerror=alert(1)>')"
    cleaned = redactor.clean_event({"args": payload, "result": "'<b>&amp;</b>'"})
    assert cleaned == {"args": payload, "result": "'<b>&amp;</b>'"}


# --- Caps ---------------------------------------------------------------------------------------------------


def test_long_args_keep_the_first_characters_and_say_how_many_were_cut() -> None:
    small = Redactor(max_args_size=10, max_result_size=5)
    cleaned = small.clean_event({"args": "a" * 25, "kwargs": "k" * 10, "result": "r" * 8})
    assert cleaned["args"] == "a" * 10 + " …[truncated 15 chars]"
    assert cleaned["kwargs"] == "k" * 10
    assert cleaned["result"] == "rrrrr" + TRUNCATED_MARKER.format(n=3)
    assert is_truncated(cleaned["args"])
    assert not is_truncated(cleaned["kwargs"])
    assert not is_truncated(None)


def test_masking_happens_before_the_cap() -> None:
    small = Redactor(max_args_size=19)
    assert small.clean_event({"kwargs": "{'password': 'hunter2hunter2hunter2'}"})["kwargs"] == (
        "{'password': '***'}"
    )


def test_a_card_number_is_never_cut_in_half_by_the_cap() -> None:
    small = Redactor(max_args_size=12)
    assert small.clean_event({"args": "('4111 1111 1111 1111',)"})["args"] == "('***',)"


def test_capped_text_is_not_cut_again_when_cleaned_for_display() -> None:
    capped = redactor.clean_text("x" * 50, 20)
    assert capped == "x" * 20 + " …[truncated 30 chars]"
    assert redactor.clean_text(capped, 20) == capped


def test_a_long_traceback_keeps_its_head_and_its_tail() -> None:
    frames = "".join(f'  File "app/step{i}.py", line {i}, in step{i}\n    do(x)\n' for i in range(200))
    traceback = "Traceback (most recent call last):\n" + frames + "KeyError: 'missing'\n"
    cleaned = Redactor(max_traceback_size=300).clean_event({"traceback": traceback})["traceback"]
    head, marker, tail = cleaned.partition(TRUNCATED_MARKER.format(n=len(traceback) - 300))
    assert marker
    assert head == traceback[:100]
    assert tail == traceback[-200:]
    assert tail.endswith("KeyError: 'missing'\n")


def test_the_exception_is_capped_like_free_text() -> None:
    cleaned = Redactor(max_traceback_size=10).clean_event({"exception": "ValueError('" + "x" * 30 + "')"})
    assert cleaned["exception"] == "ValueError" + TRUNCATED_MARKER.format(n=34)


def test_a_huge_traceback_is_capped_without_masking_all_of_it() -> None:
    middle = "  File 'x.py', line 1, in f\n" * 40_000
    traceback = "Traceback (most recent call last):\n" + middle + "RuntimeError: token=abc\n"
    cleaned = Redactor(max_traceback_size=3000).clean_event({"traceback": traceback})["traceback"]
    assert cleaned.startswith("Traceback (most recent call last):\n")
    assert cleaned.endswith("RuntimeError: token=***\n")
    assert is_truncated(cleaned)
    assert len(cleaned) < 3100


def test_a_huge_text_never_shows_a_secret_cut_at_the_edge_of_what_was_masked() -> None:
    # The head window ends in the middle of this card number: nothing of it may show.
    text = "{'password': '" + "p" * 40_000 + "'} 4111 1111 1111 1111" + "z" * 50_000
    cleaned = redactor.clean_text(text, 10)
    assert cleaned is not None
    assert "p" not in cleaned.replace("password", "")
    assert "4111" not in cleaned


# --- Configuration ------------------------------------------------------------------------------------------


def test_it_is_built_from_settings_with_the_same_names() -> None:
    settings = SimpleNamespace(
        store_args=True, store_results=False, mask_keys=["ssn"], mask_patterns=[r"\bSECRET\d+"],
        mask_card_numbers=False, max_args_size=5, max_result_size=6, max_traceback_size=7, unrelated=1,
    )
    built = Redactor.from_settings(settings)
    assert built.clean_event({"args": "('SECRET1',)", "result": "1"}) == {
        "args": "('***" + TRUNCATED_MARKER.format(n=3),
        "result": None,
    }
    assert (built.mask_keys, built.max_traceback_size) == (("ssn",), 7)


def test_a_missing_setting_is_an_error_not_a_silent_default() -> None:
    settings = SimpleNamespace(**{name: getattr(Redactor(), name) for name in SETTING_NAMES[:-1]})
    with pytest.raises(AttributeError, match="max_traceback_size"):
        Redactor.from_settings(settings)


def test_a_single_string_of_mask_keys_is_refused() -> None:
    with pytest.raises(TypeError):
        Redactor(mask_keys="password")  # a str is a Sequence[str]: only the runtime check catches it


def test_a_negative_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_args_size"):
        Redactor(max_args_size=-1)


def test_the_default_mask_words() -> None:
    assert DEFAULT_MASK_KEYS == (
        "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_key", "private_key",
        "authorization", "credentials", "cookie", "session_id",
    )


def test_hostile_runs_of_digits_cost_little() -> None:
    # Backtracking would take minutes on these; a linear scan takes a fraction of a second. The bound leaves
    # room for a machine busy with other tests (CPU time, not wall time, for the same reason).
    for text in ("1 " * 100_000, "1111 " * 40_000, "1" * 200_000):
        started = time.process_time()
        assert redactor.mask(text) == text
        assert time.process_time() - started < 3


def test_millisecond_timestamps_are_not_mistaken_for_card_numbers():
    redactor = Redactor()
    # 1795287000008 passes the Luhn check, but no card issuer's numbers start with 1.
    assert redactor.mask("{'ts': 1795287000008}") == "{'ts': 1795287000008}"
    assert redactor.mask("{'card': '5555 5555 5555 4444'}") == "{'card': '***'}"
