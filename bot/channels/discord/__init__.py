"""The Discord adapter (discord.py): bot.py builds and runs it; cogs in conversation.py and admin.py."""
