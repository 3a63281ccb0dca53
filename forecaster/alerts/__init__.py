"""Alert delivery: policy (who hears what, pure) → render (zh messages, pure) → outbox
(stored, retried, rate-limited) → channels (DingTalk, WeCom, Feishu, webhook, console)."""
