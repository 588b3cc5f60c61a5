"""``rounds/Household-v0``: the env class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from rounds.actions import InvalidAction, command_line, split_reasoning
from rounds.envs.household.catalog import load_catalog
from rounds.envs.household.commands import GRAMMAR, Command, parse_command
from rounds.envs.household.expert import expert_policy, random_policy, searcher_policy
from rounds.envs.household.generate import generate, parse_task_id, task_ids
from rounds.envs.household.world import TASK_SHORT_NAMES, World
from rounds.snapshots import restore_state, snapshot_state
from rounds.text_env import EpisodeEnd, ScriptedPolicy, StepResult, TextEnv

_META_TAGS = ("plan", "explore", "reflect")
#: What the choice action mode lists: every admissible command, or only those that act
#: (not ``look``, ``inventory``, ``examine ...``, which only show information).
CHOICE_LISTINGS = ("all", "acting")
_INFORMATIONAL = ("look", "inventory", "examine ")


class HouseholdEnv(TextEnv):
    """ALFWorld-style household tasks in procedurally generated homes.

    ## Description
    A home of one or more rooms (kitchen, living room, bedroom, bathroom) is
    generated from the task id: receptacles (cabinets and drawers that open,
    a fridge, a microwave, sinks, tables, shelves...), objects placed where they
    belong, and desk lamps. The agent must complete one of ALFWorld's six task
    types: pick & place, examine in light, clean & place, heat & place,
    cool & place, pick two & place. It moves straight to any receptacle by name,
    as in ALFWorld, and carries one object at a time.

    ## Action Space
    Text (:class:`~rounds.TextSpace`, at most ``max_action_chars``): one command in
    ALFWorld's grammar, ``go to X``, ``open X``, ``close X``, ``take X from Y``,
    ``put X in/on Y``, ``clean X with Y``, ``heat X with Y``, ``cool X with Y``,
    ``use X``, ``examine X``, ``look``, ``inventory`` (also ``help``). Reasoning in
    ``<think>``/``<plan>``/``<explore>``/``<reflect>`` blocks before the command is
    allowed; the command is the last line outside them (or an ``<action>`` block).

    ## Observation Space
    Text: the home overview and the task on reset, then the result of each
    command. ``info["admissible_commands"]`` lists every valid command.

    ## Rewards
    The turn reward is the weighted sum of the reward components (default weights:
    outcome 1, format 1, progress 0, meta_reasoning 1).

    ## Reward Components
    | key | non-zero when | range |
    |---|---|---|
    | ``outcome`` | the final turn, if the goal holds | {0, 1} |
    | ``format`` | the action was invalid (unparseable, unknown object, wrong state) | {-invalid_action_penalty, 0} |
    | ``progress`` | a subgoal is reached for the first time (e.g. holding the object, heating it) | [0, 1], sums to 1 over a solved episode |
    | ``meta_reasoning`` | ``meta_reasoning=True`` and the turn carries a ``<plan>``, ``<explore>`` or ``<reflect>`` tag | [-meta_reasoning_bonus, meta_reasoning_bonus] |

    ``meta_reasoning`` (after RLVMR) rewards a tag that fits the state, a
    ``<plan>`` on the first turn, an ``<explore>`` on a turn that reaches an
    unvisited place or opens or examines something new, a ``<reflect>`` right
    after an invalid command, and penalises an empty tag.
    ``info["potential"]`` is the fraction of subgoals reached, for
    potential-based shaping.

    ## Starting State
    The agent stands in the middle of the home holding nothing; openable
    receptacles are closed; no object is clean, hot or cool.

    ## Episode End
    Terminated when the goal holds (``outcome`` 1). Truncated after ``max_turns``
    turns (default 50, as ALFWorld). ``info["metrics"]``: ``success``,
    ``invalid_actions``, ``subgoal_fraction``.

    ## Arguments
    - ``task_types``: short names of the task types to sample (``pick``, ``look``,
      ``clean``, ``heat``, ``cool``, ``pick_two``; default all).
    - ``max_rooms``: homes have 1 to ``max_rooms`` rooms (default 2).
    - ``max_receptacles``: a smaller home of at most this many receptacles (besides any the
      task needs: the places its object is in, one of the target kind, the appliance or
      lamp); default None, the full home. Fewer places to search and fewer commands to
      choose from: the demo's small policy model learns such a home on CPU in minutes.
    - ``meta_reasoning``, ``meta_reasoning_bonus``: the meta-reasoning component.
    - ``max_turns``, ``split``, ``reward_weights``, ``invalid_action_penalty``,
      ``max_action_chars``, ``render_mode``: see :class:`~rounds.TextEnv`.
    Tasks are ids ``<type>-<split>-<index>``; ``reset(options={"task_id": ...})``
    picks one, else the seed picks one of the split's (2000 per type in train,
    100 in validation and in test).

    ## Version History
    - v0: first release.
    """

    reward_component_names = ("outcome", "format", "progress", "meta_reasoning")
    outcome_components = ("outcome",)
    unrecorded_info_keys = ("admissible_commands",)
    replay_metrics = ("success", "subgoal_fraction", "invalid_actions")
    replay_series = ("potential",)
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "outcome": 1.0,
        "format": 1.0,
        "progress": 0.0,
        "meta_reasoning": 1.0,
    }
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "single-room": {"max_rooms": 1},
        **{short: {"task_types": [short]} for short in TASK_SHORT_NAMES},
        "progress": {"reward_weights": {"progress": 1.0}},
        "meta-reasoning": {"meta_reasoning": True},
        "choice": {"action_mode": "choice"},
        "small": {"max_rooms": 1, "max_receptacles": 4},
        "choice-acting": {"action_mode": "choice", "choice_listing": "acting"},
    }

    def __init__(
        self,
        *,
        task_types: Sequence[str] | None = None,
        max_rooms: int = 2,
        max_receptacles: int | None = None,
        choice_listing: str = "all",
        meta_reasoning: bool = False,
        meta_reasoning_bonus: float = 0.1,
        max_turns: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_turns=max_turns, **kwargs)
        chosen = list(task_types) if task_types is not None else list(TASK_SHORT_NAMES)
        unknown = [t for t in chosen if t not in TASK_SHORT_NAMES]
        if unknown or not chosen:
            raise ValueError(
                f"unknown task types {unknown}; choose from {', '.join(TASK_SHORT_NAMES)}"
            )
        if max_rooms < 1:
            raise ValueError(f"max_rooms must be at least 1, got {max_rooms}")
        if choice_listing not in CHOICE_LISTINGS:
            raise ValueError(
                f"unknown choice_listing {choice_listing!r}; choose one of {', '.join(CHOICE_LISTINGS)}"
            )
        if max_receptacles is not None and max_receptacles < 1:
            raise ValueError(f"max_receptacles must be at least 1 (or None), got {max_receptacles}")
        self.task_types = tuple(chosen)
        self.max_rooms = max_rooms
        self.max_receptacles = max_receptacles
        self.choice_listing = choice_listing
        self.meta_reasoning = meta_reasoning
        self.meta_reasoning_bonus = meta_reasoning_bonus
        self.catalog = load_catalog()
        self.world: World = generate(task_ids("test", self.task_types)[0], self.catalog)
        self._reached: list[bool] = []
        self._invalid_actions = 0
        self._previous_invalid = False

    @property
    def system_prompt(self) -> str:
        rules = (
            "You carry one object at a time; open closed receptacles before looking inside; "
            "clean at a sink, heat with a microwave, cool with a fridge; to look at something "
            "under a lamp, hold it at the lamp and use the lamp."
        )
        if self.action_mode == "choice":  # the commands are listed: no grammar to learn
            prompt = (
                "You are an agent in a home. Complete the household task you are given. Each "
                "turn, reply with the number of one of the listed commands. " + rules
            )
        else:
            prompt = (
                "You are an agent in a home. Complete the household task you are given by "
                "interacting with the home through text commands. Each turn, reply with exactly "
                f"one command.\n{GRAMMAR}.\n"
                "Use the names you see, with their numbers (e.g. 'go to cabinet 2', "
                "'take apple 1 from countertop 1'). " + rules
            )
        if self.meta_reasoning:
            prompt += (
                "\nBefore the command you may add one tag: <plan>...</plan> to lay out your plan "
                "(best at the start), <explore>...</explore> when you go somewhere new or open "
                "something, <reflect>...</reflect> after a command failed. Put the command on the "
                "last line, outside the tags."
            )
        return prompt

    def task_ids(self, split: str | None = None) -> Sequence[str]:
        return task_ids(split or self.split, self.task_types)

    def scripted_policies(self) -> dict[str, ScriptedPolicy]:
        return {"expert": expert_policy, "searcher": searcher_policy, "random": random_policy}

    # ------------------------------------------------------------------ hooks

    def _begin(self, task_id: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        parse_task_id(task_id)
        self.world = generate(
            task_id, self.catalog, max_rooms=self.max_rooms, max_receptacles=self.max_receptacles
        )
        self._reached = [False] * len(self.world.subgoals())
        self._invalid_actions = 0
        self._previous_invalid = False
        task = self.world.task
        observation = f"{self.world.overview()}\n\nYour task is to: {task.goal}"
        return observation, {
            "task_type": task.task_type.value,
            "goal": task.goal,
            "potential": 0.0,
        }

    def _act(self, text: str) -> StepResult:
        parsed = split_reasoning(text)
        world = self.world
        explored_before = len(world.visited) + len(world.opened) + len(world.examined)
        try:
            observation = self._execute(parse_command(command_line(parsed.command)))
            result = StepResult(observation)
        except InvalidAction as err:
            result = self.reject(str(err))
        explored = len(world.visited) + len(world.opened) + len(world.examined) > explored_before

        now = world.subgoals()
        newly = [n and not r for n, r in zip(now, self._reached, strict=True)]
        self._reached = [n or r for n, r in zip(now, self._reached, strict=True)]
        result.components["progress"] = sum(newly) / len(newly)
        if self.meta_reasoning:
            result.components["meta_reasoning"] = self._meta_reward(parsed.tags, explored)
        if result.invalid:
            self._invalid_actions += 1
        self._previous_invalid = result.invalid
        result.terminated = world.goal_reached()
        if result.terminated:
            result.observation += "\n\nYou completed the task."
        result.info["potential"] = sum(self._reached) / len(self._reached)
        result.info["won"] = result.terminated
        return result

    def _execute(self, command: Command) -> str:
        world = self.world
        verb, target, place = command.verb, command.target or "", command.place
        if verb == "go":
            return world.go_to(target)
        if verb == "open":
            return world.open(target)
        if verb == "close":
            return world.close(target)
        if verb == "take":
            return world.take(target, place)
        if verb == "put":
            return world.put(target, place or "")
        if verb in ("clean", "heat", "cool"):
            return world.transform(verb, target, place)  # type: ignore[arg-type]
        if verb == "use":
            return world.use(target)
        if verb == "examine":
            return world.examine(target)
        if verb == "look":
            return world.look()
        if verb == "inventory":
            return world.inventory()
        return f"{GRAMMAR}.\nValid now: {', '.join(world.admissible_commands())}."

    def _meta_reward(self, tags: Mapping[str, str], explored: bool) -> float:
        fits = {
            "plan": self.turn == 1,
            "explore": explored,
            "reflect": self._previous_invalid,
        }
        score = 0
        for tag in _META_TAGS:
            if tag in tags:
                score += -1 if not tags[tag] else int(fits[tag])
        return self.meta_reasoning_bonus * max(-1, min(1, score))

    def _finish(self, terminated: bool) -> EpisodeEnd:
        success = self.world.goal_reached()
        return EpisodeEnd(
            components={"outcome": 1.0 if success else 0.0},
            metrics={
                "success": float(success),
                "invalid_actions": float(self._invalid_actions),
                "subgoal_fraction": sum(self._reached) / len(self._reached),
            },
        )

    def _invalid_hint(self) -> str:
        commands = self.admissible_commands()
        shown = commands[:8]
        more = len(commands) - len(shown)
        suffix = f" (and {more} more)" if more > 0 else ""
        return f"Valid commands now include: {', '.join(shown)}{suffix}."

    def admissible_commands(self) -> list[str]:
        """What can be done here first, then where to go (as the invalid-action hint lists them):
        in the choice action mode the local commands keep small, stable numbers."""
        commands = self.world.admissible_commands()
        local = [c for c in commands if not c.startswith("go to ")]
        return local + [c for c in commands if c.startswith("go to ")]

    def choice_commands(self) -> list[str]:
        """The numbered commands of the choice mode: all admissible ones, or with
        ``choice_listing="acting"`` those that change the home (the others stay valid as text)."""
        commands = self.admissible_commands()
        if self.choice_listing == "acting":
            return [c for c in commands if not c.startswith(_INFORMATIONAL)]
        return commands

    def _turn_info(self) -> dict[str, Any]:
        return {"admissible_commands": self.world.admissible_commands()}

    # ------------------------------------------------------------- snapshots

    #: The attributes that make up an episode's state (the catalog is shared and read-only).
    _EPISODE_STATE = ("world", "_reached", "_invalid_actions", "_previous_invalid")

    def snapshot(self) -> dict[str, Any]:
        """An exact copy of the episode's state; :meth:`restore` it to replay byte for byte."""
        return snapshot_state(self, self._EPISODE_STATE, shared=[self.catalog])

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Return to a :meth:`snapshot` (of this env or one built with the same arguments)."""
        restore_state(self, snapshot, self._EPISODE_STATE, shared=[self.catalog])
