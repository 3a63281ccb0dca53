from pathlib import Path

import pytest

from forecaster.config import describe_config, load_config, parse_config
from forecaster.util.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def problems(data, environ=None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, where="config.yaml", environ=environ or {})
    return str(info.value)


def test_repository_config_is_valid_and_matches_the_defaults():
    config = load_config(REPO / "config.yaml", environ={})
    assert config.timezone == "Asia/Shanghai"
    assert config.source.type == "sql"
    # Relative SQLite paths resolve next to the config file, whatever the working directory.
    assert config.source.sql.url.get() == f"sqlite:///{REPO / 'data' / 'demo.db'}"
    assert config.store.url.get() == f"sqlite:///{REPO / 'data' / 'forecaster.db'}"
    assert config.output.dir == REPO / "out"
    assert config.forecast.horizon == 90


@pytest.mark.parametrize("section", ["metrics", "forecast", "calendar", "thresholds", "detect", "engine", "alerts", "schedule", "log", "demo"])
def test_repository_config_spells_out_the_code_defaults(section):
    """config.yaml documents every key; where it repeats a default it must be the same one
    (a section written out in full replaces the code's defaults)."""
    from forecaster.config import Config

    shipped = getattr(load_config(REPO / "config.yaml", environ={}), section).model_dump()
    defaults = getattr(Config(), section).model_dump()
    if section == "calendar":  # the file lists the windows that are not zero
        defaults["windows"] = {k: v for k, v in defaults["windows"].items() if v["before"] or v["after"]}
    assert shipped == defaults


def test_environment_variables_are_substituted_with_defaults():
    config = parse_config(
        {"source": {"sql": {"url": "postgresql://app:${PW}@db/${DB:-wuye}"}}},
        environ={"PW": "s3cret"},
    )
    assert config.source.sql.url.get() == "postgresql://app:s3cret@db/wuye"


def test_unset_environment_variable_names_key_path_and_variable():
    msg = problems({"alerts": {"channels": {"ops": {"type": "dingtalk", "url": "https://x/send?access_token=${DT_TOKEN}"}}}})
    assert "alerts.channels.ops.url" in msg and "DT_TOKEN" in msg


def test_every_unset_environment_variable_is_named_at_once():
    """Only the first unset variable was named: setting it just showed the next one, one run at a time."""
    msg = problems(
        {
            "source": {"sql": {"url": "postgresql://app:${DB_PASSWORD}@${DB_HOST}/wuye"}},
            "alerts": {"channels": {"ops": {"type": "dingtalk", "url": "https://x/send?access_token=${DT_TOKEN}", "secret": "${DT_SECRET:-}"}}},
        }
    )
    assert "3 environment variable(s) not set" in msg
    for line in ("source.sql.url: DB_PASSWORD", "source.sql.url: DB_HOST", "alerts.channels.ops.url: DT_TOKEN"):
        assert line in msg
    assert "DT_SECRET" not in msg  # it has a default


