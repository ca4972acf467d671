"""What virtual texters are called, which carriers they use and what they say."""

from __future__ import annotations

FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kemal", "Lena",
               "Mo", "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tess", "Uma", "Vik", "Wen", "Yara", "Zoe"]
CARRIERS = [("1", "Verizon"), ("2", "AT&T"), ("3", "T-Mobile"), ("4", "US Cellular"), ("5", "Cricket")]
KEYWORDS = ["PIZZA", "SURF", "HELP", "JOIN", "TICKETS", "WEATHER"]
AUTO_SUBSCRIBE_KEYWORDS = frozenset({"JOIN"})
"""Keywords configured with auto-subscription: their opener carries auto_subscribe."""
AUTO_RESPONDED_KEYWORDS = frozenset({"WEATHER", "TICKETS"})
"""Keywords with an automatic response: their opener may carry auto_responded."""
OPENERS = {
    "PIZZA": ["PIZZA", "pizza large pepperoni", "Pizza - are you open?"],
    "SURF": ["SURF", "surf report malibu", "Surf today?"],
    "HELP": ["HELP", "help my order didn't arrive", "Help! wrong size"],
    "JOIN": ["JOIN", "join", "JOIN the list please"],
    "TICKETS": ["TICKETS", "tickets for saturday?", "TICKETS 2 adults"],
    "WEATHER": ["WEATHER", "weather 10001", "Weather tomorrow?"],
}
FOLLOW_UPS = [
    "ok thanks", "what time?", "How much is it?", "great 👍", "can you call me?", "yes please",
    "no", "Where are you located?", "I'll be there at 5", "Is it still available?",
    "thx!", "Can I change my order?", "ETA?", "perfect, see you", "¿hablan español?",
    "Sorry, wrong number", "and for 2 people?", "[bold]not markup[/] just text",
]
STOP_WORDS = ["STOP", "stop", "Stop", "QUIT", "cancel", "UNSUBSCRIBE", "RE: STOP", "opt out", "END"]
START_WORDS = ["START", "start", "SUB", "subscribe", "OPT IN", "opt-in"]

TRUE_SPELLINGS = ["1", "t", "true", "y", "yes", "TRUE", "Yes", "T"]
FALSE_SPELLINGS = ["0", "f", "false", "n", "no", "FALSE", "No"]
"""Documented boolean spellings (README.md: case-insensitive), used in a mix."""
