"""Live reconfiguration: compute what a new configuration changes and apply only that.

The new configuration is validated before this module sees it. :func:`apply_config` then

1. builds every new or changed connector, action and source (a factory that raises aborts the
   change with nothing applied);
2. stops the sources that change (a Kafka consumer commits what it delivered and leaves its group);
3. starts the new connectors and actions, but for an *exclusive* action (one with state on disk
   only one instance may hold: a disk or hybrid buffer) that replaces a running one;
4. swaps the rules and the routing in one step of the event loop: a message sees either the old
   rules or the new ones, and rules that did not change keep running (and keep their counters);
5. stops the replaced actions, which flush what they hold (buffered messages are delivered, and
   the MQTT acknowledgements they hold are released in order), then the replaced connectors;
   what an action still holds after its stop is counted on it (``dropped.replaced``), and the
   MQTT session is renewed so that the broker delivers those messages again, and the sources
   that keep running consume their records in flight again (``redeliver``); then the exclusive
   actions that replace them start, and take over what they kept on disk (routed to since step 4,
   they held what came meanwhile, unsecured: its MQTT acknowledgements waited);
6. sets the MQTT subscriptions to the enabled rules' topic filters, on the same session;
7. starts the new sources.

The MQTT connection is not restarted but in that case (step 5), and then with the same client
id and persistent session. Changes to
``mqtt``, ``api``, ``node`` or ``data_dir`` are reported as needing a restart.

A component whose ``stop()`` raises or overruns its bound (its ``stop_timeout`` attribute, the
time its own flush may take, plus :data:`STOP_MARGIN`; :data:`STOP_TIMEOUT` when it has none) is
logged and reported in :attr:`Plan.failed`, and the change goes on: the new component is
started all the same, so a faulty component never blocks reconfiguration or leaves the app
without its replacement. A ``start()`` that raises or hangs is reported the same way; the
component stays in the app, so its status shows it and a later change can replace it.

:class:`Controller` owns the configuration of a running instance: reload from the file (SIGHUP,
``mqferry config reload``) and changes from the REST API, which it validates, applies and writes
back to the file atomically. Validation, reading and writing the file run in worker threads, so
the event loop keeps serving the data path; a change of one rule (:meth:`Controller.change_rule`)
validates, compiles and routes that rule only, so its cost does not grow with the number of rules.
"""

from mqferry._runtime.reconfig.apply import (
    START_TIMEOUT,
    STOP_MARGIN,
    STOP_TIMEOUT,
    apply_config,
    apply_rule,
)
from mqferry._runtime.reconfig.controller import ConfigConflictError, Controller
from mqferry._runtime.reconfig.plan import Plan, plan_changes

__all__ = ["START_TIMEOUT", "STOP_MARGIN", "STOP_TIMEOUT", "ConfigConflictError", "Controller",
           "Plan", "apply_config", "apply_rule", "plan_changes"]