@pytest.mark.parametrize(
    "data, path, words",
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown timezone"),
        ({"sourse": {}}, "sourse", "unknown key"),
        ({"source": {"type": "csv", "csv": None}}, "source.csv", "no source.csv section"),
        ({"source": {"type": "oracle"}}, "source.type", "'sql', 'csv' or 'http'"),
        (
            {"source": {"tables": {"tickets": {"table": "t", "columns": {"creatd_at": "x"}}}}},
            "source.tables.tickets.columns.creatd_at",
            "unknown column",
        ),
        ({"forecast": {"horizon": 0}}, "forecast.horizon", "greater than or equal to 1"),
        ({"forecast": {"horizon": "ninety"}}, "forecast.horizon", "valid integer"),
        ({"schedule": {"nightly": "0 25 * * *"}}, "schedule.nightly", "crontab"),
        ({"metrics": {"enabled": ["tickets"]}}, "metrics.enabled[0]", "ticket_count"),
        (
            {"alerts": {"channels": {"dd": {"type": "dingtalk", "url": "https://x"}}, "routes": [{"name": "r", "channels": ["dd", "wx"]}]}},
            "alerts.routes[0].channels[1]",
            "unknown channel 'wx'",
        ),
        ({"alerts": {"channels": {"dd": {"type": "dingtalk"}}}}, "alerts.channels.dd", "needs a url"),
        ({"source": {"type": "http", "http": {"base_url": "ftp://x"}}}, "source.http.base_url", "http://"),
        ({"thresholds": {"overrides": [{"metrics": {}}]}}, "thresholds.overrides[0]", "community, region, city or property_type"),
        ({"metrics": {"service_lines": {"gate": {"categories": ["门禁"]}}}}, "metrics.service_lines.gate.label_zh", "needs its Chinese label"),
        ({"metrics": {"service_lines": {"Gate!": {"label_zh": "门禁", "categories": []}}}}, "metrics.service_lines.Gate!", "lower-case"),
        (
            {"metrics": {"service_lines": {"repair": {"categories": ["投诉"]}}}},
            "metrics.service_lines.repair.categories",
            "'投诉' already belongs to complaint",
        ),
        ({"metrics": {"sla": {"lift": {"respond_hours": 1, "close_hours": 8}}}}, "metrics.sla.lift", "no such service line"),
        ({"metrics": {"sla": {"complaint": {"respond_hours": 1, "close_hours": 8}}}}, "metrics.sla.default", "required"),
        ({"metrics": {"sla": {"default": {"respond_hours": 0, "close_hours": 8}}}}, "metrics.sla.default.respond_hours", "greater than 0"),
        ({"metrics": {"enabled": ["ticket_count.lift"]}}, "metrics.enabled", "no such service line"),
        ({"thresholds": {"defaults": {"ticket_count.lift": {"above": 3}}}}, "thresholds.defaults.ticket_count.lift", "no such service line"),
        ({"thresholds": {"defaults": {"backlog": {"above": 3}}}}, "thresholds.defaults.backlog", "unknown metric"),
    ],
)
def test_errors_name_the_key_path(data, path, words):
    msg = problems(data)
    assert f"  {path}: " in msg, msg
    assert words in msg, msg


def test_all_problems_are_reported_at_once():
    msg = problems({"timezone": "X/Y", "forecast": {"level": 120}})
    assert "2 problem(s)" in msg and "timezone" in msg and "forecast.level" in msg


def test_secret_values_never_appear_in_errors_or_dumps():
    token, password = "tok-4f9a8b7c", "pw-9d8e7f"
    msg = problems(
        {
            "alerts": {"channels": {"dd": {"type": "dingtalk", "url": f"https://x/send?access_token={token}", "secret": 12345}}},
        }
    )
    assert token not in msg
    config = parse_config(
        {
            "source": {"sql": {"url": f"postgresql://app:{password}@db/wuye"}},
            "alerts": {"channels": {"dd": {"type": "dingtalk", "url": f"https://x/send?access_token={token}", "secret": "SECabcdef"}}},
        },
        environ={},
    )
    dumped = describe_config(config)
    for value in (token, password, "SECabcdef"):
        assert value not in dumped
        assert value not in repr(config)
    assert "postgresql://app:***@db/wuye" in dumped
    assert "access_token=***" in dumped


def test_load_config_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("source:\n  type: sql\n   url: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+, column \d+: not valid YAML"):
        load_config(bad, environ={})
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(scalar, environ={})


def test_relative_csv_directory_resolves_against_config_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "config.yaml"
    path.write_text("source:\n  type: csv\n  csv:\n    directory: exports\n", encoding="utf-8")
    config = load_config(path, environ={})
    assert config.source.csv.directory == tmp_path / "cfg" / "exports"


def test_config_path_from_environment(tmp_path):
    path = tmp_path / "elsewhere.yaml"
    path.write_text("timezone: UTC\n", encoding="utf-8")
    assert load_config(environ={"FORECASTER_CONFIG": str(path)}).timezone == "UTC"
