"""A tiny causal LM built offline: Qwen2 architecture, byte-level BPE, a ChatML template.

``tiny()`` trains the tokenizer on a fixed built-in corpus and initialises the
weights from a seed, so the same arguments give the same model, byte for
byte, on any machine without a network. The result is saved once under the
cache directory (``$ROUNDS_CACHE``, default ``~/.cache/rounds``) and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Bump when the builder changes, so old cached models are not reused.
TINY_VERSION = 3

TINY_DEFAULTS: dict[str, Any] = {
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 8192,
    "seed": 0,
    "corpus": "base",
}

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]

# ChatML, as Qwen2 uses it, with tool specs in the system turn and tool results as
# user turns. Written without "{%-": transformers renders with trim_blocks and
# lstrip_blocks, and a dash would also eat the newlines ChatML needs.
CHAT_TEMPLATE = (
    "{% if tools %}"
    "<|im_start|>system\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% else %}You are a helpful assistant.{% endif %}"
    "\n\n\n# Tools\nYou may call one of these functions:\n<tools>"
    "{% for tool in tools %}\n\n{{ tool | tojson }}{% endfor %}"
    '\n</tools>\nTo call a function, reply with <tool_call>{"name": <name>, "arguments": <arguments>}</tool_call>'
    "<|im_end|>\n"
    "{% elif messages[0]['role'] == 'system' %}"
    "<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% elif message['role'] == 'tool' %}"
    "<|im_start|>user\n<tool_response>\n{{ message['content'] }}\n</tool_response><|im_end|>\n"
    "{% elif message['role'] == 'assistant' and message.get('tool_calls') %}"
    "<|im_start|>assistant\n{% if message['content'] %}{{ message['content'] }}\n{% endif %}"
    "{% for call in message['tool_calls'] %}"
    '<tool_call>{"name": "{{ call[\'function\'][\'name\'] }}", "arguments": '
    "{% if call['function']['arguments'] is string %}{{ call['function']['arguments'] }}"
    "{% else %}{{ call['function']['arguments'] | tojson }}{% endif %}}</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% else %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = """
