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
