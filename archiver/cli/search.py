"""``archiver search QUERY``: full-text search over the whole archive."""

from __future__ import annotations

import html
import re
import sys

import click

from archiver.archive import Archive
from archiver.cli._common import accounts_option, emit_json, human_bytes, json_option, with_archive
from archiver.index import ALL_ACCOUNTS
from archiver.index import search as run_search
from archiver.index.lag import index_lag
from archiver.index.searcher import MAX_PAGE_SIZE

_MARK = re.compile(r"</?mark>")


def _plain(snippet_html: str, color: bool) -> str:
    """Terminal text of a snippet: matches bold when the terminal can show it."""
    if color:
        text = snippet_html.replace("<mark>", "\x1b[1m").replace("</mark>", "\x1b[0m")
    else:
        text = _MARK.sub("", snippet_html)
    return html.unescape(text)


def _page_size(_ctx: click.Context, _param: click.Parameter, value: int) -> int:
    """The --limit cap, said with its reason and the way round it (not just a range)."""
    if value > MAX_PAGE_SIZE:
        raise click.BadParameter(
            f"{value} is more than {MAX_PAGE_SIZE}, the most results one page holds (a page is ranked and "
            f"given snippets at once); use --page 2, 3, … for the following results"
        )
    return value


@click.command()
@click.argument("query", nargs=-1, required=True)
@accounts_option
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1),
    callback=_page_size,
    help=f"Results per page (at most {MAX_PAGE_SIZE}; --page for the next ones).",
)
@click.option("--page", default=1, show_default=True, type=click.IntRange(1), help="Page number.")
@click.option("--sort", type=click.Choice(["relevance", "date"]), default="relevance", show_default=True)
@click.option(
    "--snippets",
    is_flag=True,
    help="Show each hit's text around the matches (re-reads every hit's message: slower, most with --limit).",
)
@json_option()
@click.pass_context
@with_archive("read")
def search(
    ctx: click.Context,
    archive: Archive,
    query: tuple[str, ...],
    accounts: tuple[str, ...],
    limit: int,
    page: int,
    sort: str,
    snippets: bool,
    as_json: bool,
) -> None:
    """Search every archived message.

    QUERY uses words, "phrases", from: to: cc: subject: folder: account: filename:
    has:attachment is:unread is:flagged date:2021-03..2021-05 before: after: size:>5M,
    AND / OR / NOT (or -word), parentheses and * wildcards.
    """
    text = " ".join(query)
    # The CLI is the administrator: every account unless --account names some.
    scope = list(accounts) if accounts else ALL_ACCOUNTS
    result = run_search(archive, text, accounts=scope, page=page, page_size=limit, sort=sort, snippets=snippets)
    lag = index_lag(archive.root, archive.catalog, quick=True)  # no Whoosh: the hint, the catalog, a small file
    if lag.behind:
        click.echo(f"archiver: note: results may be incomplete: search index: {lag.summary()}", err=True)
    if as_json:
        emit_json(
            {
                "query": result.query,
                "total": result.total,
                "total_exact": result.total_exact,  # false: estimated (a phrase over very common words)
                "page": result.page,
                "pages": result.pages,
                "seconds": round(result.seconds, 4),
                "hits": [
                    {
                        "blob_id": h.blob_id,
                        "score": round(h.score, 4),
                        "date": h.date,
                        "from": h.sender,
                        "subject": h.subject,
                        "size": h.size,
                        "folders": [{"account": a, "folder": f} for a, f in h.folders],
                        "snippet_html": h.snippet_html,  # "" without --snippets
                    }
                    for h in result.hits
                ],
            }
        )
        return
    color = sys.stdout.isatty()
    first = (result.page - 1) * result.page_size + 1
    about = "" if result.total_exact else "about "
    lines = [
        f"{about}{result.total} message(s) match; page {result.page} of {result.pages} ({result.seconds * 1000:.0f} ms)"
    ]
    for number, hit in enumerate(result.hits, start=first):
        where = ", ".join(f"{a}/{f}" for a, f in hit.folders[:3]) + (" …" if len(hit.folders) > 3 else "")
        lines.append(f"{number:>4}. {(hit.date or '')[:10]:10}  {(hit.sender or '')[:40]}")
        lines.append(f"      {hit.subject or '(no subject)'}   [{where}] {human_bytes(hit.size)}")
        if hit.snippet_html:
            lines.append(f"      {_plain(hit.snippet_html, color)}")
        lines.append(f"      id {hit.blob_id}")
    click.echo("\n".join(lines))  # one write: a thousand hits are four thousand lines
