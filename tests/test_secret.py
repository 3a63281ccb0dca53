import logging

from forecaster.util.secret import RedactingFilter, Secret, mask_url, redact, register_url_credentials


def test_secret_prints_as_placeholder_and_gives_value_on_request():
    s = Secret("SEC-very-private")
    assert repr(s) == str(s) == "<secret>"
    assert f"{s}" == "<secret>"
    assert s.get() == "SEC-very-private"


def test_mask_url_masks_password_and_credential_parameters_only():
    assert mask_url("postgresql+psycopg://app:p%40ss@db:5432/wuye") == "postgresql+psycopg://app:***@db:5432/wuye"
    assert (
        mask_url("https://oapi.dingtalk.com/robot/send?access_token=abc123&x=1")
        == "https://oapi.dingtalk.com/robot/send?access_token=***&x=1"
    )
    assert mask_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K-1") .endswith("key=***")
    # Nothing to mask: the URL comes back unchanged (even SQLite's four slashes).
    assert mask_url("sqlite:////srv/wuye/demo.db") == "sqlite:////srv/wuye/demo.db"


def test_redact_masks_registered_values_and_urls_in_free_text():
    Secret("tok-0a1b2c3d")
    register_url_credentials("mysql+pymysql://svc:Zz9-secret@db/wuye")
    text = "failed with tok-0a1b2c3d while reading mysql+pymysql://svc:Zz9-secret@db/wuye; password Zz9-secret"
    cleaned = redact(text)
    assert "tok-0a1b2c3d" not in cleaned and "Zz9-secret" not in cleaned
    assert "mysql+pymysql://svc:***@db/wuye" in cleaned


def test_logging_filter_redacts_messages_arguments_and_tracebacks():
    Secret("hunter2-token")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    logger = logging.getLogger("test.redact")
    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("posting to %s", "https://x/send?access_token=hunter2-token")
        try:
            raise RuntimeError("bad token hunter2-token")
        except RuntimeError:
            logger.exception("send failed")
    finally:
        logger.removeHandler(handler)
    joined = "\n".join(records)
    assert "hunter2-token" not in joined
    assert "access_token=***" in joined and "RuntimeError" in joined


def test_tokens_in_a_webhook_path_are_masked_and_registered():
    from forecaster.util.secret import Secret, mask_url, redact

    url = "https://open.feishu.cn/open-apis/bot/v2/hook/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    assert mask_url(url) == "https://open.feishu.cn/open-apis/bot/v2/hook/***"
    Secret(url, is_url=True)
    assert redact('"POST /open-apis/bot/v2/hook/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b HTTP/1.1" 200') == '"POST /open-apis/bot/v2/hook/*** HTTP/1.1" 200'
    # Paths of files and plain words are left alone.
    assert mask_url("sqlite:////tmp/pytest-of-root/test_store_keeps_runs0/store.db").endswith("test_store_keeps_runs0/store.db")
    assert mask_url("https://ops.example.com/hooks/wuye-alerts") == "https://ops.example.com/hooks/wuye-alerts"


def _forms(value: str) -> list[str]:
    from urllib.parse import quote, quote_plus

    return [value, quote(value, safe=""), quote_plus(value, safe="")]


def test_a_database_password_from_the_environment_never_shows_whatever_its_shape():
    """A base64-style password has / and + and =: the URL parser splits it at the /, so it used to
    show in the run's error, status, the store and check-config --show."""
    import sqlalchemy as sa

    from forecaster.config import describe_config, parse_config
    from forecaster.ingest import describe_source

    for password in ("Zq9/Xk2+Lm8=", "p@ss:w/rd#1"):
        url = "postgresql+psycopg://wuye:${WUYE_DB_PASSWORD}@db.example.com/wuye"
        config = parse_config({"source": {"sql": {"url": url}}}, environ={"WUYE_DB_PASSWORD": password})
        try:  # as SQLAlchemy renders it, or what it says when it cannot parse it
            rendered = sa.engine.make_url(config.source.sql.url.get()).render_as_string(hide_password=False)
        except ValueError as exc:
            rendered = f"{exc}: {config.source.sql.url.get()}"
        error = f"cannot connect to {config.source.sql.url.get()} ({rendered}): password {password} refused"
        shown = [describe_config(config), describe_source(config), redact(error), mask_url(config.source.sql.url.get())]
        for text in shown:
            assert not any(form in text for form in _forms(password)), (password, text)
        assert "db.example.com" in describe_source(config)  # where it connects stays readable


def test_any_value_from_the_environment_in_a_channel_url_is_masked():
    from forecaster.config import describe_config, parse_config

    env = {"WUYE_HOOK_TOKEN": "k9Xq2mP4zL", "HOOK_PW": "s3cr3t/pw?x"}  # short token; a password with / and ?
    config = parse_config(
        {"alerts": {"channels": {
            "ops": {"type": "webhook", "url": "https://ops.example.com/hooks/${WUYE_HOOK_TOKEN}"},
            "basic": {"type": "webhook", "url": "https://wuye:${HOOK_PW}@hooks.example.com/in"},
        }}},
        environ=env,
    )
    shown = describe_config(config)
    log = redact(f"POST {config.alerts.channels['ops'].url.get()} and {config.alerts.channels['basic'].url.get()} failed")
    for value in env.values():
        for text in (shown, log):
            assert not any(form in text for form in _forms(value)), (value, text)
    assert "ops.example.com/hooks/***" in shown and "hooks.example.com/in" in log
