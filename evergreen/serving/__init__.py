"""Serving: request schemas, scoring on online features, the prediction log, the bento, its
start/stop helper and its infra validation. The BentoML service is ``bentos/fraud_detection``."""
