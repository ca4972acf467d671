"""A simulated Service Layer: virtual texters that send every callback type to a gateway
and read its answers as the SL would, plus the SL's own HTTP API. No Textual here."""

from server.simulator.judge import Verdict, judge_response
from server.simulator.sl import Exchange, SimulatedSL

__all__ = ["Exchange", "SimulatedSL", "Verdict", "judge_response"]
