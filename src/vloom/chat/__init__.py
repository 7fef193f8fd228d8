"""Conversations for supervised fine-tuning: the model, chat-file readers, chat templates."""

from vloom.chat.conversation import ROLES, ChatError, Conversation, Turn

__all__ = ["ROLES", "ChatError", "Conversation", "Turn"]
