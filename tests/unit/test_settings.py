"""Settings: where each value comes from, how text becomes typed values, and that the docs list them all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webui.settings import (
    BY_NAME,
    DEFAULT_BROKER,
    SETTINGS,
    Settings,
    SettingsError,
    default_settings,
    load_settings,
    mask_url_password,
    split_list,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
HOME = {"HOME": "/home/alice"}


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "webui.toml"
    path.write_text(text)
    return str(path)


# -- precedence: flag > env > config file > default -------------------------------------------------


def test_it_uses_the_defaults_when_nothing_is_set() -> None:
    settings = load_settings({}, HOME)

    assert settings.port == 5555
    assert settings.address == "127.0.0.1"
    assert settings.broker is None and settings.app is None
    assert settings.mask_keys[0] == "password"
    assert set(settings.sources.values()) == {"default"}


def test_a_flag_beats_the_environment() -> None:
    settings = load_settings({"port": "6000"}, {**HOME, "WEBUI_PORT": "7000"})

    assert settings.port == 6000
    assert settings.sources["port"] == "flag"


def test_the_environment_beats_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "port = 8000\n")

    settings = load_settings({}, {**HOME, "WEBUI_CONFIG": config, "WEBUI_PORT": "7000"})

    assert settings.port == 7000
    assert settings.sources["port"] == "env WEBUI_PORT"


def test_the_config_file_beats_the_default(tmp_path: Path) -> None:
    config = write_config(tmp_path, "port = 8000\nstore_args = false\n")

    settings = load_settings({"config": config}, HOME)

    assert (settings.port, settings.store_args) == (8000, False)
    assert settings.sources["port"] == f"config file {config}"
    assert settings.sources["config"] == "flag"


def test_a_flag_beats_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "workers = 3\n")

    settings = load_settings({"config": config, "workers": 5}, HOME)

    assert settings.workers == 5


def test_the_config_flag_beats_webui_config(tmp_path: Path) -> None:
    chosen = write_config(tmp_path, "port = 8001\n")

    settings = load_settings({"config": chosen}, {**HOME, "WEBUI_CONFIG": str(tmp_path / "missing.toml")})

    assert settings.port == 8001


# -- WEBUI_<NAME>_FILE ------------------------------------------------------------------------------


def test_it_reads_a_secret_from_the_file_named_by_the_file_variable(tmp_path: Path) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql://webui:s3cret@db/webui\n")

    settings = load_settings({}, {**HOME, "WEBUI_DATABASE_FILE": str(secret)})

    assert settings.database == "postgresql://webui:s3cret@db/webui"
    assert settings.sources["database"] == "env WEBUI_DATABASE_FILE"


def test_a_list_secret_file_may_hold_one_item_a_line(tmp_path: Path) -> None:
    secret = tmp_path / "basic-auth"
    secret.write_text("alice:pbkdf2:sha256:1$a$b\nbob:scrypt:32768:8:1$c$d, carol:pbkdf2:sha256:1$e$f\n\n")

    settings = load_settings({}, {**HOME, "WEBUI_BASIC_AUTH_FILE": str(secret)})

    assert settings.basic_auth == ("alice:pbkdf2:sha256:1$a$b", "bob:scrypt:32768:8:1$c$d",
                                   "carol:pbkdf2:sha256:1$e$f")


def test_a_flag_beats_a_file_variable(tmp_path: Path) -> None:
    secret = tmp_path / "broker-url"
    secret.write_text("redis://:pw@file-host/0")

    settings = load_settings({"broker": "redis://flag-host/0"}, {**HOME, "WEBUI_BROKER_FILE": str(secret)})

    assert settings.broker == "redis://flag-host/0"


def test_a_missing_secret_file_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"WEBUI_BROKER_FILE: cannot read .*missing"):
        load_settings({}, {**HOME, "WEBUI_BROKER_FILE": str(tmp_path / "missing")})


def test_setting_both_the_variable_and_the_file_variable_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "broker-url"
    secret.write_text("redis://a/0")

    with pytest.raises(SettingsError, match="WEBUI_BROKER and WEBUI_BROKER_FILE are both set"):
        load_settings({}, {**HOME, "WEBUI_BROKER": "redis://b/0", "WEBUI_BROKER_FILE": str(secret)})


# -- typed parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False)],
)
def test_booleans_accept_only_the_listed_words(text: str, expected: bool) -> None:
    assert load_settings({}, {**HOME, "WEBUI_RECONCILE": text}).reconcile is expected


@pytest.mark.parametrize("text", ["maybe", "2", "", "enabled", "t"])
def test_any_other_boolean_text_is_an_error_naming_the_variable(text: str) -> None:
    with pytest.raises(SettingsError, match=r"^WEBUI_STORE_ARGS: expected true/false .*got"):
        load_settings({}, {**HOME, "WEBUI_STORE_ARGS": text})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("port", "0", "--port: must be at least 1, got 0"),
        ("port", "65536", "--port: must be at most 65535, got 65536"),
        ("batch_interval", "2", "--batch-interval: must be at most 1, got 2"),
        ("batch_interval", "0.001", "--batch-interval: must be at least 0.01, got 0.001"),
        ("worker_offline_heartbeats", "1", "--worker-offline-heartbeats: must be at least 1.5, got 1"),
        ("enable_events_interval", "0.5", "--enable-events-interval: must be at least 1, got 0.5"),
        ("batch_size", "0", "--batch-size: must be at least 1, got 0"),
        ("workers", "two", "--workers: expected a whole number, got 'two'"),
        ("port", "55.5", "--port: expected a whole number, got '55.5'"),
        ("inspect_timeout", "nan", "--inspect-timeout: expected a number, got 'nan'"),
        ("log_level", "verbose", "--log-level: expected one of debug, info, warning, error, got 'verbose'"),
    ],
)
def test_bad_flag_values_are_refused_with_the_flag_named(name: str, text: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: text}, HOME)
    assert str(caught.value) == message


def test_bounds_apply_to_config_files_too(tmp_path: Path) -> None:
    config = write_config(tmp_path, "port = 70000\n")

    expected = rf"config file {re.escape(config)}, key 'port': must be at most 65535"
    with pytest.raises(SettingsError, match=expected):
        load_settings({"config": config}, HOME)


def test_choices_ignore_case() -> None:
    assert load_settings({}, {**HOME, "WEBUI_LOG_LEVEL": "DEBUG"}).log_level == "debug"


def test_lists_are_comma_separated_in_flags_and_environment() -> None:
    settings = load_settings({"mask_keys": "token, api_key,,x-secret "}, {**HOME, "WEBUI_MASK_PATTERNS": ""})

    assert settings.mask_keys == ("token", "api_key", "x-secret")
    assert settings.mask_patterns == ()


def test_commas_inside_a_regular_expression_do_not_split_it() -> None:
    assert split_list(r"\d{3,4}-x,[a,b]c,one\,two") == (r"\d{3,4}-x", "[a,b]c", "one,two")


def test_lists_are_arrays_in_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'mask_keys = ["token", "x-secret"]\nmask_patterns = [\'\\bAKIA\\w+\']\n')

    settings = load_settings({"config": config}, HOME)

    assert settings.mask_keys == ("token", "x-secret")
    assert settings.mask_patterns == (r"\bAKIA\w+",)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('mask_keys = "token,secret"', "expected a TOML array of strings"),
        ('port = "5555"', "expected a TOML integer"),
        ('store_args = "no"', "expected a TOML boolean"),
        ("mask_keys = [1, 2]", "expected a list of strings"),
        ("address = 127", "expected text"),
    ],
)
def test_config_file_values_must_have_the_right_toml_type(tmp_path: Path, line: str, message: str) -> None:
    config = write_config(tmp_path, line + "\n")

    with pytest.raises(SettingsError, match=message):
        load_settings({"config": config}, HOME)


def test_mask_patterns_must_be_valid_regular_expressions() -> None:
    expected = r"WEBUI_MASK_PATTERNS: '\(unclosed' is not a valid regular expression"
    with pytest.raises(SettingsError, match=expected):
        load_settings({}, {**HOME, "WEBUI_MASK_PATTERNS": "ok,(unclosed"})


def test_an_empty_optional_value_means_not_set() -> None:
    assert load_settings({}, {**HOME, "WEBUI_APP": ""}).app is None


def test_an_empty_required_value_is_an_error() -> None:
    with pytest.raises(SettingsError, match="WEBUI_ADDRESS: must not be empty"):
        load_settings({}, {**HOME, "WEBUI_ADDRESS": " "})


def test_the_database_must_be_sqlite_or_postgresql_without_showing_its_password() -> None:
    with pytest.raises(SettingsError, match="WEBUI_DATABASE: must be a sqlite") as caught:
        load_settings({}, {**HOME, "WEBUI_DATABASE": "mysql://root:hunter2@db/webui"})
    assert "hunter2" not in str(caught.value)


# -- the config file --------------------------------------------------------------------------------


def test_an_unknown_config_key_is_an_error_naming_the_key_and_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "prot = 5555\n")

    with pytest.raises(SettingsError) as caught:
        load_settings({"config": config}, HOME)
    assert str(caught.value) == f"config file {config}: unknown setting 'prot' (did you mean 'port'?)"


def test_the_config_file_cannot_name_another_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'config = "/etc/other.toml"\n')

    with pytest.raises(SettingsError, match="'config' cannot be set in a config file"):
        load_settings({"config": config}, HOME)


def test_a_missing_or_broken_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read it"):
        load_settings({}, {**HOME, "WEBUI_CONFIG": str(tmp_path / "missing.toml")})
    broken = write_config(tmp_path, "port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings({"config": broken}, HOME)


# -- computed defaults ------------------------------------------------------------------------------


def test_the_database_lives_in_the_xdg_data_directory() -> None:
    settings = load_settings({}, {**HOME, "XDG_DATA_HOME": "/data"})

    assert settings.data_dir == "/data/celery-webui"
    assert settings.database == "sqlite:////data/celery-webui/webui.sqlite3"


def test_without_xdg_data_home_the_database_lives_under_the_home_directory() -> None:
    settings = load_settings({}, {**HOME, "XDG_DATA_HOME": "relative/is/ignored"})

    assert settings.database == "sqlite:////home/alice/.local/share/celery-webui/webui.sqlite3"


def test_the_default_database_follows_data_dir_but_an_explicit_one_stays(tmp_path: Path) -> None:
    moved = load_settings({"data_dir": str(tmp_path)}, HOME)
    assert moved.database == f"sqlite:///{tmp_path}/webui.sqlite3"

    explicit = load_settings({"data_dir": str(tmp_path), "database": "postgresql://db/webui"}, HOME)
    assert explicit.database == "postgresql://db/webui"


# -- Settings objects -------------------------------------------------------------------------------


def test_replace_validates_and_records_the_source(tmp_path: Path) -> None:
    settings = default_settings(data_dir=str(tmp_path))

    changed = settings.replace(port=8080, mask_keys=["token"])

    assert (changed.port, changed.mask_keys, changed.sources["port"]) == (8080, ("token",), "code")
    assert settings.port == 5555  # frozen: the original is unchanged
    assert changed.database == f"sqlite:///{tmp_path}/webui.sqlite3"
    with pytest.raises(SettingsError, match="setting port: must be at most 65535"):
        settings.replace(port=99999)
    with pytest.raises(SettingsError, match="unknown setting 'prot'"):
        settings.replace(prot=1)


def test_default_settings_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBUI_PORT", "7000")

    assert default_settings().port == 5555


def test_display_masks_passwords_in_secret_urls() -> None:
    settings = load_settings(
        {"broker": "redis://:hunter2@redis:6379/0", "database": "postgresql://webui:s3cret@db/webui"}, HOME
    )

    shown = {name: (value, source) for name, value, source in settings.display()}

    assert shown["broker"] == ("redis://:***@redis:6379/0", "flag")
    assert shown["database"] == ("postgresql://webui:***@db/webui", "flag")
    assert "hunter2" not in repr(settings.display()) and "s3cret" not in repr(settings.display())
    assert shown["port"] == ("5555", "default")
    assert shown["store_args"] == ("true", "default")
    assert [name for name, _, _ in settings.display()] == [setting.name for setting in SETTINGS]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("amqp://user:pa55@rabbit:5672//", "amqp://user:***@rabbit:5672//"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("sentinel://:a@h1:26379;sentinel://:b@h2:26379", "sentinel://:***@h1:26379;sentinel://:***@h2:26379"),
        ("postgresql://db/webui?password=x&sslmode=require", "postgresql://db/webui?password=***&sslmode=require"),
    ],
)
def test_mask_url_password(url: str, masked: str) -> None:
    assert mask_url_password(url) == masked


def test_settings_fields_are_exactly_the_listed_settings() -> None:
    fields = [name for name in Settings.__dataclass_fields__ if name != "sources"]
    assert fields == [setting.name for setting in SETTINGS]
    assert DEFAULT_BROKER in BY_NAME["broker"].help


# -- docs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_every_setting_is_documented(setting) -> None:
    docs = DOCS.read_text()
    section = re.search(rf"^#### `{setting.name}`\n(.*?)(?=^#)", docs + "\n#", re.MULTILINE | re.DOTALL)

    assert section, f"docs/configuration.md has no '#### `{setting.name}`' section"
    text = section.group(1)
    for needle in (*setting.flags, setting.env_var, f"`{setting.default_text()}`"):
        assert needle in text, f"the {setting.name} section of docs/configuration.md lacks {needle}"


def test_the_config_file_example_in_the_docs_loads(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert example
    config = write_config(tmp_path, example.group(1))

    settings = load_settings({"config": config}, HOME)

    assert settings.sources["port"] == f"config file {config}"
