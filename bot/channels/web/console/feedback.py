"""Feedback overview: a daily chart of volume and satisfaction (an inline SVG, no script), the
questions kbot declined, and the down-voted answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup

from bot.channels.web.access import Caller, require_admin
from bot.channels.web.console.context import ConsoleContext
from bot.channels.web.pages import render
from knowledge import reports


def chart(days: list[reports.Day], width: int = 720, height: int = 160) -> Markup:
    """Bars: answers per day; dots and line: the share of up-votes among that day's votes."""
    top = max((d.answers for d in days), default=0) or 1
    step = width / max(len(days), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}" role="img" '
             f'aria-label="answers and satisfaction per day">']
    points = []
    for i, d in enumerate(days):
        h = d.answers / top * height
        x = i * step
        parts.append(f'<rect x="{x + 1:.1f}" y="{height - h:.1f}" width="{step - 2:.1f}" height="{h:.1f}" '
                     f'fill="#9bc"><title>{d.day}: {d.answers} answers, {d.up} up, {d.down} down</title></rect>')
        if d.satisfaction is not None:
            points.append((x + step / 2, height - d.satisfaction * height))
    if points:
        parts.append('<polyline fill="none" stroke="#282" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#282"/>' for x, y in points]
    parts.append(f'<text x="0" y="{height + 15}" font-size="11">{days[0].day if days else ""}</text>')
    parts.append(f'<text x="{width - 70}" y="{height + 15}" font-size="11">{days[-1].day if days else ""}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter(prefix="/feedback")
    store = ctx.services.store

    @r.get("")
    def page(request: Request, days: int = 30, caller: Caller = Depends(require_admin)) -> Any:
        series = reports.daily(store, max(1, min(days, 365)))
        votes = sum(d.up + d.down for d in series)
        ups = sum(d.up for d in series)
        return render(request, "console/feedback.html", caller, nav="feedback", chart=chart(series),
                      answers=sum(d.answers for d in series), votes=votes,
                      satisfaction=(ups / votes if votes else None), days=len(series),
                      declined=reports.declined(store), downvoted=reports.downvoted(store))

    return r
