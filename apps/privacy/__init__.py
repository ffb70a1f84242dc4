"""Personal data (152-FZ): detectors, policies and the guardrail pipeline (the gateway), the prompt log and
users' own data (the portal). README, "Personal data (152-FZ)"."""
