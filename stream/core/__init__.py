"""The functional core: domain rules with no Faust and no Kafka imports.

Fed decoded events and time, it returns new state and output records, so the
worker, offline replay and the verification oracle all run the same rules.
"""

from stream.core.activation import ActivationLimits, Outcome, apply_envelope, new_account, recompute
from stream.core.criteria import Criteria, load_criteria_text, parse_criteria
from stream.core.engagement import engagement_view
from stream.core.envelope import Envelope
from stream.core.errors import ConfigError, CriteriaError, StreamError
from stream.core.lifecycle import triggers_for
from stream.core.replay import OfflinePipeline
from stream.core.routing import DirectoryEntry, apply_to_directory, route_call
from stream.core.segment import DecodeLimits, Event, Rejection, decode_message
from stream.core.state import AccountState, UserState
from stream.core.views import account_view, user_view

__all__ = [
    "AccountState",
    "ActivationLimits",
    "ConfigError",
    "Criteria",
    "CriteriaError",
    "DecodeLimits",
    "DirectoryEntry",
    "Envelope",
    "Event",
    "OfflinePipeline",
    "Outcome",
    "Rejection",
    "StreamError",
    "UserState",
    "account_view",
    "apply_envelope",
    "apply_to_directory",
    "decode_message",
    "engagement_view",
    "load_criteria_text",
    "new_account",
    "parse_criteria",
    "recompute",
    "route_call",
    "triggers_for",
    "user_view",
]
