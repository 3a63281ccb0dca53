"""Alert delivery: policy (who hears what, pure) → render (zh messages, pure) → outbox (stored in
queue, memory and silences; sent when delivery.decide says so, pure) → notifiers (DingTalk,
WeCom, Feishu, webhook, console). notify ties them to config and the store; tables declares the
alert tables on the store's metadata."""
