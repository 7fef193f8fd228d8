"""Self-correction (SCoRe's evaluation): answer, then answer again after being asked to check.

Attempt 1 is vqa_open's prompt (`Question: q Answer:`); attempt 2 shows the model its own first
answer, the instruction `SECOND_ATTEMPT`, and the question again, so the second answer comes in
the same sentence form the first did. Both attempts are greedy. The RL stage (vloom.rl) builds
its second-attempt rollouts with `second_attempt_prompt`, so training and evaluation agree.
"""

from __future__ import annotations

# Made only of words the world's text uses (each a whole token of the demo's small BPE
# tokenizer): an instruction in unseen words would be noise to a model trained on the world.
SECOND_ATTEMPT = "Looking at the picture, is the answer right?"


def second_attempt_prompt(first_prompt: str, first_answer: str) -> str:
    """The text after the image for attempt 2: attempt 1's prompt and answer, the instruction,
    and attempt 1's prompt again (`Question: q Answer:`), which the model answers anew.

    The first answer was cut at a stop string (vqa_open stops at "."), so the full stop that
    closed it is put back; an empty first answer stays empty."""
    first_prompt, answer = first_prompt.strip(), first_answer.strip()
    if answer and answer[-1] not in ".?!":
        answer += "."
    first = f"{first_prompt} {answer}" if answer else first_prompt
    return f"{first} {SECOND_ATTEMPT} {first_prompt}"
