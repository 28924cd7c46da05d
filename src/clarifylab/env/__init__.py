"""The conversation environment: action classifiers, user simulators, trajectory rollout."""

from clarifylab.env.action_classifier import ActionClassifier, HeuristicActionClassifier, classify_response
from clarifylab.env.llm_action_classifier import FewShotLLMActionClassifier
from clarifylab.env.rollout import Trajectory, rollout
from clarifylab.env.user_simulator import (
    LLMUserSimulator,
    OracleUserSimulator,
    SimulatorRequest,
    UserSimulator,
    gold_answer,
)

__all__ = [
    "ActionClassifier",
    "FewShotLLMActionClassifier",
    "HeuristicActionClassifier",
    "LLMUserSimulator",
    "OracleUserSimulator",
    "SimulatorRequest",
    "Trajectory",
    "UserSimulator",
    "classify_response",
    "gold_answer",
    "rollout",
]
