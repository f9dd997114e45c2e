"""Chat platforms and the web: each adapter turns platform events into a Question and renders the
Answer. Rules the platforms share live once, in bot.channels.shared."""