You are a helpful assistant. Reply with one command. The agent acts in a home, a clinic or a program.
go to the fridge, open the drawer, take the apple from the countertop, put the mug in the cabinet,
clean the plate with the sinkbasin, heat the potato with the microwave, cool the bottle with the fridge,
use the desklamp, examine the book, look, inventory. Your task is to put a clean mug on the shelf.
You arrive at the countertop. On the countertop you see a knife, a fork and a spoon. Nothing happens.
The patient is a 54 year old man with chest pain and shortness of breath. Vital signs: temperature 37.2,
heart rate 104 per minute, blood pressure 142/88 mmHg, respiratory rate 20, oxygen saturation 95 percent.
Exam name: Complete blood count. Exam results: White blood cells 12.4 x10^9/L [H] (reference 4.0-11.0).
Hemoglobin, platelets, sodium, potassium, creatinine, glucose, troponin, lipase, D-dimer, lactate.
Chest X-ray, CT abdomen and pelvis, ultrasound, electrocardiogram, echocardiogram, urinalysis, culture.
Current diagnosis: pneumonia. Based on the patient's initial presentation, the following investigation(s)
should be performed: chest X-ray. Reason: fever and cough. The available information is sufficient to make
a diagnosis. Diagnosis: acute appendicitis. exam: lipase. diagnosis: pulmonary embolism.
{"name": "order_exam", "arguments": {"exam": "CBC"}} {"name": "diagnose", "arguments": {"diagnosis": "stroke"}}
The answer is 42. Think step by step. <think> </think> <plan> </plan> <explore> </explore> <reflect> </reflect>
0 1 2 3 4 5 6 7 8 9 10 11 12 20 30 40 50 60 70 80 90 100 1000 yes no true false correct wrong higher lower
def main(): return None  class Test:  import os  assert x == y  diff --git a/file.py b/file.py
"""


# Household words (every receptacle and object of the catalog, the choice action mode's
# phrases), so a model trained on Household-v0 reads a name as one or two tokens instead of
# a dozen bytes: episodes are several times shorter, and so are rollouts and updates.
_HOUSEHOLD_CORPUS = """
You are an agent in a home. Complete the household task you are given by interacting with the
home through text commands. Each turn, reply with exactly one command. Use the names you see,
with their numbers. You carry one object at a time; open closed receptacles before looking inside;
clean at a sink, heat with a microwave, cool with a fridge; to look at something under a lamp,
hold it at the lamp and use the lamp. You are in the middle of the kitchen. Looking quickly around
you, you see: a cabinet 1, a drawer 2, and a fridge 1. Your task is to: put some spraybottle on
countertop. put a clean mug in cabinet. Commands: 1. inventory 2. look 3. go to countertop 1
Reply with the number of one command. You arrive at the sinkbasin 1. In the sinkbasin 1, you see a
soapbar 1. The cabinet 2 is closed. You open the cabinet 2. The cabinet 2 is open. In it, you see
nothing. You pick up the mug 1 from the countertop 1. You put the mug 1 in the cabinet 1. You close
the drawer 1. You are carrying: a mug 1. You are not carrying anything. You completed the task.
There is no command 12; reply with a number from 1 to 11. Valid commands now include: examine.
The turn limit is reached; the episode ends. kitchen livingroom bedroom bathroom room
armchair bathtubbasin bed cabinet coffeemachine coffeetable countertop desk diningtable drawer
dresser fridge garbagecan laundryhamper microwave safe shelf sidetable sinkbasin sofa stoveburner
toilet toiletpaperhanger towelholder tvstand desklamp alarmclock apple book bowl box bread
butterknife candle cd cellphone cloth creditcard cup dishsponge egg fork handtowel kettle keychain
knife ladle laptop lettuce mug newspaper pan pen pencil peppershaker pillow plate plunger pot
potato remotecontrol saltshaker scrubbrush soapbar soapbottle spatula spoon spraybottle statue
tissuebox toiletpaper tomato towel vase watch winebottle hot cool clean some two find them
13 14 15 16 17 18 19 21 22 23 24 25
"""

# Clinic words (DiagGym-v0's triage note and history, its chief complaints, the choice
# listing and the ``five-diagnoses`` variant's diagnoses), so a complaint is one or two
# tokens, not a run of bytes: prompts are about 3 times shorter.
_CLINIC_CORPUS = """
You are a physician in an emergency department. You see a patient's triage note (age, sex, chief
complaint and what the patient volunteered) and may order examinations one at a time; each result
is reported back to you. Taking the full history (Medical history), measuring the vital signs
(Vital signs) and each physical examination are ordered the same way, one turn each. When you have
enough information, commit to one final diagnosis. You have at most 4 turns, and your last turn
must be the diagnosis. The diagnosis is one of: Acute infectious gastroenteritis, Mechanical low
back pain, Acute uncomplicated cystitis, Ureteral stone with renal colic, Acute asthma exacerbation.
Each observation ends with a numbered list of commands (the history, the vital signs and a final
diagnosis for each candidate). Reply with the number of one command; another examination may be
written as 'exam: <name>'. - Patient Information: 60 y/o F - Chief Complaint: diarrhea
- History of Present Illness: A 60-year-old woman presents with diarrhea. A 27-year-old man
- Not yet done: the full history (order Medical history), the vital signs (order Vital signs)
and the physical examination. Exam name: Medical history Exam results: History of present
illness: Besides flank pain, she reports nausea and pressure-like chest pain. He denies blood in
the urine. Past medical history: None reported. Commands: 1. exam: Medical history 2. exam: Vital
signs 3. diagnosis: Acute infectious gastroenteritis Reply with the number of one command.
chest pain, shortness of breath, palpitations, abdominal pain, flank pain, nausea and vomiting,
diarrhea, vomiting blood, black, tarry stools, fever, cough, headache, weakness on one side of the
body, difficulty speaking, confusion, a seizure, a fainting episode, generalized weakness, fatigue,
leg swelling, a red, painful area of skin, an itchy rash, painful urination, excessive thirst and
urination, joint pain, vaginal bleeding, yellowing of the skin, back pain, a sore throat,
dizziness, testicular pain, bright red blood from the rectum, an intentional overdose, shakiness
and anxiety, muscle pain and dark urine, tingling and weakness of the legs, a runny nose and cough,
wheezing, dysuria, urinary frequency, hematuria, numbness, dyspnea, years old, female, male
"""

#: The texts a tiny model's tokenizer can be trained on (setting ``corpus``).
CORPORA: dict[str, str] = {
    "base": _CORPUS,
    "household": _CORPUS + _HOUSEHOLD_CORPUS,
    "clinic": _CORPUS + _CLINIC_CORPUS,
}

#: Named tiny models (``model: NAME`` in a training config): settings over :data:`TINY_DEFAULTS`.
#: ``tiny-clinic`` is the demo's policy: the base shape with a tokenizer that knows the clinic's
#: words. ``tiny-household`` knows Household-v0's words and has four layers (see
#: ``examples/configs/demo.yaml`` for what each learned and how fast).
TINY_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    "tiny-clinic": {"corpus": "clinic", "vocab_size": 2048},
    "tiny-household": {
        "corpus": "household",
        "vocab_size": 2048,
        "hidden_size": 128,
        "intermediate_size": 352,
        "num_hidden_layers": 4,
    },
}


def _config_key(config: dict[str, Any]) -> str:
    settings = dict(config)
    corpus = CORPORA[settings.pop("corpus")]
    if corpus is not _CORPUS:  # the base model's key (and cache folder) predates this setting
        settings["corpus_name"] = config["corpus"]
    blob = json.dumps(
        {"version": TINY_VERSION, **settings, "corpus": corpus, "template": CHAT_TEMPLATE},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """Where built models are kept: ``$ROUNDS_CACHE/models`` (default ``~/.cache/rounds/models``)."""
    root = os.environ.get("ROUNDS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "rounds"
    )
    return Path(root) / "models"


def build_tokenizer(config: dict[str, Any], special_tokens: list[str], chat_template: str) -> Any:
    """The byte-level BPE tokenizer trained on the built-in corpus; ``special_tokens[0]``
    pads, ``<|im_end|>`` ends a turn. Shared with :func:`rounds.models.tiny_vl.tiny_vl`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config["vocab_size"],
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([CORPORA[config.get("corpus", "base")]] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=chat_template,
        padding_side="left",
        model_max_length=config["max_position_embeddings"],
    )
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens[1:]})
    return tokenizer


