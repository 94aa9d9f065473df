"""Batches of events in an agent: which event a table write belongs to.

A Faust table write goes to the changelog partition of "the current event", and a windowed
table reads the window of its timestamp (`faust.streams.current_event()`, a context
variable of the agent's task). `Stream.take_events` does not set it for each event of a
batch, so an agent that writes tables sets it itself, with `make_current`.

Not with `Stream._set_current_event`: that also sets the stream's `current_event`
attribute, which `take_events`'s filler (another task) reads to pair the next record with
its event once the batch under way is done. An agent that awaits between two such calls
(an output sent, say) lets the filler start on the next record meanwhile, and then hands
it the event of an old record: the new record was dropped from the batch (seen in the
detect stage: 2 mentions of 1,800 never counted, no error).
"""

from __future__ import annotations

import weakref

import faust
from faust.streams import _current_event

__all__ = ["make_current"]


def make_current(event: faust.EventT) -> None:
    """Make `event` the current event of this task (only), for the table writes and
    windowed reads that follow."""
    _current_event.set(weakref.ref(event))
