"""Prompt size and context queries stay flat as a conversation grows."""

from __future__ import annotations

import json

from conversations.models import Author, Direction, Message, MessageStatus
from conversations.pipeline.context_reader import turn_context_build
from conversations.pipeline.service import turn_run

CUSTOMER_LINES = [
    "Hi! Do you still have the sourdough loaves today?",
    "Great, and could I book a table for Saturday morning? We'd be four adults and a toddler.",
    "Do you have gluten-free options? My sister is coeliac.",
    "Perfect. Is there parking nearby or should we come by tram?",
    "Thanks. Can we also order a birthday cake for pick-up on Friday, chocolate with raspberries?",
]
ASSISTANT_LINES = [
    "Yes, we bake sourdough every morning; today's batch is still available until about 2 pm.",
    "Happy to help with a booking! What name should I put it under, and what time on Saturday suits you?",
    "We have a gluten-free bread and two gluten-free cakes, baked in a separate area.",
    "There is a public car park two streets away, and tram line 3 stops right at our door.",
    "Of course! What size should the cake be, and what should we write on it?",
]
# turn_context_build: conversation (+ business, settings, agent, contact), default
# templates, stages (+ their templates), history, and possibly the default agent.
CONTEXT_QUERIES = 5


def grow(bakery, total: int) -> Message:
    """Give the conversation `total` messages before a pending customer message; return that message."""
    conversation = bakery.conversation
    existing = Message.objects.filter(conversation=conversation).count()
    rows = []
    for i in range(total - existing):
        customer, assistant = CUSTOMER_LINES[i // 2 % 5], ASSISTANT_LINES[i // 2 % 5]
        inbound = i % 2 == 0
        rows.append(
            Message(
                business=conversation.business,
                conversation=conversation,
                channel_account=conversation.channel_account,
                direction=Direction.IN if inbound else Direction.OUT,
                author=Author.CUSTOMER if inbound else Author.AI,
                text=customer if inbound else assistant,
                status=MessageStatus.ANSWERED if inbound else MessageStatus.DELIVERED,
            )
        )
    Message.objects.bulk_create(rows)
    return bakery.say("And what time do you open on Sunday?")


def turn_request_chars(bakery, fake, total: int) -> int:
    fake.reset()
    pending = grow(bakery, total)
    turn_run(conversation=bakery.conversation, messages=[pending])
    return sum(len(json.dumps(body["messages"], ensure_ascii=False)) for body in fake.bodies())


def test_prompt_size_at_200_messages_is_within_1_5x_of_10_messages(bakery, fake):
    # With the business's default history budget.
    at_10 = turn_request_chars(bakery, fake, 10)
    at_200 = turn_request_chars(bakery, fake, 200)

    assert at_200 <= 1.5 * at_10, (at_10, at_200)


def test_prompt_size_is_flat_once_the_history_fills_the_default_budget(bakery, fake):
    at_150 = turn_request_chars(bakery, fake, 150)
    at_400 = turn_request_chars(bakery, fake, 400)

    assert at_400 <= 1.05 * at_150, (at_150, at_400)


def test_building_the_context_takes_the_same_queries_at_10_and_200_messages(
    bakery, django_assert_max_num_queries
):
    pending = grow(bakery, 10)
    with django_assert_max_num_queries(CONTEXT_QUERIES):
        small = turn_context_build(conversation=bakery.conversation, messages=[pending])

    pending = grow(bakery, 200)
    with django_assert_max_num_queries(CONTEXT_QUERIES):
        large = turn_context_build(conversation=bakery.conversation, messages=[pending])

    assert len(small.history) == 10
    assert 10 < len(large.history) < 200  # trimmed by the token budget, not by loading everything