def neutral_generation_config(eos_token_id: int, tokenizer: Any) -> Any:
    """Plain sampling (no top-k, no repetition penalty), stopping at the end of a turn or text."""
    from transformers import GenerationConfig

    return GenerationConfig(
        eos_token_id=[eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
    )


def _build(directory: Path, config: dict[str, Any]) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer(config, SPECIAL_TOKENS, CHAT_TEMPLATE)
    torch.manual_seed(config["seed"])
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config["hidden_size"],
        intermediate_size=config["intermediate_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        num_key_value_heads=config["num_key_value_heads"],
        max_position_embeddings=config["max_position_embeddings"],
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(model_config)
    model.generation_config = neutral_generation_config(
        tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def tiny(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Path:
    """Build (or reuse) the tiny model and return its directory.

    Args:
        path: where to save it; default: a directory in the cache named by a hash of
            the settings, reused on later calls.
        overrides: settings to change from :data:`TINY_DEFAULTS` (e.g. ``num_hidden_layers=1``).

    Returns:
        A directory that ``AutoModelForCausalLM.from_pretrained`` and
        ``AutoTokenizer.from_pretrained`` load.
    """
    unknown = set(overrides) - set(TINY_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown tiny-model settings {sorted(unknown)}; settings: {sorted(TINY_DEFAULTS)}"
        )
    config = {**TINY_DEFAULTS, **overrides}
    if config["corpus"] not in CORPORA:
        raise ValueError(f"unknown corpus {config['corpus']!r}; choose one of {sorted(CORPORA)}")
    target = Path(path) if path is not None else cache_dir() / f"tiny-{_config_key(config)}"
    return build_once(target, _build, config)


def build_once(
    target: Path, build: Callable[[Path, dict[str, Any]], None], config: dict[str, Any]
) -> Path:
    """``target``, built by ``build(directory, config)`` unless a complete copy is there.

    The build goes to a staging folder beside ``target`` and is moved in with one rename,
    so a reader never sees half a model, and concurrent builders of the same settings
    (test workers, trainer processes) end with one identical copy.
    """
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build(staging, config)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError:
        # Another process finished the same build first; its copy is identical.
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").exists():
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def resolve_model(name: str) -> str:
    """A name of :data:`TINY_PRESETS` (``"tiny"``, ``"tiny-household"``) or ``"tiny-vl"`` to the
    built model's directory; any other name (a path or hub id) unchanged."""
    if name in TINY_PRESETS:
        return str(tiny(**TINY_PRESETS[name]))
    if name == "tiny-vl":
        from rounds.models.tiny_vl import tiny_vl

        return str(tiny_vl())
    return name
