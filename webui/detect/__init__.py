"""Detectors: each looks at the store and returns findings (a stalled task, an offline worker, a deep queue…).

A detector is a pure read of the store plus its parameters; it never writes and never notifies. The alert
engine (webui.alerts.engine) runs the detectors the enabled rules name, filters the findings by each rule's
scope, and turns them into incidents. Detectors register themselves in `webui.detect.registry`.
"""
