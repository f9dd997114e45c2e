"""The one Markdown converter: the same snippet as safe HTML, Slack mrkdwn and Discord Markdown."""

from __future__ import annotations

from bot.channels.markdown import to_discord, to_html, to_slack, to_text

SNIPPET = ("## Requirements\n\n- A company-managed laptop\n- **version 6.2.1 or later** of the "
           "[client](https://wiki.acme.example/vpn)\n\n1. Install\n2. Sign in as *you*\n\n"
           "| Office | Gateway |\n|---|---|\n| Berlin | vpn-ber |\n\n> quoted `vpn --up`")


def test_html_is_rendered_and_safe():
    out = to_html(SNIPPET + "\n\n<img src=x onerror=alert(1)> [x](javascript:alert(1)) [f](file:///etc/passwd)")
    assert "<h2>Requirements</h2>" in out and "<strong>version 6.2.1 or later</strong>" in out
    link = '<a href="https://wiki.acme.example/vpn" target="_blank" rel="noopener noreferrer nofollow">client</a>'
    assert link in out
    assert "<table>" in out and "<td>Berlin</td>" in out and "<code>vpn --up</code>" in out
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert 'href="javascript' not in out and 'href="file' not in out


def test_slack_mrkdwn():
    assert to_slack(SNIPPET).splitlines() == [
        "*Requirements*",
        "• A company-managed laptop",
        "• *version 6.2.1 or later* of the <https://wiki.acme.example/vpn|client>",
        "1. Install",
        "2. Sign in as _you_",
        "Office | Gateway",
        "Berlin | vpn-ber",
        "> quoted `vpn --up`",
    ]
    assert to_slack("a & b <!here> @channel [x](javascript:alert(1))") == \
        "a &amp; b &lt;!here&gt; @\u200bchannel [x](javascript:alert(1))"


def test_discord_markdown():
    assert to_discord(SNIPPET).splitlines()[:3] == [
        "**Requirements**", "• A company-managed laptop",
        "• **version 6.2.1 or later** of the [client](<https://wiki.acme.example/vpn>)"]
    assert to_discord("snake_case *x* <@123> @everyone | ~") == "snake\\_case *x* \\<@123\\> @\u200beveryone \\| \\~"


def test_plain_text_and_cut_snippets():
    assert to_text(SNIPPET).splitlines()[:3] == ["Requirements", "• A company-managed laptop",
                                                 "• version 6.2.1 or later of the client"]
    cut = "## Requirements - A company-managed laptop ... **version 6.2.1 or"  # cut mid-emphasis
    assert to_slack(cut) == "*Requirements - A company-managed laptop ... **version 6.2.1 or*"
    assert to_text("") == "" and to_html("") == ""
