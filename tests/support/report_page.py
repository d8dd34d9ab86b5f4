"""Read a rendered report.html back: the table's rows and cells, the timeline's bars."""

from html.parser import HTMLParser


class ReportPage(HTMLParser):
    """``rows``: image → [(platform, state)]; ``bars``: each timeline rect's attributes
    (x and width as floats); ``tags``: every element seen, in order."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self.dashes = 0
        self.bars: list[dict] = []
        self.tags: list[str] = []
        self._row = None
        self._bar_task = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and "data-image" in attrs:
            self._row = self.rows.setdefault(attrs["data-image"], [])
        elif tag == "td" and self._row is not None:
            if "data-platform" in attrs:
                self._row.append((attrs["data-platform"], attrs["data-state"]))
            else:
                self.dashes += 1
        elif tag == "g" and "data-task" in attrs:
            self._bar_task = attrs["data-task"], attrs["data-state"]
        elif tag == "rect":
            bar = {k: float(v) if k in ("x", "width") else v for k, v in attrs.items()}
            bar["task"], bar["state"] = self._bar_task or (None, None)
            self.bars.append(bar)
