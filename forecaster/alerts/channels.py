"""The platforms' severity colours (WeCom's <font> colours, Feishu's card templates).

The channels themselves are notifiers now, one module per platform in
`forecaster.alerts.notifiers`; these two tables stay here until the severity vocabulary has
one home.
"""

SEVERITY_COLOURS_WECOM = {"严重": "warning", "警告": "warning", "提醒": "comment"}
SEVERITY_TEMPLATES_FEISHU = {"严重": "red", "警告": "orange", "提醒": "yellow"}
