"""Main-content selection: one boilerplate signal per test on small pages, and a regression guard
on real web pages (the extraction-dev set, when present)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from ingestfix import page

from vloom.ingest.html import ImageRef, extract_page

ARTICLE = (
    "<h1>River levels rise</h1>"
    "<p>Heavy rain over the weekend pushed the river to its highest level in a decade, and the "
    "town council opened two emergency shelters on Sunday evening.</p>"
    "<p>Residents near the old bridge were asked to move their cars to higher ground, while "
    "volunteers filled sandbags outside the fire station until late at night.</p>"
    "<p>Forecasters expect the water to fall slowly from Tuesday if the rain stops as predicted, "
    "but warn that the ground is saturated and will not absorb much more.</p>"
)


def _text(html: str) -> str:
    return "\n\n".join(i for i in extract_page(html).items if isinstance(i, str))


def test_link_dense_list_is_dropped_text_list_kept():
    # a teaser list: thumbnails and titles inside links go together; the article's own list of
    # steps and its figure stay
    links = "".join(
        f'<li><a href="/s/{i}"><img src="t{i}.jpg">Section number {i}</a></li>' for i in range(8)
    )
    steps = "".join(f"<li>Step {i}: stir the sauce gently</li>" for i in range(4))
    article = ARTICLE.replace(
        "<p>Forecasters", f'<ul>{steps}</ul><img src="river.jpg"><p>Forecasters'
    )
    items = extract_page(page("t", f'<div class="x"><ul>{links}</ul></div><div>{article}</div>'))
    text = "\n\n".join(i for i in items.items if isinstance(i, str))
    assert "Section number" not in text
    assert "Heavy rain" in text and "Step 3: stir the sauce gently" in text
    assert [i.src for i in items.items if isinstance(i, ImageRef)] == ["river.jpg"]


def test_heading_over_a_dropped_section_goes_a_title_over_a_subtitle_stays():
    links = "".join(f'<li><a href="/s/{i}">Other story number {i}</a></li>' for i in range(6))
    article = ARTICLE.replace(
        "<p>Forecasters", f"<h3>Read also</h3><ul>{links}</ul><h2>Outlook</h2><p>Forecasters"
    )
    text = _text(page("t", f"<h1>Weather</h1>{article}"))
    assert "Read also" not in text and "Other story" not in text
    assert text.startswith("Weather\n\nRiver levels rise\n\nHeavy rain")
    assert "Outlook\n\nForecasters expect" in text


def test_comment_section_is_dropped():
    comments = (
        '<div id="comments"><h3>3 Comments</h3><div class="comment-body"><p>Great article, '
        "thanks a lot for writing it up, I learned so much from it today!</p></div>"
        '<div id="respond"><h3>Leave a Reply</h3></div></div>'
    )
    text = _text(page("t", f"<article>{ARTICLE}</article>{comments}"))
    assert "Heavy rain" in text and "Forecasters expect" in text
    assert "Great article" not in text and "Leave a Reply" not in text and "Comments" not in text


def test_inline_image_kept_at_its_position():
    body = ARTICLE.replace(
        "</p><p>Residents",
        '</p><figure><img src="flood.jpg" alt="The bridge"><figcaption>The old bridge on '
        "Sunday</figcaption></figure><p>Residents",
    )
    items = extract_page(page("t", f"<article>{body}</article>")).items
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["str", "ImageRef", "str"]
    assert items[0].endswith("two emergency shelters on Sunday evening.")
    img = items[1]
    assert isinstance(img, ImageRef) and img.alt == "The bridge"
    # the caption is the image's field, not the article's text
    assert img.caption == "The old bridge on Sunday"
    assert items[2].startswith("Residents near the old bridge")


def test_legal_footer_and_trailing_labels_are_dropped():
    legal = (
        '<div class="legal"><p>Copyright 2024 Example Media Group. All rights reserved. '
        "Reproduction of any part without written permission is prohibited.</p></div>"
    )
    body = f'<div class="wrap"><div class="col">{ARTICLE}<p>Share this:</p></div>{legal}</div>'
    text = _text(page("t", body))
    assert "Forecasters expect" in text
    assert "All rights reserved" not in text and "Share this" not in text


def test_main_column_chosen_over_sidebar():
    sidebar = (
        '<div class="col-right"><h3>About us</h3><p>Local reporters since 1998.</p>'
        "<p>Tips? Write to the newsroom.</p>"
        '<p><a href="/a">Most read one</a> <a href="/b">Most read two</a> '
        '<a href="/c">Most read three</a></p></div>'
    )
    body = f'<div class="row"><div class="col-left">{ARTICLE}</div>{sidebar}</div>'
    text = _text(page("t", body))
    assert "River levels rise" in text and "Forecasters expect" in text
    assert "Local reporters" not in text and "Most read" not in text and "Tips" not in text


def test_wrappers_named_like_boilerplate_keep_the_article():
    # ASP.NET wraps the whole page in one <form>; a theme flags the article div "share"; a
    # theme leaves an empty <main> beside the content
    search = '<form action="/s"><label>Search the site</label><input name="q"></form>'
    for body in (
        f'<form id="aspnetForm">{search.replace("form", "div")}<div>{ARTICLE}</div></form>',
        f'<div class="entry themeform share">{ARTICLE}</div>{search}',
        f"<main></main><div>{ARTICLE}</div>{search}",
    ):
        text = _text(page("t", body))
        assert "Heavy rain" in text and "Forecasters expect" in text, body
    assert "Search the site" not in _text(page("t", f"{search}<div>{ARTICLE}</div>"))
    # a layout wrapper flagged "nav_right" that holds the page's <h1> is no menu, even
    # when the rest of the page outweighs it
    talk = " ".join(f"word{i}" for i in range(300))
    body = (
        f'<div class="container_wrap nav_right">{ARTICLE}<div class="sidebar">'
        f"<p>Sidebar line</p></div></div><footer><p>{talk}</p></footer>"
    )
    text = _text(page("t", body))
    assert "Forecasters expect" in text and "Sidebar line" not in text and "word7" not in text


def test_short_page_without_prose_is_kept_whole():
    # a note, a gallery caption: nothing reads as prose, so nothing is selected away
    body = '<p>a</p><img src="x.png"><p>b</p><p><a href="/1">one</a></p>'
    items = extract_page(page("t", body)).items
    assert items[0] == "a" and isinstance(items[1], ImageRef) and items[2] == "b\n\none"


def test_sign_up_box_in_a_hidden_lightbox_is_not_the_article():
    # the page's only <article> sits in a hidden lightbox: the body is walked instead
    box = (
        '<div class="lightbox" style="visibility: hidden"><article><h2>Join the list</h2>'
        "<p>Enter your best e-mail address and click Next to receive our offers, news and "
        "updates about courses, events and everything else we do every week.</p></article></div>"
    )
    text = _text(page("t", f'<div class="page">{ARTICLE}</div>{box}'))
    assert "Heavy rain" in text and "Forecasters expect" in text and "Join the list" not in text


def test_ruby_annotations_are_dropped():
    body = ARTICLE.replace(
        "<p>Heavy", "<p><ruby>漢<rp>(</rp><rt>かん</rt><rp>)</rp></ruby>字 Heavy"
    )
    text = _text(page("t", f"<article>{body}</article>"))
    assert "漢字 Heavy rain" in text and "かん" not in text


def test_title_heading_and_lead_before_the_column_are_kept():
    # the headline and standfirst sit in their own header box above the article body; the
    # <title> repeats the headline; a date line between them stays out
    head = (
        '<div class="head"><h1>River levels rise across the valley</h1><p>12 May 2024</p>'
        "<p>The highest water in a decade closed roads and schools on Sunday; more rain is due "
        "soon.</p></div>"
    )
    links = "".join(f'<li><a href="/s/{i}">Other story number {i}</a></li>' for i in range(6))
    body = f'{head}<div class="body">{ARTICLE}</div><ul>{links}</ul>'
    text = _text(page("River levels rise across the valley | Example News", body))
    assert text.startswith("River levels rise across the valley\n\nThe highest water")
    assert "12 May 2024" not in text and "Forecasters expect" in text
    # no <title> to match: the page's first <h1> is the headline when no <h1> was kept
    assert "highest water" not in _text(page("Example News", body))
    body = body.replace("<h1>River levels rise</h1>", "<h2>River levels rise</h2>")
    assert _text(page("Example News", body)).startswith("River levels rise across the valley")


def test_captions_leave_the_text_for_their_image():
    # WordPress's div.wp-caption: the caption is the image's field; a teaser's captioned
    # thumbnail goes with its link list; a quote's <figcaption> (no image) stays text
    fig = (
        '<div class="wp-caption"><img src="a.jpg"><p class="wp-caption-text">Photo: Jane Doe'
        "</p></div>"
    )
    quote = "<figure><blockquote>Water finds a way.</blockquote><figcaption>Old saying"
    teasers = "".join(
        f'<li><a href="/s/{i}"><figure><img src="t{i}.jpg"><figcaption>Teaser {i}</figcaption>'
        "</figure>Story</a></li>"
        for i in range(5)
    )
    body = ARTICLE.replace("<p>Residents", f"{fig}{quote}</figcaption></figure><p>Residents")
    items = extract_page(page("t", f"<article>{body}<ul>{teasers}</ul></article>")).items
    text = "\n\n".join(i for i in items if isinstance(i, str))
    imgs = [i for i in items if isinstance(i, ImageRef)]
    assert [(i.src, i.caption) for i in imgs] == [("a.jpg", "Photo: Jane Doe")]
    assert "Jane Doe" not in text and "Teaser" not in text
    assert "Water finds a way.\n\nOld saying" in text
    # a CMS's media box (description and credit beside the image), a lightbox's legend after
    # the image's link
    media = (
        '<div class="media__image"><img src="b.jpg"><p class="media__caption">Flooded road</p>'
        '<p class="media__caption--source">Photo: Jane Doe</p></div>'
        '<div class="box"><a href="b.jpg"><img src="c.jpg"></a></div>'
        '<div class="legend">Sandbags at the station</div>'
    )
    body = ARTICLE.replace("<p>Residents", f"{media}<p>Residents")
    items = extract_page(page("t", f"<article>{body}</article>")).items
    text = "\n\n".join(i for i in items if isinstance(i, str))
    assert [i.caption for i in items if isinstance(i, ImageRef)] == [
        "Flooded road Photo: Jane Doe",
        "Sandbags at the station",
    ]
    assert "Jane Doe" not in text and "Sandbags" not in text and "Residents" in text


def test_label_of_a_dropped_link_list_goes_a_list_intro_stays():
    links = "".join(f'<li><a href="/s/{i}">Other story number {i}</a></li>' for i in range(4))
    steps = "".join(f"<li>Step {i}: stir the sauce gently</li>" for i in range(4))
    body = ARTICLE.replace(
        "<p>Forecasters",
        f"<p>Read also:</p><ul>{links}</ul><p>What to do now:</p><ul>{steps}</ul><p>Forecasters",
    )
    text = _text(page("t", f"<article>{body}</article>"))
    assert "Read also" not in text and "Other story" not in text
    assert "What to do now:\n\nStep 0" in text and "Forecasters expect" in text
    # a manual's chapter page: its <h1> over the chapter's table of contents stays
    toc = "".join(f'<li><a href="s{i}.html">Section {i}</a></li>' for i in range(6))
    body = f"<h1>Chapter 4. Installation</h1><ul>{toc}</ul>{ARTICLE.replace('h1', 'h2')}"
    assert _text(page("Chapter 4. Installation", body)).startswith("Chapter 4. Installation\n\n")


def test_calls_to_action_at_the_end_go_prose_naming_a_network_stays():
    tail = (
        "<p>Police said the video was first shared on Facebook by a resident on Sunday and "
        "later removed at the request of the families of those involved.</p>"
        "<p>Subscribe now to our e-edition for the full story.</p>"
        "<p>Follow us on Twitter and Instagram for the latest updates.</p>"
        "<p>If you enjoyed this post, would you consider supporting our work?</p>"
    )
    text = _text(page("t", f"<div class='post'>{ARTICLE}{tail}</div><div><p>x</p></div>"))
    assert "shared on Facebook by a resident" in text and "Forecasters expect" in text
    assert "Subscribe now" not in text and "Follow us" not in text and "enjoyed" not in text
    # the last paragraph tells of a donation, it asks for none
    last = "<p>The pumps were donated by a local family; the town bought the sandbags.</p>"
    assert "donated by a local family" in _text(page("t", f"<article>{ARTICLE}{last}</article>"))
    # the same lines at the top of an article are not its tail: they stay; a short line of
    # share buttons goes wherever it stands
    share = '<p><a href="/print">Print recipe</a> Save on Pinterest</p>'
    text = _text(page("t", f"<article>{share}{tail}{ARTICLE}</article>"))
    assert "Subscribe now" in text and "Pinterest" not in text


def test_screen_reader_only_text_is_dropped():
    body = ARTICLE.replace(
        "<p>Residents",
        '<p><a href="/x">Report<span class="sr-only"> (opens in a new window)'
        "</span></a> a flooded road to the council.</p><p>Residents",
    )
    text = _text(page("t", f"<article>{body}</article>"))
    assert "Report a flooded road" in text and "new window" not in text


def test_teasers_linked_headline_and_excerpt_go_a_linked_post_title_stays():
    teasers = "".join(
        f'<div class="card"><img src="t{i}.jpg"><h3><a href="/p/{i}">Other story {i}</a></h3>'
        f"<p>An excerpt of the other story number {i}, long enough to read like a paragraph of "
        "prose from an article, which it is not.</p></div>"
        for i in range(3)
    )
    text = _text(page("t", f"<div>{ARTICLE}<h2>Related</h2>{teasers}</div>"))
    assert "Forecasters expect" in text and "excerpt" not in text and "Other story" not in text
    # a blog post whose title links to itself, its first paragraph short: no teaser, as more
    # paragraphs follow
    post = ARTICLE.replace("<h1>River levels rise</h1>", '<h2><a href="/p">River levels</a></h2>')
    text = _text(page("t", f"<div>{post}</div><div>{teasers}</div>"))
    assert text.startswith("Heavy rain over the weekend") and "excerpt" not in text


def test_prose_a_few_containers_outside_the_column_stays():
    # the intro sits three wrappers out from the article body; between them a box of short
    # labels stops the column from climbing; the intro still reads as the article's
    intro = (
        '<div class="intro"><p>Two years after the last flood, the valley is under water again, '
        "and the people who rebuilt their homes ask what went wrong this time.</p></div>"
    )
    labels = "".join(f"<li>Label number {i}</li>" for i in range(12))
    body = (
        f'<div class="page">{intro}<div class="outer"><div class="box"><ul>{labels}</ul></div>'
        f'<div class="inner"><div class="text">{ARTICLE}</div></div></div></div>'
        '<div class="aside"><p>Short note.</p></div>'
    )
    text = _text(page("t", body))
    assert "Two years after the last flood" in text and "Forecasters expect" in text
    assert "Label number" not in text and "Short note" not in text


def test_boilerplate_names_match_in_any_case():
    nav = (
        '<div id="Navigation"><p>Welcome to our office for tree surveys and landscape planning '
        'in the region. <a href="/a">Services</a></p></div>'
    )
    body = ARTICLE.replace("<p>Residents", f"{nav}<p>Residents")
    text = _text(page("t", f"<article>{body}</article>"))
    assert "Forecasters expect" in text and "Welcome to our office" not in text


def test_bem_main_element_of_a_sidebar_layout_is_content():
    # "sidebar__main" is the main element of a sidebar layout (BEM), "sidebar__aside" is not
    # (its links make it no prose sidebar; the page's other text makes it no layout wrapper)
    talk = " ".join(f"word{i}" for i in range(200))
    links = "".join(f'<li><a href="/t/{i}">Topic tag number {i}</a></li>' for i in range(12))
    body = (
        f'<div class="layout"><div class="sidebar__main">{ARTICLE.replace("h1", "h2")}{links}</div>'
        '<div class="sidebar__aside"><p>Most read: the mayor, the bridge, the budget.</p></div>'
        f"</div><div><p>{talk}</p></div>"
    )
    text = _text(page("t", body))
    assert "Heavy rain" in text and "Forecasters expect" in text and "Most read" not in text


HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")
GIMP = Path("/usr/share/gimp/2.0/help/en")


@pytest.mark.skipif(
    not HANDBOOK.is_dir(), reason="debian-handbook not installed (apt-get install debian-handbook)"
)
def test_handbook_pages_keep_their_content_without_the_navigation():
    pages = sorted(HANDBOOK.glob("*.html"))
    assert len(pages) > 100
    for path in pages[::10] + [HANDBOOK / "index.html"]:
        text = _text(path.read_bytes())
        assert len(text) > 200, path  # every page keeps its text (the index its title page)
        assert "Prev" not in text.split("\n") and "Next" not in text.split("\n"), path
    index = _text((HANDBOOK / "index.html").read_bytes())
    assert "This book is available under the terms of two licenses" in index
    assert "1.1.1. A Multi-Platform Operating System" not in index  # the table of contents


@pytest.mark.skipif(not GIMP.is_dir(), reason="gimp-help-en not installed")
def test_gimp_figures_stay_where_they_stand():
    items = extract_page((GIMP / "gimp-filter-alien-map.html").read_bytes()).items
    srcs = [i.src for i in items if isinstance(i, ImageRef)]
    assert srcs == [
        "images/filters/examples/taj_orig.jpg",
        "images/filters/examples/alien-map-taj.jpg",
        "images/menus/colors/map/alien-map-dialog.png",
    ]
    text = "\n\n".join(i for i in items if isinstance(i, str))
    assert "heavily distorts image colors" in text and "Color Model" in text


# the shared benchmark folder beside the checkout (read-only; its pages never enter the repo)
DEV = Path(__file__).resolve().parents[3] / "shared/benchmarks/extraction-dev"


def _norm(s: str) -> str:  # score.py's normalisation
    return re.sub(r"\s+", " ", s).strip()


@pytest.mark.skipif(not (DEV / "evaldata.json").is_file(), reason=f"{DEV}: extraction-dev absent")
def test_extraction_dev_meets_issue_15_bound():
    """All 400 pages of the dev set, scored as score.py does: issue 15's bound, F1 >= 0.93 with
    precision >= 0.90 (measured P 0.928 R 0.961 F1 0.944; even half 0.954, odd 0.934)."""
    ev = json.loads((DEV / "evaldata.json").read_text(encoding="utf-8"))
    tp = fp = fn = 0
    for item in ev.values():
        raw = gzip.decompress((DEV / "pages" / item["file"]).read_bytes())
        text = _norm(" ".join(i for i in extract_page(raw).items if isinstance(i, str)))
        hit = sum(_norm(w) in text for w in item["with"])
        tp, fn = tp + hit, fn + len(item["with"]) - hit
        fp += sum(_norm(w) in text for w in item["without"])
    p, r = tp / (tp + fp), tp / (tp + fn)
    f1 = 2 * p * r / (p + r)
    assert p >= 0.90 and f1 >= 0.93, (p, r, f1)


def test_caption_class_names_count_in_any_case():
    # class names are matched case-insensitively wherever the climb from an image looks: a
    # figure wrapper's children, the element after the image's wrapper, above <article>
    fig = (
        '<div class="MediaObject"><img src="d.jpg"><div class="Caption">The dam at dusk</div>'
        '</div><div class="Box"><img src="e.jpg"></div><span class="PhotoLEGEND">Evening</span>'
    )
    body = ARTICLE.replace("<p>Residents", f"{fig}<p>Residents")
    items = extract_page(page("t", f"<article>{body}</article>")).items
    assert [(i.src, i.caption) for i in items if isinstance(i, ImageRef)] == [
        ("d.jpg", "The dam at dusk"),
        ("e.jpg", "Evening"),
    ]
    text = "\n\n".join(i for i in items if isinstance(i, str))
    assert "dusk" not in text and "Evening" not in text and "Residents" in text


# Erlang/OTP's reference pages (erlang-doc): the manual page's sections, with one function's entry
# marked up as the page's only <article>, inside div#content beside a navigation column.
def _erlang_like(entry: str) -> str:
    nav = "".join(f'<li><a href="#f{i}">fun{i}/1</a></li>' for i in range(40))
    return (
        '<html><body><div id="container"><div class="topbar"><h1>erl</h1></div>'
        f'<div id="leftnav"><h3>Table of Contents</h3><ul class="flipMenu">{nav}</ul></div>'
        '<div id="content"><div class="innertube"><h1>erl</h1></div>'
        '<section class="description"><h3>Description</h3><p>The erl program starts an Erlang '
        "runtime system. The exact details are system-dependent, and the program must be used in "
        "pipelines or to redirect standard input or output.</p></section>"
        f'<div class="exports-body">{entry}</div>'
        '<section class="innertube"><h3>Flags</h3><dl><dt>-boot File</dt><dd><p>Specifies the '
        "name of the boot file, File.boot, which is used to start the system.</p></dd>"
        "<dt>-config Config</dt><dd><p>Specifies the name of one or more configuration files, "
        "Config.config, which is used to configure applications.</p></dd>"
        "<dt>-detached</dt><dd><p>Starts the Erlang runtime system detached from the system "
        "console. Useful for running daemons and background processes.</p></dd></dl></section>"
        "</div></div></body></html>"
    )


ERLANG_ENTRY = (
    '<article class="func"><div class="bold_code">erl &lt;arguments&gt;</div>'
    "<p>Starts an Erlang runtime system.</p></article>"
)


def test_lone_article_that_is_one_entry_of_the_page_is_not_the_root():
    # the only <article> holds one function's entry, no heading; the page's prose stands around
    # it: the body is walked, so the description and the flags stay (they were lost)
    text = _text(_erlang_like(ERLANG_ENTRY))
    for words in ("The erl program starts", "Starts an Erlang runtime", "name of the boot file"):
        assert words in text, words
    assert "fun12/1" not in text  # the navigation still goes


def test_lone_article_holding_the_prose_stays_the_root():
    # the same page whose article holds most of the paragraphs (a news story whose headline
    # sits outside it): the article is the main content, the aside prose around it goes
    story = ARTICLE.replace("<h1>River levels rise</h1>", "") * 3
    text = _text(_erlang_like(f'<article class="func">{story}</article>'))
    assert "Heavy rain" in text and "The erl program starts" not in text
    # ... and one with its own headline stays the root whatever stands around it
    text = _text(_erlang_like(f"<article><h2>News</h2><p>{ARTICLE[30:90]}</p></article>"))
    assert "News" in text and "name of the boot file" not in text


ERLANG = Path("/usr/share/doc/erlang-doc/erts-13.1.5/doc/html")


@pytest.mark.skipif(not (ERLANG / "erl.html").is_file(), reason="erlang-doc 25 not installed")
def test_erlang_reference_pages_keep_their_sections():
    text = _text((ERLANG / "erl.html").read_bytes())
    assert "The erl program starts an Erlang runtime system" in text  # the description
    assert "Starts an Erlang runtime system." in text  # the one <article>
    assert "Specifies the name of the boot file" in text  # the flags section
    assert len(text) > 40_000


def _docbook_xhtml(sections: list[tuple[str, str]], lang: str = "en") -> str:
    """A chapter as DocBook's XHTML writes it (debian-reference, apt-doc, debmake-doc): every
    heading opens with an empty anchor written <a id="..."/>, which HTML parsing leaves open."""
    toc = "".join(f'<dt><a href="#s{i}">{h}</a></dt>' for i, (h, _) in enumerate(sections))
    body = "".join(
        f'<div class="section"><div class="titlepage"><h2 class="title"><a id="s{i}"/>{h}</h2>'
        f"</div>{paras}</div>"
        for i, (h, paras) in enumerate(sections)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
        f'<head><title>Chapter 7. GUI System</title></head><body lang="{lang}">'
        '<div class="navheader"><a href="ch06.html">Prev</a> <a href="ch08.html">Next</a></div>'
        '<div class="chapter"><div class="titlepage"><h1 class="title"><a id="gui"/>Chapter 7. '
        f'GUI System</h1></div><div class="toc"><dl class="toc">{toc}</dl></div>{body}</div>'
        "</body></html>"
    )


# Until the next <a href>, the parser reopens the heading's <a id="..."/> around the text: a
# section's prose up to its first link (7.1, 7.3). 7.2 opens with a link, so it stays clean.
GUI_SECTIONS = [
    (
        "7.1. GUI desktop environment",
        "<p>There are several choices for the full featured GUI desktop environment on the "
        "Debian system, each a task metapackage that pulls in the whole environment.</p>"
        "<p>Dependency packages selected by a task metapackage may be out of sync with the "
        "latest package transition state in the unstable and testing suites.</p>"
        '<p>See <a href="https://wiki.debian.org/DesktopEnvironment">the wiki</a>.</p>',
    ),
    (
        "7.2. GUI communication protocol",
        '<p><a href="https://wayland.freedesktop.org/">Wayland</a> is a same-host GUI '
        "communication protocol: new, simpler, faster, and it needs no setuid root binary.</p>"
        "<p>X Window is a network-capable GUI communication protocol: traditional, complex, "
        "slower, and it needs a setuid root binary to run.</p>"
        "<p>For applications using the Wayland protocol, access to their display from a remote "
        "host is provided by VNC or RDP, as the remote desktop section explains.</p>"
        "<p>Modern X servers have the MIT shared memory extension and talk to their local "
        "clients through local shared memory, which bypasses the network channel.</p>",
    ),
    (
        "7.3. GUI infrastructure",
        "<p>Here are notable GUI infrastructure packages for the GNOME on Wayland environment, "
        "installed automatically with the desktop task of the installer.</p>"
        "<p>The window manager, the X server running on top of Wayland and the remote desktop "
        "daemon come with it, and the tweak tool is worth adding by hand.</p>"
        '<p>See <a href="https://wiki.gnome.org/">the GNOME wiki</a>.</p>',
    ),
]


def test_anchor_targets_are_not_links():
    # the parser reopens <a id="s0"/> around every paragraph after its heading: counted as link
    # text, each section was a link list and went (a Debian Reference chapter kept one section)
    text = _text(_docbook_xhtml(GUI_SECTIONS))
    for words in ("several choices for the full", "is a same-host", "notable GUI infra"):
        assert words in text, words
    assert "7.1. GUI desktop environment" in text and "Prev" not in text


def test_script_anchors_without_href_are_still_links():
    from selectolax.lexbor import LexborHTMLParser

    from vloom.ingest.html_extract import _is_target

    html = (
        '<a id="x"></a><a name="y"></a><a class="indexterm" id="z"></a>'
        '<a class="btn" data-type="recipe-widget">Buy</a><a onclick="go()">Go</a>'
        '<a id="t" tabindex="0">Tab</a><a>bare</a>'
    )
    anchors = LexborHTMLParser(html).css("a")
    assert [_is_target(a) for a in anchors] == [True, True, True, False, False, False, False]


DEBREF = Path("/usr/share/debian-reference")


@pytest.mark.skipif(not (DEBREF / "ch07.en.html").is_file(), reason="debian-reference-en absent")
def test_debian_reference_chapter_keeps_its_sections():
    text = _text((DEBREF / "ch07.en.html").read_bytes())
    assert "There are several choices for the full featured GUI desktop environment" in text
    assert "Many useful GUI applications are available on Debian now" in text  # 7.4
    assert "From user's perspective" in text  # 7.2, the one section kept before
    assert len(text) > 8000


# Chinese prose with Latin words in it (package names, commands): debian-reference-zh-cn's
# sentences. Their characters weigh three as in a sentence of Chinese alone.
MIXED = [
    "在 Debian 系统上，有几个功能全面的 GUI 桌面环境选择，每个都是一个 task 元软件包。",
    "使用从 GNOME 终端启动的 xeyes 程序，你能够检查每个 GUI 应用程序使用的图形通信协议。",
    "现代 X 服务器具有 MIT-SHM 共享内存扩展，它们和本地 X 客户端通过本地共享内存进行通讯。",
]
PURE = [
    "对于使用这种协议的应用，由远程桌面软件来支持从一个远程主机上访问它们显示的内容和应用。",
    "如果鼠标是在使用这种显示协议的应用程序上，比如终端，眼睛不会跟随鼠标移动，请注意观察。",
    "到二零二一年四月，许多流行的图形应用程序已经被移植到了新的显示协议，其余的仍然使用旧协议。",
]


def test_chinese_sentences_among_latin_words_weigh_as_chinese():
    # each mixed sentence has 40-odd characters, two thirds of them Chinese: weighed as 40
    # (UTF-8 spends under 2.5 bytes per character on it) it was a label, not prose, and its
    # section went beside the one of Chinese alone, which holds 3 such sentences
    assert all(len(s.encode()) < 2.5 * len(s) for s in MIXED)
    paras = "".join(f"<p>{s}</p>" for s in MIXED)
    pure = "".join(f"<p>{s}</p>" for s in PURE)
    html = (
        '<html lang="zh-CN"><body><div class="chapter"><h1>第 7 章 图形用户界面系统</h1>'
        f'<div class="sect-a"><h2>7.1. 桌面环境</h2>{paras}</div>'
        f'<div class="sect-b"><h2>7.2. 通信协议</h2>{pure}</div></div></body></html>'
    )
    text = _text(html)
    for s in MIXED + PURE:
        assert s in text, s


@pytest.mark.skipif(
    not (DEBREF / "ch07.zh-cn.html").is_file(), reason="debian-reference-zh-cn absent"
)
def test_debian_reference_chinese_chapter_keeps_its_mixed_sentences():
    text = _text((DEBREF / "ch07.zh-cn.html").read_bytes())
    assert "在 Debian 系统上，有几个功能全面的 GUI 桌面环境选择。" in text  # 7.1's opening
    assert "使用从 GNOME 终端启动的 xeyes 程序" in text


def _erlang_reference(n_funcs: int) -> str:
    """An Erlang/OTP module reference (stdlib's ordsets.html): a description of two paragraphs in
    div.description-body, then the functions, each a signature, its types and one short line,
    but for one whose description is a paragraph."""
    funcs = "".join(
        f'<div class="bold_code"><a name="f{i}"></a>f{i}(Element, Ordset1) -&gt; Ordset2</div>'
        f'<div class="REFBODY"><p>Types</p><div class="REFTYPES"><span class="bold_code">'
        f"Element = term()</span><br><span>Ordset1 = Ordset2 = ordset(T)</span></div></div>"
        f'<div class="REFBODY rb-3"><p>Returns a new ordered set {i} formed from Ordset1.</p>'
        "</div>"
        for i in range(n_funcs)
    )
    funcs += (  # is_set/1's description is the one long enough to read as prose
        '<div class="bold_code">is_set(Ordset) -&gt; boolean()</div><div class="REFBODY">'
        "<p>Returns true if Ordset is an ordered set of elements, otherwise false. This "
        "function will return true for any ordered list, even when not constructed here.</p>"
        "</div>"
    )
    nav = "".join(f'<li><a href="#f{i}">f{i}/2</a></li>' for i in range(n_funcs))
    return (
        '<html><body><div id="leftnav"><ul class="flipMenu">' + nav + "</ul></div>"
        '<div id="content"><div class="innertube"><h1>ordsets</h1></div>'
        '<section class="description"><h3>Description</h3><div class="REFBODY '
        'description-body"><p>Sets are collections of elements with no duplicate elements. An '
        "ordset is a representation of a set, where an ordered list is used to store the "
        "elements of the set.</p><p>This module provides the same interface as the sets(3) "
        "module but with a defined representation, and compares elements with ==.</p></div>"
        f'</section><div class="innertube"><h3>Exports</h3></div>{funcs}</div></body></html>'
    )


def test_named_description_holding_little_of_the_text_is_not_the_column():
    # the description holds all the prose, the functions' short lines most of the text: the
    # column is the content, not "description-body" (the functions went)
    text = _text(_erlang_reference(12))
    assert "Sets are collections" in text and "sets(3)" in text
    for i in (0, 5, 11):
        assert f"f{i}(Element, Ordset1) -> Ordset2" in text
        assert f"Returns a new ordered set {i} formed" in text
    assert "f3/2" not in text  # the navigation still goes
    # with one function the description is most of the text: it stays the column
    text = _text(_erlang_reference(1))
    assert "Sets are collections" in text and "f0(Element" not in text


@pytest.mark.skipif(not (ERLANG.parent.parent.parent / "lib").is_dir(), reason="erlang-doc absent")
def test_erlang_module_reference_keeps_its_functions():
    page = ERLANG.parent.parent.parent / "lib/stdlib-4.2/doc/html/ordsets.html"
    if not page.is_file():
        pytest.skip("erlang-doc's stdlib 4.2 absent")
    text = _text(page.read_bytes())
    assert "Sets are collections of elements with no duplicate elements" in text
    assert "Returns a new ordered set formed from Ordset1 with Element inserted." in text
    assert "Returns the intersection of Ordset1 and Ordset2." in text


ERRNO = [
    ("EIO", "I/O error"),
    ("ENXIO", "No such device or address"),
    ("E2BIG", "Arg list too long"),
]


def test_short_entries_after_the_introduction_stay_when_they_are_most_of_the_page():
    # Python's errno page (python3.11-doc): two paragraphs, then ~130 symbols with a short line
    # each; cut as a tail of "Share"/"Reply" labels, all but the few longer lines went
    entries = "".join(
        f'<dl class="py data"><dt class="sig" id="errno.{k}{i}">errno.{k}{i}</dt>'
        f"<dd><p>{v}</p></dd></dl>"
        for i in range(10)
        for k, v in ERRNO
    )
    body = (
        "<h1>errno — Standard errno system symbols</h1><p>This module makes available "
        "standard errno system symbols. The value of each symbol is the corresponding integer "
        "value. The names and descriptions are borrowed from linux/include/errno.h.</p>"
        "<p>Of the following list, symbols that are not used on the current platform are not "
        "defined by the module. The specific list of defined symbols is available as "
        "errno.errorcode.keys().</p>"
    )
    text = _text(page("errno", f'<div class="body" role="main"><section>{body}{entries}'))
    assert "This module makes available" in text
    for i in (0, 9):
        assert f"errno.EIO{i}\n" in text and f"errno.E2BIG{i}" in text
    assert text.count("No such device or address") == 10
    # a few labels after an article still go
    tail = "<p>Share</p><p>Tweet</p><p>Leave a reply</p>"
    text = _text(page("t", f"<div class='post'>{ARTICLE}{tail}</div><div><p>x</p></div>"))
    assert "Forecasters expect" in text and "Tweet" not in text


@pytest.mark.parametrize(
    "head,nav_item",
    [
        ("", '<iframe src="https://github.com/sponsors/x/button" title="Sponsor" height="35"/>'),
        ('<script type="text/javascript" src="js/ie-fix.js"/>', "Home"),
        ("<title/>", "Home"),
    ],
)
def test_raw_text_element_written_self_closed_does_not_swallow_the_page(head, nav_item):
    # Debian's ImageMagick manual (imagemagick-6-doc, 130 pages) writes XHTML's <iframe .../>
    # in its navigation bar: an HTML parser reads the rest of the page as the iframe's text,
    # and each page was dropped as "no_content"
    html = (
        f"<!DOCTYPE html><html lang='en'><head>{head}<meta charset='utf-8'/></head><body>"
        f'<nav class="navbar"><ul><li><a href="index.html">Home</a></li><li>{nav_item}</li>'
        f'</ul></nav><main class="container">{ARTICLE}</main></body></html>'
    )
    page_ = extract_page(html.encode())
    text = "\n\n".join(i for i in page_.items if isinstance(i, str))
    assert "Heavy rain over the weekend" in text and "Forecasters expect" in text
    assert page_.lang == "en"


IMAGEMAGICK = Path("/usr/share/doc/imagemagick-6-common/html/www")


@pytest.mark.skipif(not (IMAGEMAGICK / "compare.html").is_file(), reason="imagemagick-6-doc absent")
def test_imagemagick_manual_pages_keep_their_content():
    text = _text((IMAGEMAGICK / "compare.html").read_bytes())
    assert "Use the compare program to mathematically and visually annotate" in text


def test_doxygen_code_fragment_is_one_code_block():
    # libstdc++-12-doc's source pages: each line a div.line of linked identifiers after its
    # span.lineno; walked as one short block per line, mostly link text, the listing went as a
    # link list and the page kept only the project's name
    code = [
        "// Copyright (C) 2005-2022 Free Software Foundation, Inc.",
        "template&lt;typename Key&gt;",
        'inline std::pair&lt;<a class="code" href="a01.html">point_iterator</a>, bool&gt;',
        '<a class="code" href="a02.html">insert_imp</a>(<a href="a03.html">const_reference</a>'
        " r_val, true_type)",
        "{",
        '  <a class="code" href="a04.html">PB_DS_ASSERT_VALID</a>((*this))',
        "  return std::make_pair(&amp;p_e-&gt;m_value, true);",
        "}",
    ]
    lines = "".join(
        f'<div class="line"><a id="l{i:05}" name="l{i:05}"></a><span class="lineno">{i:5}'
        f"</span>{c}</div>\n"
        for i, c in enumerate(code, 1)
    )
    html = (
        '<html><body><div id="top"><div id="projectname">libstdc++</div></div>'
        '<div id="side-nav" class="ui-resizable side-nav-resizable"><a href="index.html">'
        'Main</a></div><div class="header"><div class="headertitle"><div class="title">'
        'insert_fn_imps.hpp</div></div></div><div class="contents"><a href="a05.html">Go to '
        f'the documentation of this file.</a><div class="fragment">{lines}</div></div>'
        "</body></html>"
    )
    text = _text(html)
    assert "template<typename Key>\ninline std::pair<point_iterator, bool>\n" in text
    assert "  PB_DS_ASSERT_VALID((*this))\n  return std::make_pair" in text
    assert "    3template" not in text  # the line numbers go


LIBSTDCXX = Path("/usr/share/doc/gcc-12-base/libstdc++/user")


@pytest.mark.skipif(not (LIBSTDCXX / "a20372_source.html").is_file(), reason="libstdc++-12-doc")
def test_libstdcxx_source_page_keeps_its_listing():
    text = _text((LIBSTDCXX / "a20372_source.html").read_bytes())
    assert "// This file is part of the GNU ISO C++ Library." in text


def _package_table(title: str, rows: list[tuple[str, str, str, str]]) -> str:
    """A package list as Debian Reference writes it: package, popcon and size are links, the
    description is text (or a link with a few words after it)."""
    body = "".join(
        "<tr>"
        f'<td><a class="ulink" href="http://packages.debian.org/sid/{p}"> '
        f'<code class="literal">{p}</code> </a></td>'
        f'<td><a class="ulink" href="http://qa.debian.org/popcon-graph.php?packages={p}">'
        f"{pop}</a></td>"
        f'<td><a class="ulink" href="http://packages.qa.debian.org/{p[0]}/{p}.html">{size}</a></td>'
        f"<td> {desc} </td></tr>"
        for p, pop, size, desc in rows
    )
    return (
        f'<div class="table"><a id="t{len(rows)}"/><p class="title"><strong>{title}</strong></p>'
        f'<div class="table-contents"><table class="table" summary="{title}" border="1">'
        "<colgroup><col/><col/><col/><col/></colgroup><thead><tr><th> package </th>"
        "<th> popcon </th><th> size </th><th> description </th></tr></thead>"
        f"<tbody>{body}</tbody></table></div></div><br/>"
    )


DESKTOPS = [
    ("task-gnome-desktop", "I:179", "9", "GNOME desktop environment"),
    ("task-xfce-desktop", "I:97", "9", "Xfce desktop environment"),
    ("task-kde-desktop", "I:64", "6", "KDE Plasma desktop environment"),
    ("task-mate-desktop", "I:44", "9", "MATE desktop environment"),
    ("task-lxde-desktop", "I:30", "9", "LXDE desktop environment"),
]
WIKI = '<a class="ulink" href="https://en.wikipedia.org/wiki/PipeWire">audio and video engine</a>'
SOUND = [
    ("alsa-utils", "V:314, I:444", "2475", "utilities for configuring and using ALSA"),
    ("pipewire", "V:235, I:298", "97", f"{WIKI} - metapackage"),
    ("pipewire-bin", "V:251, I:298", "1537", f"{WIKI} - audio server and CLI programs"),
    ("pipewire-alsa", "V:1, I:5", "193", f"{WIKI} - audio server to replace ALSA"),
    ("pipewire-pulse", "V:17, I:30", "47", f"{WIKI} - audio server to replace PulseAudio"),
]


def test_package_table_keeps_its_descriptions_beside_linked_cells():
    # Debian Reference's package | popcon | size | description tables: cell by cell the first
    # three are link text, and the short descriptions between them went as link-list context
    # (7.1's desktops); a table whose descriptions are mostly a link went whole as a link list
    # (9.7's sound packages). Every package description of the manual was lost.
    sections = [
        (
            GUI_SECTIONS[0][0],
            "<p>There are several choices for the full featured GUI desktop environment on "
            "the Debian system.</p>" + _package_table("Table 7.1. Desktops", DESKTOPS),
        ),
        GUI_SECTIONS[1],
        (
            "9.7. Sound",
            "<p>Device drivers for sound cards for current Linux are provided by the Advanced "
            "Linux Sound Architecture, and the packages below configure and serve it.</p>"
            + _package_table("Table 9.15. List of sound packages", SOUND),
        ),
    ]
    text = _text(_docbook_xhtml(sections))
    assert "task-gnome-desktop\tI:179\t9\tGNOME desktop environment" in text
    assert "task-lxde-desktop\tI:30\t9\tLXDE desktop environment" in text
    assert "alsa-utils\tV:314, I:444\t2475\tutilities for configuring and using ALSA" in text
    assert "pipewire-pulse\tV:17, I:30\t47\taudio and video engine - audio server to" in text
    assert "package\tpopcon\tsize\tdescription" in text
    assert "is a same-host" in text and "Prev" not in text


def test_link_grid_and_navigation_tables_are_still_dropped():
    # every cell a link, or links with separators, dates or counts between them: no data
    grid = "".join(
        "<tr>"
        + "".join(f'<td><a href="/c/{r}{c}">Category {r}{c}</a></td>' for c in range(4))
        + "</tr>"
        for r in range(4)
    )
    nav = "".join(
        f'<tr><td><a href="/p/{i}">Previous story {i}</a></td><td>|</td>'
        f'<td><a href="/n/{i}">Next story {i}</a></td><td>{i + 3}</td></tr>'
        for i in range(4)
    )
    calendar = "".join(
        "<tr>"
        + "".join(
            f'<td><a href="/d/{7 * w + d}">{7 * w + d + 1}</a></td>'
            if d % 2
            else f"<td>{7 * w + d + 1}</td>"
            for d in range(7)
        )
        + "</tr>"
        for w in range(4)
    )
    html = page(
        "t",
        f'<div class="x"><table>{grid}</table></div><div>{ARTICLE}</div>'
        f"<div><table>{nav}</table><table>{calendar}</table></div>",
    )
    text = _text(html)
    assert "Heavy rain" in text and "Forecasters expect" in text
    assert "Category" not in text and "story" not in text
    assert "\t" not in text  # no row of the calendar either


@pytest.mark.skipif(not (DEBREF / "ch09.en.html").is_file(), reason="debian-reference-en absent")
def test_debian_reference_package_tables_keep_their_descriptions():
    ch07 = _text((DEBREF / "ch07.en.html").read_bytes())
    assert "task-gnome-desktop\tI:" in ch07 and "GNOME desktop environment" in ch07
    ch09 = _text((DEBREF / "ch09.en.html").read_bytes())
    for words in (
        "utilities for configuring and using ALSA",  # a table that went whole
        "screenshot application for GNOME",  # short cells between links
        "log analyzer with nice output written in Perl",
        "ban IPs that cause multiple authentication errors",
    ):
        assert words in ch09, words
    assert "Chapter 10. Data management" not in ch09  # the navigation footer's table
