"""Personal data (152-FZ): detectors, policies and the guardrail pipeline. Imported by the gateway only."""
