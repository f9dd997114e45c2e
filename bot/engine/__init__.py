"""The conversation engine (condense -> retrieve -> decide -> generate -> check -> log), its grounding
rules, prompt and evaluation. Depends on the ports in bot.core, never on knowledge.* classes."""
